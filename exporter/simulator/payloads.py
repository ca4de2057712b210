"""The JSON the API sends for each kind of item, rendered from the fleet and its history.

Field names and shapes follow the API documentation's example responses and the official SDK's TypedDicts;
where the two disagree the documented example wins: restore ``id`` is an integer (unix ms) and a
destination backup's ``expiredBy`` is a string like ``"1729232400000.0"``.
"""

from __future__ import annotations

from typing import Any

from .fleet import (
    SIMULATED_ACCESS_KEY,
    SIMULATED_SECRET_KEY,
    AddonSpec,
    DestinationSpec,
    Fleet,
    ProjectSpec,
    ScheduleSpec,
)
from .history import BackupRecord, DestinationBackupRecord, RestoreRecord, iso, uuid_like

JSON = dict[str, Any]


def project_json(project: ProjectSpec, seed: int) -> JSON:
    body: JSON = {"id": project.id, "name": project.name}
    if project.description is not None:
        body["description"] = project.description
    body["uid"] = uuid_like(seed, "project", project.id)
    body["lifecycleStatus"] = "created"
    return body


def addon_json(addon: AddonSpec, seed: int) -> JSON:
    body: JSON = {"id": addon.id, "name": addon.name, "appId": addon.id}
    if addon.description is not None:
        body["description"] = addon.description
    body["tags"] = list(addon.tags)
    body["spec"] = {"type": addon.type}
    body["status"] = addon.status
    body["uid"] = uuid_like(seed, "addon", addon.id)
    return body


def scheduling_json(schedule: ScheduleSpec) -> JSON:
    body: JSON = {"interval": schedule.interval, "minute": list(schedule.minutes)}
    if schedule.interval != "hourly":
        body["hour"] = list(schedule.hours)
    if schedule.interval == "weekly":
        body["day"] = list(schedule.days)
    return body


def schedule_json(schedule: ScheduleSpec, fleet: Fleet) -> JSON:
    created = iso(fleet.anchor + schedule.created_offset)
    body: JSON = {"id": schedule.id, "backupType": schedule.backup_type}
    if schedule.backup_type == "dump":
        body["backupCompressionType"] = schedule.compression
    if schedule.additional_destinations:
        body["additionalDestinations"] = [
            {"destinationId": d.destination_id, "type": "custom"}
            | ({"retentionTime": d.retention_days} if d.retention_days is not None else {})
            for d in schedule.additional_destinations
        ]
    if schedule.custom_destination_id is not None:
        body["customDestinationId"] = schedule.custom_destination_id
    body["scheduling"] = scheduling_json(schedule)
    body["retentionTime"] = schedule.retention_days
    body["createdAt"] = created
    body["updatedAt"] = created
    return body


def _backup_config(backup: BackupRecord) -> JSON:
    config: JSON = {"source": {"type": backup.source_type}, "size": str(backup.size)}
    config["addonVersion"] = backup.addon_version
    if backup.compression is not None:
        config["compressionType"] = backup.compression
    return config


def backup_json(backup: BackupRecord) -> JSON:
    """An addon's backup; in flight it has no ``completedAt`` and its size is ``"0"``."""
    body: JSON = {
        "id": backup.id,
        "uid": backup.uid,
        "name": backup.name,
        "status": backup.status,
        "createdAt": iso(backup.created_at),
    }
    if backup.completed_at is not None:
        body["completedAt"] = iso(backup.completed_at)
    body["config"] = _backup_config(backup)
    if backup.custom_destination_id is not None:
        body["customDestinationId"] = backup.custom_destination_id
    return body


def restore_json(restore: RestoreRecord, *, with_backup_id: bool) -> JSON:
    body: JSON = {"id": restore.id}
    if with_backup_id:
        body["backupId"] = restore.backup_id
    body["restoreTimestamp"] = iso(restore.restore_at)
    body["status"] = restore.status
    if restore.completed_at is not None:
        body["completedAt"] = iso(restore.completed_at)
    return body


def destination_json(destination: DestinationSpec) -> JSON:
    """A backup destination, credentials included, as the API sends them (the exporter must drop them)."""
    body: JSON = {"id": destination.id, "name": destination.name}
    if destination.description is not None:
        body["description"] = destination.description
    body["type"] = "s3"
    body["usage"] = destination.usage
    body["prefix"] = destination.prefix
    body["credentials"] = {
        "authMode": "staticCreds",
        "accessKey": SIMULATED_ACCESS_KEY,
        "secretKey": SIMULATED_SECRET_KEY,
        "bucketName": destination.bucket,
        "region": destination.region,
        "endpoint": destination.endpoint,
    }
    return body


def destination_backup_json(record: DestinationBackupRecord, fleet: Fleet) -> JSON:
    backup = record.backup
    project = fleet.project(backup.project_id)
    addon = fleet.addon(backup.addon_id)
    body: JSON = {"id": backup.id, "name": backup.name, "status": backup.status}
    if project is not None:
        body["project"] = {"id": project.id, "name": project.name}
    if addon is not None:
        body["addon"] = {"id": addon.id, "name": addon.name}
    config: JSON = {"addonVersion": backup.addon_version}
    if addon is not None:
        config["addonType"] = addon.type
    config["source"] = {"type": "global"}
    config["size"] = str(backup.size)
    body["config"] = config
    body["schedules"] = [scheduling_json(record.schedule)]
    # Documented as a number; the documented example (and so this simulator) sends a string.
    body["expiredBy"] = str(float(round(record.expires_at * 1000)))
    body["createdAt"] = iso(backup.created_at)
    if backup.completed_at is not None:
        body["completedAt"] = iso(backup.completed_at)
    return body


__all__ = [
    "addon_json",
    "backup_json",
    "destination_backup_json",
    "destination_json",
    "project_json",
    "restore_json",
    "schedule_json",
    "scheduling_json",
]

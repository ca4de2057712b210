"""The snapshot's metric families (rendered by :mod:`exporter.collector`): the addons, their backups,
schedules and restores, the destinations and the freshness of each resource. Declared here, exposed
through :mod:`exporter.metrics` (the one surface, whose ``FAMILIES`` checks them with every other
family); import them from there."""

from __future__ import annotations

from exporter.exposition import Family
from exporter.resources import Resource

_FRESHNESS = (
    " Read by the exporter's background poll of the Northflank API, not at scrape time: as fresh as"
    ' northflank_exporter_last_refresh_timestamp_seconds{{resource="{resource}"}} says.'
)
ADDON_LABELS = ("project", "addon")
SCHEDULE_LABELS = ("project", "addon", "schedule")


def _family(name: str, text: str, labels: tuple[str, ...] = (), resource: Resource | None = None) -> Family:
    unit = next((unit for unit in ("seconds", "bytes", "ratio") if name.endswith(f"_{unit}")), "")
    return Family(
        name, text + (_FRESHNESS.format(resource=resource) if resource is not None else ""), labels, unit=unit
    )


UP = _family(
    "northflank_up",
    "1 when the exporter can read the Northflank API: 0 when its last discovery of projects failed or has "
    "not run yet, or when any resource fails for every subject "
    "(northflank_exporter_resource_up says which).",
)
RESOURCE_UP = _family(
    "northflank_exporter_resource_up",
    "0 when the Northflank API refuses or fails every read of the resource: of the latest reads per "
    "project, addon or destination, none succeeded and at least one failed with an auth, permission, "
    "server, timeout or connection error (for projects: the last discovery failed or has not run yet). "
    "A read failing for another reason (a deleted addon's 404) is left out, and one failing subject "
    "among readable ones leaves it at 1.",
    ("resource",),
)
BUILD_INFO = _family(
    "northflank_exporter_build_info",
    "Always 1: the version of northflank-backup-exporter, the git commit it was built from (unknown when "
    "not known) and the Python version running it.",
    ("version", "revision", "pythonversion"),
)
ADDON_INFO = _family(
    "northflank_addon_info",
    "Names and type of each Northflank addon the exporter discovered; join on (project, addon).",
    (*ADDON_LABELS, "addon_name", "project_name", "addon_type"),
)
BACKUP_AGE = _family(
    "northflank_addon_backup_last_completed_age_seconds",
    "Seconds between the scrape and the completion of the newest completed backup of the addon.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
BACKUPS_BY_STATUS = _family(
    "northflank_addon_backups",
    "Backups the addon retains, by status; every status is present, 0 when none.",
    (*ADDON_LABELS, "status"),
    Resource.BACKUPS,
)
BACKUPS_FUTURE_DATED = _family(
    "northflank_addon_backups_future_dated",
    "Backups of the addon initiated or completed more than 5 minutes after the API's current time (its "
    "Date header's clock) when read: left out of every other backup metric of the addon, as a time "
    "that has not come yet cannot make the addon look freshly backed up.",
    ADDON_LABELS,
    Resource.BACKUPS,
)

LAST_COMPLETED = _family(
    "northflank_addon_backup_last_completed_timestamp_seconds",
    "When the newest completed backup of the addon completed (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_COMPLETED_SIZE = _family(
    "northflank_addon_backup_last_completed_size_bytes",
    "Size of the newest completed backup of the addon.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_COMPLETED_DURATION = _family(
    "northflank_addon_backup_last_completed_duration_seconds",
    "How long the newest completed backup of the addon took, from initiation to completion.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_FAILED = _family(
    "northflank_addon_backup_last_failed_timestamp_seconds",
    "When the newest failed or aborted backup attempt of the addon ended (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)
CONSECUTIVE_FAILURES = _family(
    "northflank_addon_backup_consecutive_failures",
    "Failed or aborted backup attempts of the addon initiated after its newest completed backup.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
BACKUPS_SIZE = _family(
    "northflank_addon_backups_size_bytes",
    "Total size of the completed backups the addon retains.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
OLDEST_COMPLETED = _family(
    "northflank_addon_backup_oldest_completed_timestamp_seconds",
    "When the oldest retained completed backup of the addon completed: the start of its recovery window.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
IN_PROGRESS_STARTED = _family(
    "northflank_addon_backup_in_progress_started_timestamp_seconds",
    "When the oldest backup of the addon that has not reached a final state was initiated (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)

SCHEDULE_COVERED = _family(
    "northflank_addon_backup_schedule_covered",
    "1 when the addon has at least one backup schedule, 0 when it has none.",
    ADDON_LABELS,
    Resource.SCHEDULES,
)
COVERAGE_RATIO = _family(
    "northflank_project_backup_schedule_coverage_ratio",
    "Share of the project's addons that have at least one backup schedule (0-1).",
    ("project",),
    Resource.SCHEDULES,
)
SCHEDULE_INFO = _family(
    "northflank_addon_backup_schedule_info",
    "Each backup schedule of an addon: its interval, backup type and compression (none for snapshots).",
    (*SCHEDULE_LABELS, "interval", "backup_type", "compression"),
)
SCHEDULE_RETENTION = _family(
    "northflank_addon_backup_schedule_retention_seconds",
    "How long the backups of the schedule are retained.",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_NEXT = _family(
    "northflank_addon_backup_schedule_next_run_timestamp_seconds",
    "The next run of the schedule after the scrape (unix time; schedules are in UTC).",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_PREVIOUS = _family(
    "northflank_addon_backup_schedule_previous_run_timestamp_seconds",
    "The latest run of the schedule at or before the scrape (unix time).",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_MAX_INTERVAL = _family(
    "northflank_addon_backup_schedule_max_interval_seconds",
    "The longest gap between two consecutive runs of the schedule.",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
_RUN_WINDOW = (
    "a run is missed when no backup of the schedule's type was initiated from 5 minutes before it to "
    "the grace period (--backup.schedule-grace) after it (or to shortly before the next run)"
)
SCHEDULE_MISSED = _family(
    "northflank_addon_backup_schedule_missed",
    f"1 when the newest run of the schedule whose grace period has ended was missed: {_RUN_WINDOW}.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
SCHEDULE_MISSED_RUNS = _family(
    "northflank_addon_backup_schedule_missed_runs",
    f"Runs of the schedule in the 24 hours before the scrape that were missed, once their grace period "
    f"has ended: {_RUN_WINDOW}. Runs whose backup would have expired are not judged.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
SCHEDULE_LAST_MISSED = _family(
    "northflank_addon_backup_schedule_last_missed_run_timestamp_seconds",
    "When the newest missed run of the schedule was due (unix time), within the last 2 days for hourly "
    "schedules and the last 35 days (at most the retention) for the others; absent when none was missed.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
RESTORES = _family(
    "northflank_addon_restores",
    "Restores of the addon's backups, by status; every status is present, 0 when none.",
    (*ADDON_LABELS, "status"),
    Resource.RESTORES,
)
RESTORE_LAST = _family(
    "northflank_addon_restore_last_timestamp_seconds",
    "When the newest restore of the addon with this status completed, or was requested if it has not.",
    (*ADDON_LABELS, "status"),
    Resource.RESTORES,
)
DESTINATION_INFO = _family(
    "northflank_backup_destination_info",
    "Each custom backup destination (S3 bucket) of the account, by id with its name.",
    ("destination", "destination_name"),
)
DESTINATION_BACKUPS = _family(
    "northflank_backup_destination_backups",
    "Backups stored in the destination, by status; every status is present, 0 when none.",
    ("destination", "status"),
    Resource.DESTINATION_BACKUPS,
)
DESTINATION_SIZE = _family(
    "northflank_backup_destination_size_bytes",
    "Total size of the completed backups stored in the destination.",
    ("destination",),
    Resource.DESTINATION_BACKUPS,
)
DESTINATION_LAST = _family(
    "northflank_backup_destination_last_completed_timestamp_seconds",
    "When the newest completed backup of the addon stored in the destination completed (unix time).",
    ("destination", "project", "addon"),
    Resource.DESTINATION_BACKUPS,
)
LAST_REFRESH = _family(
    "northflank_exporter_last_refresh_timestamp_seconds",
    "When the exporter last read each resource from the Northflank API successfully (unix time). project "
    "and addon are empty for account-wide resources.",
    ("project", "addon", "resource"),
)

#: The families of BACKUP_GAUGES (collector.py), in exposition order.
BACKUP_GAUGE_FAMILIES: tuple[Family, ...] = (
    LAST_COMPLETED,
    LAST_COMPLETED_SIZE,
    LAST_COMPLETED_DURATION,
    LAST_FAILED,
    CONSECUTIVE_FAILURES,
    BACKUPS_SIZE,
    OLDEST_COMPLETED,
    IN_PROGRESS_STARTED,
    BACKUPS_FUTURE_DATED,
)

#: Every family of the snapshot, in exposition order.
SNAPSHOT_FAMILIES: tuple[Family, ...] = (
    UP,
    RESOURCE_UP,
    BUILD_INFO,
    ADDON_INFO,
    BACKUP_AGE,
    BACKUPS_BY_STATUS,
    *BACKUP_GAUGE_FAMILIES,
    SCHEDULE_COVERED,
    COVERAGE_RATIO,
    SCHEDULE_INFO,
    SCHEDULE_RETENTION,
    SCHEDULE_NEXT,
    SCHEDULE_PREVIOUS,
    SCHEDULE_MAX_INTERVAL,
    SCHEDULE_MISSED,
    SCHEDULE_MISSED_RUNS,
    SCHEDULE_LAST_MISSED,
    RESTORES,
    RESTORE_LAST,
    DESTINATION_INFO,
    DESTINATION_BACKUPS,
    DESTINATION_SIZE,
    DESTINATION_LAST,
    LAST_REFRESH,
)


__all__ = [
    "ADDON_INFO",
    "ADDON_LABELS",
    "BACKUPS_BY_STATUS",
    "BACKUPS_FUTURE_DATED",
    "BACKUPS_SIZE",
    "BACKUP_AGE",
    "BACKUP_GAUGE_FAMILIES",
    "BUILD_INFO",
    "CONSECUTIVE_FAILURES",
    "COVERAGE_RATIO",
    "DESTINATION_BACKUPS",
    "DESTINATION_INFO",
    "DESTINATION_LAST",
    "DESTINATION_SIZE",
    "IN_PROGRESS_STARTED",
    "LAST_COMPLETED",
    "LAST_COMPLETED_DURATION",
    "LAST_COMPLETED_SIZE",
    "LAST_FAILED",
    "LAST_REFRESH",
    "OLDEST_COMPLETED",
    "RESOURCE_UP",
    "RESTORES",
    "RESTORE_LAST",
    "SCHEDULE_COVERED",
    "SCHEDULE_INFO",
    "SCHEDULE_LABELS",
    "SCHEDULE_LAST_MISSED",
    "SCHEDULE_MAX_INTERVAL",
    "SCHEDULE_MISSED",
    "SCHEDULE_MISSED_RUNS",
    "SCHEDULE_NEXT",
    "SCHEDULE_PREVIOUS",
    "SCHEDULE_RETENTION",
    "SNAPSHOT_FAMILIES",
    "UP",
]

"""Renders the current snapshot into metric families. Reads nothing but the snapshot and the clock.

Everything here is a pure function of (snapshot, now): no I/O, no waiting on the API, so a scrape costs
the same whether the API is healthy, slow or down. Values that depend on the time of the scrape (ages,
the next and previous scheduled runs, whether a run was missed) are computed here, at scrape time, from
the facts the poller stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.clock import Clock
from exporter.northflank.models import BackupStatus
from exporter.schedule import missed_run
from exporter.snapshot import (
    ADDON_RESOURCES,
    AddonSnapshot,
    BackupSummary,
    Snapshot,
)

_FRESHNESS = (
    " Read by the exporter's background poll of the Northflank API, not at scrape time: as fresh as"
    ' northflank_exporter_last_refresh_timestamp_seconds{{resource="{resource}"}} says.'
)

ADDON_LABELS = ("project", "addon")
SCHEDULE_LABELS = ("project", "addon", "schedule")
STATUSES: tuple[BackupStatus, ...] = tuple(BackupStatus)


@dataclass(frozen=True, slots=True)
class _AddonGauge:
    name: str
    help: str
    value: Callable[[BackupSummary], float | None]


# API field -> metric, in one place. A gauge whose value is None for an addon is left out for it.
_BACKUP_GAUGES: tuple[_AddonGauge, ...] = (
    _AddonGauge(
        "northflank_addon_backup_last_completed_timestamp_seconds",
        "When the newest completed backup of the addon completed (unix time).",
        lambda s: s.last_completed_at,
    ),
    _AddonGauge(
        "northflank_addon_backup_last_completed_size_bytes",
        "Size of the newest completed backup of the addon.",
        lambda s: s.last_completed_size_bytes,
    ),
    _AddonGauge(
        "northflank_addon_backup_last_completed_duration_seconds",
        "How long the newest completed backup of the addon took, from initiation to completion.",
        lambda s: s.last_completed_duration_seconds,
    ),
    _AddonGauge(
        "northflank_addon_backup_last_failed_timestamp_seconds",
        "When the newest failed or aborted backup attempt of the addon ended (unix time).",
        lambda s: s.last_failed_at,
    ),
    _AddonGauge(
        "northflank_addon_backup_consecutive_failures",
        "Failed or aborted backup attempts of the addon initiated after its newest completed backup.",
        lambda s: s.consecutive_failures,
    ),
    _AddonGauge(
        "northflank_addon_backups_size_bytes",
        "Total size of the completed backups the addon retains.",
        lambda s: s.completed_size_bytes,
    ),
    _AddonGauge(
        "northflank_addon_backup_oldest_completed_timestamp_seconds",
        "When the oldest retained completed backup of the addon completed: the start of its recovery window.",
        lambda s: s.oldest_completed_at,
    ),
    _AddonGauge(
        "northflank_addon_backup_in_progress_started_timestamp_seconds",
        "When the oldest backup of the addon that has not reached a final state was initiated (unix time).",
        lambda s: s.in_progress_started_at,
    ),
)


def _gauge(name: str, documentation: str, labels: Iterable[str], resource: str = "") -> GaugeMetricFamily:
    text = documentation + (_FRESHNESS.format(resource=resource) if resource else "")
    return GaugeMetricFamily(name, text, labels=list(labels))


class SnapshotCollector(Collector):
    """A prometheus_client collector over a snapshot source. Register it on a registry you pass around."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        *,
        clock: Clock,
        schedule_grace_seconds: float,
        version: str,
    ) -> None:
        self._snapshot = snapshot
        self._clock = clock
        self._grace = schedule_grace_seconds
        self._version = version

    def describe(self) -> Iterable[Metric]:
        # Families vary with the fleet; an empty description keeps registration from calling collect().
        return ()

    def collect(self) -> Iterator[Metric]:
        return iter(render(self._snapshot(), now=self._clock.now(), grace=self._grace, version=self._version))


def render(snapshot: Snapshot, *, now: float, grace: float, version: str) -> list[Metric]:
    addons = sorted(snapshot.addons.values(), key=lambda a: a.key)
    families: list[Metric] = []
    families += _exporter_families(snapshot, version)
    families += _addon_families(addons, now)
    families += _schedule_families(addons, now, grace)
    families += _restore_families(addons)
    families += _destination_families(snapshot)
    families += _freshness_families(snapshot, addons)
    return families


def _exporter_families(snapshot: Snapshot, version: str) -> list[Metric]:
    up = GaugeMetricFamily(
        "northflank_up",
        "1 when the exporter's last discovery of Northflank projects succeeded, 0 when it failed "
        "(API unreachable, token rejected) or has not run yet.",
        value=1 if snapshot.up else 0,
    )
    build = InfoMetricFamily(
        "northflank_exporter_build",
        "Version of northflank-backup-exporter.",
        value={"version": version},
    )
    return [up, build]


def _addon_families(addons: list[AddonSnapshot], now: float) -> list[Metric]:
    info = InfoMetricFamily(
        "northflank_addon",
        "Names and type of each Northflank addon the exporter discovered; join on (project, addon).",
        labels=ADDON_LABELS,
    )
    age = _gauge(
        "northflank_addon_backup_last_completed_age_seconds",
        "Seconds between the scrape and the completion of the newest completed backup of the addon.",
        ADDON_LABELS,
        "backups",
    )
    statuses = _gauge(
        "northflank_addon_backups",
        "Backups the addon retains, by status; every status is present, 0 when none.",
        (*ADDON_LABELS, "status"),
        "backups",
    )
    gauges = [(g, _gauge(g.name, g.help, ADDON_LABELS, "backups")) for g in _BACKUP_GAUGES]
    for addon in addons:
        labels = [addon.project_id, addon.addon_id]
        info.add_metric(
            labels,
            {
                "addon_name": addon.addon_name,
                "project_name": addon.project_name,
                "addon_type": addon.addon_type,
            },
        )
        if addon.backups is None:
            continue
        summary = addon.backups.value
        for spec, family in gauges:
            value = spec.value(summary)
            if value is not None:
                family.add_metric(labels, value)
        if summary.last_completed_at is not None:
            age.add_metric(labels, max(0.0, now - summary.last_completed_at))
        for status in STATUSES:
            statuses.add_metric([*labels, status.value], summary.counts.get(status, 0))
    return [info, age, statuses, *(family for _, family in gauges)]


def _schedule_families(addons: list[AddonSnapshot], now: float, grace: float) -> list[Metric]:
    covered = _gauge(
        "northflank_addon_backup_schedule_covered",
        "1 when the addon has at least one backup schedule, 0 when it has none.",
        ADDON_LABELS,
        "schedules",
    )
    ratio = _gauge(
        "northflank_project_backup_schedule_coverage_ratio",
        "Share of the project's addons that have at least one backup schedule (0-1).",
        ("project",),
        "schedules",
    )
    info = InfoMetricFamily(
        "northflank_addon_backup_schedule",
        "Each backup schedule of an addon: its interval, backup type and compression (none for snapshots).",
        labels=SCHEDULE_LABELS,
    )
    retention = _gauge(
        "northflank_addon_backup_schedule_retention_seconds",
        "How long the backups of the schedule are retained.",
        SCHEDULE_LABELS,
        "schedules",
    )
    next_run = _gauge(
        "northflank_addon_backup_schedule_next_run_timestamp_seconds",
        "The next run of the schedule after the scrape (unix time, UTC schedule).",
        SCHEDULE_LABELS,
        "schedules",
    )
    previous_run = _gauge(
        "northflank_addon_backup_schedule_previous_run_timestamp_seconds",
        "The latest run of the schedule at or before the scrape (unix time).",
        SCHEDULE_LABELS,
        "schedules",
    )
    max_interval = _gauge(
        "northflank_addon_backup_schedule_max_interval_seconds",
        "The longest gap between two consecutive runs of the schedule.",
        SCHEDULE_LABELS,
        "schedules",
    )
    missed = _gauge(
        "northflank_addon_backup_schedule_missed",
        "1 when the newest run of the schedule older than the grace period (--backup.schedule-grace) "
        "saw no backup of the addon initiated from 15 minutes before it until now.",
        SCHEDULE_LABELS,
        "backups",
    )
    per_project: dict[str, list[int]] = {}
    for addon in addons:
        if addon.schedules is None:
            continue
        schedules = addon.schedules.value
        labels = [addon.project_id, addon.addon_id]
        covered.add_metric(labels, 1 if schedules else 0)
        tally = per_project.setdefault(addon.project_id, [0, 0])
        tally[0] += 1 if schedules else 0
        tally[1] += 1
        last_initiated = addon.backups.value.last_initiated_at if addon.backups is not None else None
        for s in schedules:
            schedule_labels = [*labels, s.id]
            info.add_metric(
                schedule_labels,
                {"interval": s.interval, "backup_type": s.backup_type, "compression": s.compression},
            )
            retention.add_metric(schedule_labels, s.retention_seconds)
            next_run.add_metric(schedule_labels, s.calendar.next_run(now))
            previous_run.add_metric(schedule_labels, s.calendar.previous_run(now))
            max_interval.add_metric(schedule_labels, s.calendar.max_interval_seconds)
            if addon.backups is not None:
                # Without a backup listing, a miss cannot be told from a gap in our own knowledge.
                run = missed_run(
                    s.calendar,
                    last_initiated=last_initiated,
                    now=now,
                    grace_seconds=grace,
                    active_since=s.active_since,
                )
                missed.add_metric(schedule_labels, 0 if run is None else 1)
    for project, (with_schedule, known) in sorted(per_project.items()):
        ratio.add_metric([project], with_schedule / known)
    return [covered, ratio, info, retention, next_run, previous_run, max_interval, missed]


def _restore_families(addons: list[AddonSnapshot]) -> list[Metric]:
    counts = _gauge(
        "northflank_addon_restores",
        "Restores of the addon's backups, by status; every status is present, 0 when none.",
        (*ADDON_LABELS, "status"),
        "restores",
    )
    last = _gauge(
        "northflank_addon_restore_last_timestamp_seconds",
        "When the newest restore of the addon with this status completed, or was requested if it has not.",
        (*ADDON_LABELS, "status"),
        "restores",
    )
    for addon in addons:
        if addon.restores is None:
            continue
        summary = addon.restores.value
        for status in STATUSES:
            labels = [addon.project_id, addon.addon_id, status.value]
            counts.add_metric(labels, summary.counts.get(status, 0))
            at = summary.last_at.get(status)
            if at is not None:
                last.add_metric(labels, at)
    return [counts, last]


def _destination_families(snapshot: Snapshot) -> list[Metric]:
    info = InfoMetricFamily(
        "northflank_backup_destination",
        "Each custom backup destination (S3 bucket) of the account, by id with its name.",
        labels=("destination",),
    )
    counts = _gauge(
        "northflank_backup_destination_backups",
        "Backups stored in the destination, by status; every status is present, 0 when none.",
        ("destination", "status"),
        "destination_backups",
    )
    size = _gauge(
        "northflank_backup_destination_size_bytes",
        "Total size of the completed backups stored in the destination.",
        ("destination",),
        "destination_backups",
    )
    last = _gauge(
        "northflank_backup_destination_last_completed_timestamp_seconds",
        "When the newest completed backup of the addon stored in the destination completed (unix time).",
        ("destination", "project", "addon"),
        "destination_backups",
    )
    for destination in sorted(snapshot.destinations.values(), key=lambda d: d.id):
        info.add_metric([destination.id], {"destination_name": destination.name})
        if destination.backups is None:
            continue
        summary = destination.backups.value
        for status in STATUSES:
            counts.add_metric([destination.id, status.value], summary.counts.get(status, 0))
        size.add_metric([destination.id], summary.completed_size_bytes)
        for (project, addon), at in sorted(summary.last_completed_at.items()):
            last.add_metric([destination.id, project, addon], at)
    return [info, counts, size, last]


def _freshness_families(snapshot: Snapshot, addons: list[AddonSnapshot]) -> list[Metric]:
    refreshed = GaugeMetricFamily(
        "northflank_exporter_last_refresh_timestamp_seconds",
        "When the exporter last read each resource from the Northflank API successfully (unix time). "
        "project and addon are empty for account-wide resources.",
        labels=["project", "addon", "resource"],
    )
    if snapshot.projects_at is not None:
        refreshed.add_metric(["", "", "projects"], snapshot.projects_at)
    for project in sorted(snapshot.projects.values(), key=lambda p: p.id):
        if project.addons_at is not None:
            refreshed.add_metric([project.id, "", "addons"], project.addons_at)
    for addon in addons:
        for resource in ADDON_RESOURCES:
            at = addon.refreshed_at(resource)
            if at is not None:
                refreshed.add_metric([addon.project_id, addon.addon_id, resource], at)
    if snapshot.destinations_at is not None:
        refreshed.add_metric(["", "", "backup_destinations"], snapshot.destinations_at)
    destination_times = [d.backups.at for d in snapshot.destinations.values() if d.backups is not None]
    if destination_times and len(destination_times) == len(snapshot.destinations):
        # The least recent of them: every destination's listing is at least this fresh.
        refreshed.add_metric(["", "", "destination_backups"], min(destination_times))
    return [refreshed]

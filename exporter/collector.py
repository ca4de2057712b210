"""Renders the current snapshot as metric families. Reads nothing but the snapshot and the clock.

Everything here is a pure function of (snapshot, now): no I/O, no waiting on the API, so a scrape costs
the same whether the API is healthy, slow or down. Values that depend on the time of the scrape (ages,
the next and previous scheduled runs, whether a run was missed) are computed at scrape time from the
facts the poller stored; everything else about an addon is rendered once and reused for as long as the
snapshot holds the same (immutable) addon object, so a scrape of a large fleet stays cheap even though
the poller swaps in a new snapshot after every refresh.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from exporter.exposition import Family, RenderError, RenderErrors, format_value, label_set, sample
from exporter.northflank.models import BackupStatus
from exporter.schedule import judge_runs, judged_from, lookback_seconds
from exporter.snapshot import (
    ADDON_RESOURCES,
    RESOURCES,
    AddonSnapshot,
    BackupSummary,
    DestinationSnapshot,
    ScheduleSummary,
    Snapshot,
)

_FRESHNESS = (
    " Read by the exporter's background poll of the Northflank API, not at scrape time: as fresh as"
    ' northflank_exporter_last_refresh_timestamp_seconds{{resource="{resource}"}} says.'
)
STATUSES: tuple[BackupStatus, ...] = tuple(BackupStatus)
_ADDON = ("project", "addon")
_SCHEDULE = ("project", "addon", "schedule")


def _family(name: str, text: str, labels: tuple[str, ...] = (), resource: str = "") -> Family:
    return Family(name, text + (_FRESHNESS.format(resource=resource) if resource else ""), labels)


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
BUILD_INFO = _family("northflank_exporter_build_info", "Version of northflank-backup-exporter.", ("version",))
ADDON_INFO = _family(
    "northflank_addon_info",
    "Names and type of each Northflank addon the exporter discovered; join on (project, addon).",
    (*_ADDON, "addon_name", "project_name", "addon_type"),
)
BACKUP_AGE = _family(
    "northflank_addon_backup_last_completed_age_seconds",
    "Seconds between the scrape and the completion of the newest completed backup of the addon.",
    _ADDON,
    "backups",
)
BACKUPS_BY_STATUS = _family(
    "northflank_addon_backups",
    "Backups the addon retains, by status; every status is present, 0 when none.",
    (*_ADDON, "status"),
    "backups",
)
BACKUPS_FUTURE_DATED = _family(
    "northflank_addon_backups_future_dated",
    "Backups of the addon initiated or completed more than 5 minutes after the API's current time (its "
    "Date header's clock) when read: left out of every other backup metric of the addon, as a time "
    "that has not come yet cannot make the addon look freshly backed up.",
    _ADDON,
    "backups",
)

# API field -> metric, in one place. A gauge whose value is None for an addon is left out for it.
BACKUP_GAUGES: tuple[tuple[Family, Callable[[BackupSummary], float | None]], ...] = (
    (
        _family(
            "northflank_addon_backup_last_completed_timestamp_seconds",
            "When the newest completed backup of the addon completed (unix time).",
            _ADDON,
            "backups",
        ),
        lambda s: s.last_completed_at,
    ),
    (
        _family(
            "northflank_addon_backup_last_completed_size_bytes",
            "Size of the newest completed backup of the addon.",
            _ADDON,
            "backups",
        ),
        lambda s: s.last_completed_size_bytes,
    ),
    (
        _family(
            "northflank_addon_backup_last_completed_duration_seconds",
            "How long the newest completed backup of the addon took, from initiation to completion.",
            _ADDON,
            "backups",
        ),
        lambda s: s.last_completed_duration_seconds,
    ),
    (
        _family(
            "northflank_addon_backup_last_failed_timestamp_seconds",
            "When the newest failed or aborted backup attempt of the addon ended (unix time).",
            _ADDON,
            "backups",
        ),
        lambda s: s.last_failed_at,
    ),
    (
        _family(
            "northflank_addon_backup_consecutive_failures",
            "Failed or aborted backup attempts of the addon initiated after its newest completed backup.",
            _ADDON,
            "backups",
        ),
        lambda s: s.consecutive_failures,
    ),
    (
        _family(
            "northflank_addon_backups_size_bytes",
            "Total size of the completed backups the addon retains.",
            _ADDON,
            "backups",
        ),
        lambda s: s.completed_size_bytes,
    ),
    (
        _family(
            "northflank_addon_backup_oldest_completed_timestamp_seconds",
            "When the oldest retained completed backup of the addon completed: the start of its recovery "
            "window.",
            _ADDON,
            "backups",
        ),
        lambda s: s.oldest_completed_at,
    ),
    (
        _family(
            "northflank_addon_backup_in_progress_started_timestamp_seconds",
            "When the oldest backup of the addon that has not reached a final state was initiated (unix "
            "time).",
            _ADDON,
            "backups",
        ),
        lambda s: s.in_progress_started_at,
    ),
    (BACKUPS_FUTURE_DATED, lambda s: s.future_dated),
)

SCHEDULE_COVERED = _family(
    "northflank_addon_backup_schedule_covered",
    "1 when the addon has at least one backup schedule, 0 when it has none.",
    _ADDON,
    "schedules",
)
COVERAGE_RATIO = _family(
    "northflank_project_backup_schedule_coverage_ratio",
    "Share of the project's addons that have at least one backup schedule (0-1).",
    ("project",),
    "schedules",
)
SCHEDULE_INFO = _family(
    "northflank_addon_backup_schedule_info",
    "Each backup schedule of an addon: its interval, backup type and compression (none for snapshots).",
    (*_SCHEDULE, "interval", "backup_type", "compression"),
)
SCHEDULE_RETENTION = _family(
    "northflank_addon_backup_schedule_retention_seconds",
    "How long the backups of the schedule are retained.",
    _SCHEDULE,
    "schedules",
)
SCHEDULE_NEXT = _family(
    "northflank_addon_backup_schedule_next_run_timestamp_seconds",
    "The next run of the schedule after the scrape (unix time; schedules are in UTC).",
    _SCHEDULE,
    "schedules",
)
SCHEDULE_PREVIOUS = _family(
    "northflank_addon_backup_schedule_previous_run_timestamp_seconds",
    "The latest run of the schedule at or before the scrape (unix time).",
    _SCHEDULE,
    "schedules",
)
SCHEDULE_MAX_INTERVAL = _family(
    "northflank_addon_backup_schedule_max_interval_seconds",
    "The longest gap between two consecutive runs of the schedule.",
    _SCHEDULE,
    "schedules",
)
_RUN_WINDOW = (
    "a run is missed when no backup of the schedule's type was initiated from 5 minutes before it to "
    "the grace period (--backup.schedule-grace) after it (or to shortly before the next run)"
)
SCHEDULE_MISSED = _family(
    "northflank_addon_backup_schedule_missed",
    f"1 when the newest run of the schedule whose grace period has ended was missed: {_RUN_WINDOW}.",
    _SCHEDULE,
    "backups",
)
SCHEDULE_MISSED_RUNS = _family(
    "northflank_addon_backup_schedule_missed_runs",
    f"Runs of the schedule in the 24 hours before the scrape that were missed, once their grace period "
    f"has ended: {_RUN_WINDOW}. Runs whose backup would have expired are not judged.",
    _SCHEDULE,
    "backups",
)
SCHEDULE_LAST_MISSED = _family(
    "northflank_addon_backup_schedule_last_missed_run_timestamp_seconds",
    "When the newest missed run of the schedule was due (unix time), within the last 2 days for hourly "
    "schedules and the last 35 days (at most the retention) for the others; absent when none was missed.",
    _SCHEDULE,
    "backups",
)
RESTORES = _family(
    "northflank_addon_restores",
    "Restores of the addon's backups, by status; every status is present, 0 when none.",
    (*_ADDON, "status"),
    "restores",
)
RESTORE_LAST = _family(
    "northflank_addon_restore_last_timestamp_seconds",
    "When the newest restore of the addon with this status completed, or was requested if it has not.",
    (*_ADDON, "status"),
    "restores",
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
    "destination_backups",
)
DESTINATION_SIZE = _family(
    "northflank_backup_destination_size_bytes",
    "Total size of the completed backups stored in the destination.",
    ("destination",),
    "destination_backups",
)
DESTINATION_LAST = _family(
    "northflank_backup_destination_last_completed_timestamp_seconds",
    "When the newest completed backup of the addon stored in the destination completed (unix time).",
    ("destination", "project", "addon"),
    "destination_backups",
)
LAST_REFRESH = _family(
    "northflank_exporter_last_refresh_timestamp_seconds",
    "When the exporter last read each resource from the Northflank API successfully (unix time). project "
    "and addon are empty for account-wide resources.",
    ("project", "addon", "resource"),
)

#: Every family, in exposition order.
FAMILIES: tuple[Family, ...] = (
    UP,
    RESOURCE_UP,
    BUILD_INFO,
    ADDON_INFO,
    BACKUP_AGE,
    BACKUPS_BY_STATUS,
    *(family for family, _ in BACKUP_GAUGES),
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

Lines = dict[str, list[str]]

#: The families whose samples for an addon depend only on the addon's data, not on the scrape time.
STATIC_FAMILIES: tuple[Family, ...] = (
    ADDON_INFO,
    BACKUPS_BY_STATUS,
    *(family for family, _ in BACKUP_GAUGES),
    SCHEDULE_COVERED,
    SCHEDULE_INFO,
    SCHEDULE_RETENTION,
    SCHEDULE_MAX_INTERVAL,
    RESTORES,
    RESTORE_LAST,
    LAST_REFRESH,
)
_STATIC_INDEX = {family.name: i for i, family in enumerate(STATIC_FAMILIES)}


class _ScheduleLines:
    """A schedule's time-dependent samples. They change only when the scrape time crosses a run, a run's
    end of grace, or a missed run's exit from a window, so they are kept until then: most scrapes reuse
    them as they are."""

    __slots__ = (
        "_from",
        "_last_missed",
        "_lines",
        "_listed_at",
        "_missed",
        "_missed_runs",
        "_next",
        "_not_before",
        "_previous",
        "_until",
        "initiated",
        "schedule",
    )

    def __init__(self, labels: str, schedule: ScheduleSummary, backups: BackupSummary | None) -> None:
        self.schedule = schedule
        # Without a backup listing, a miss cannot be told from a gap in our own knowledge: no verdicts.
        self.initiated = backups.initiated_for(schedule.backup_type) if backups is not None else None
        self._not_before = math.inf
        self._listed_at = backups.listed_at if backups is not None else None
        if backups is not None and backups.listed_at is not None and self.initiated is not None:
            self._not_before = judged_from(
                active_since=schedule.active_since,
                listed_at=backups.listed_at,
                retention_seconds=schedule.retention_seconds,
                complete_since=backups.initiations_since,
                oldest_initiated=self.initiated[0] if self.initiated else None,
            )
        self._next = f"{SCHEDULE_NEXT.name}{{{labels}}} "
        self._previous = f"{SCHEDULE_PREVIOUS.name}{{{labels}}} "
        self._missed = f"{SCHEDULE_MISSED.name}{{{labels}}} "
        self._missed_runs = f"{SCHEDULE_MISSED_RUNS.name}{{{labels}}} "
        self._last_missed = f"{SCHEDULE_LAST_MISSED.name}{{{labels}}} "
        self._from = self._until = 0.0
        self._lines: tuple[str, str, str, str, str] = ("", "", "", "", "")

    def lines(self, now: float, grace: float) -> tuple[str, str, str, str, str]:
        if not self._from <= now < self._until:
            calendar = self.schedule.calendar
            next_run = calendar.next_run(now)
            until = next_run
            missed = missed_runs = last_missed = ""
            if self.initiated is not None:
                verdicts = judge_runs(
                    calendar,
                    initiated=self.initiated,
                    now=now,
                    grace_seconds=grace,
                    not_before=self._not_before,
                    lookback_seconds=lookback_seconds(calendar),
                    listed_at=self._listed_at,
                )
                missed = f"{self._missed}{1 if verdicts.newest_missed else 0}\n"
                missed_runs = f"{self._missed_runs}{verdicts.recent_missed}\n"
                if verdicts.last_missed is not None:
                    last_missed = f"{self._last_missed}{format_value(verdicts.last_missed)}\n"
                until = min(until, verdicts.valid_until)
            self._lines = (
                f"{self._next}{format_value(next_run)}\n",
                f"{self._previous}{format_value(calendar.previous_run(now))}\n",
                missed,
                missed_runs,
                last_missed,
            )
            self._from, self._until = now, until
        return self._lines


class _AddonLines:
    """What one addon contributes, rendered once: everything that does not depend on the scrape time."""

    __slots__ = ("addon", "age", "errors", "schedules", "static")

    def __init__(self, addon: AddonSnapshot) -> None:
        self.addon = addon
        #: The series left out as they could not be written (family, error): counted at every scrape.
        self.errors: list[tuple[str, Exception]] = []
        labels = label_set(_ADDON, (addon.project_id, addon.addon_id))
        self.age = f"{BACKUP_AGE.name}{{{labels}}} "
        self.schedules: list[_ScheduleLines] = []
        columns: list[list[str]] = [[] for _ in STATIC_FAMILIES]

        def add(family: Family, family_labels: str, value: float) -> None:
            try:
                line = sample(family.name, family_labels, value)
            except RenderError as error:
                self.errors.append((family.name, error))
            else:
                columns[_STATIC_INDEX[family.name]].append(line)

        names = label_set(
            ("addon_name", "project_name", "addon_type"),
            (addon.addon_name, addon.project_name, addon.addon_type),
        )
        add(ADDON_INFO, f"{labels},{names}", 1)
        if addon.backups is not None:
            summary = addon.backups.value
            for status in STATUSES:
                add(BACKUPS_BY_STATUS, f'{labels},status="{status.value}"', summary.counts.get(status, 0))
            for family, read in BACKUP_GAUGES:
                value = read(summary)
                if value is not None:
                    add(family, labels, value)
        if addon.schedules is not None:
            schedules = addon.schedules.value
            add(SCHEDULE_COVERED, labels, 1 if schedules else 0)
            for s in schedules:
                schedule_labels = f"{labels},{label_set(('schedule',), (s.id,))}"
                info = label_set(
                    ("interval", "backup_type", "compression"), (s.interval, s.backup_type, s.compression)
                )
                add(SCHEDULE_INFO, f"{schedule_labels},{info}", 1)
                add(SCHEDULE_RETENTION, schedule_labels, s.retention_seconds)
                add(SCHEDULE_MAX_INTERVAL, schedule_labels, s.calendar.max_interval_seconds)
                backups = addon.backups.value if addon.backups is not None else None
                try:
                    self.schedules.append(_ScheduleLines(schedule_labels, s, backups))
                except Exception as error:  # its scrape-time series only: the rest of the addon stays
                    self.errors.append((SCHEDULE_NEXT.name, error))
        if addon.restores is not None:
            restores = addon.restores.value
            for status in STATUSES:
                status_labels = f'{labels},status="{status.value}"'
                add(RESTORES, status_labels, restores.counts.get(status, 0))
                at = restores.last_at.get(status)
                if at is not None:
                    add(RESTORE_LAST, status_labels, at)
        for resource in ADDON_RESOURCES:
            at = addon.refreshed_at(resource)
            if at is not None:
                add(LAST_REFRESH, f'{labels},resource="{resource}"', at)
        self.static = tuple("".join(column).encode() for column in columns)


class SnapshotRenderer:
    """Renders snapshots to the text format, reusing what it rendered for unchanged addons."""

    def __init__(self, *, schedule_grace_seconds: float, version: str) -> None:
        self._grace = schedule_grace_seconds
        self._version = version
        self._cache: dict[int, _AddonLines] = {}
        self.errors = RenderErrors()

    def render(self, snapshot: Snapshot, now: float, trailer: bytes = b"") -> bytes:
        """The exposition of ``snapshot`` at scrape time ``now``, followed by ``trailer``."""
        lines: Lines = {family.name: [] for family in FAMILIES if family.name not in _STATIC_INDEX}
        lines[UP.name].append(sample(UP.name, "", 1 if snapshot.api_up else 0))
        lines[RESOURCE_UP.name].extend(
            sample(RESOURCE_UP.name, f'resource="{r}"', 1 if snapshot.resource_up(r) else 0)
            for r in RESOURCES
        )
        lines[BUILD_INFO.name].append(sample(BUILD_INFO.name, label_set(("version",), (self._version,)), 1))

        cache: dict[int, _AddonLines] = {}
        rows: list[tuple[bytes, ...]] = []
        age, next_run, previous_run, missed = (
            lines[BACKUP_AGE.name],
            lines[SCHEDULE_NEXT.name],
            lines[SCHEDULE_PREVIOUS.name],
            lines[SCHEDULE_MISSED.name],
        )
        missed_runs, last_missed = lines[SCHEDULE_MISSED_RUNS.name], lines[SCHEDULE_LAST_MISSED.name]
        coverage: dict[str, list[int]] = {}
        errors = self.errors
        for addon in sorted(snapshot.addons.values(), key=lambda a: a.key):
            rendered = self._cache.get(id(addon))
            if rendered is None or rendered.addon is not addon:
                try:
                    rendered = _AddonLines(addon)
                except Exception as error:  # one addon, never the whole page
                    errors.count(ADDON_INFO.name, error)
                    continue
            cache[id(addon)] = rendered
            rows.append(rendered.static)
            for family_name, failure in rendered.errors:
                errors.count(family_name, failure)

            backups = addon.backups.value if addon.backups is not None else None
            try:
                if backups is not None and backups.last_completed_at is not None:
                    age.append(f"{rendered.age}{format_value(max(0.0, now - backups.last_completed_at))}\n")
            except Exception as error:
                errors.count(BACKUP_AGE.name, error)
            for schedule_lines in rendered.schedules:
                try:
                    upcoming, latest, was_missed, recent_misses, last_miss = schedule_lines.lines(
                        now, self._grace
                    )
                except Exception as error:  # this schedule's scrape-time series, not the page
                    errors.count(SCHEDULE_NEXT.name, error)
                    continue
                next_run.append(upcoming)
                previous_run.append(latest)
                missed.append(was_missed)
                missed_runs.append(recent_misses)
                last_missed.append(last_miss)
            if addon.schedules is not None:
                tally = coverage.setdefault(addon.project_id, [0, 0])
                tally[0] += 1 if addon.schedules.value else 0
                tally[1] += 1
        self._cache = cache

        for project, (covered, known) in sorted(coverage.items()):
            try:
                lines[COVERAGE_RATIO.name].append(
                    sample(COVERAGE_RATIO.name, label_set(("project",), (project,)), covered / known)
                )
            except RenderError as error:
                errors.count(COVERAGE_RATIO.name, error)
        _destinations(snapshot, lines, errors)
        try:
            account_refreshes = _account_refreshes(snapshot)
        except Exception as error:
            errors.count(LAST_REFRESH.name, error)
            account_refreshes = b""

        # One join for the whole body: a large fleet's exposition is megabytes, and every intermediate
        # copy of it costs as much as the rest of the scrape.
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in STATIC_FAMILIES]
        parts: list[bytes] = []
        for family in FAMILIES:
            index = _STATIC_INDEX.get(family.name)
            if index is None:
                text = "".join(lines[family.name])
                try:
                    if text:
                        parts += (family.header.encode(), text.encode())
                except UnicodeEncodeError as error:  # what escaping missed: this family, not the page
                    errors.count(family.name, error, len(lines[family.name]))
                continue
            column = columns[index]
            extra = account_refreshes if family is LAST_REFRESH else b""
            if extra or any(column):
                parts.append(family.header.encode())
                parts.extend(column)
                parts.append(extra)
        parts.append(errors.render((family.name for family in FAMILIES), now).encode())
        parts.append(trailer)
        return b"".join(parts)


def _destinations(snapshot: Snapshot, lines: Lines, errors: RenderErrors) -> None:
    for destination in sorted(snapshot.destinations.values(), key=lambda d: d.id):
        try:
            rendered = _destination_lines(destination)
        except Exception as error:  # one destination, never the whole page
            errors.count(DESTINATION_INFO.name, error)
            continue
        for name, added in rendered.items():
            lines[name].extend(added)


def _destination_lines(destination: DestinationSnapshot) -> Lines:
    """A destination's samples by family: all of them, or (raising) none."""
    out: Lines = {}

    def add(family: Family, family_labels: str, value: float) -> None:
        out.setdefault(family.name, []).append(sample(family.name, family_labels, value))

    labels = label_set(("destination",), (destination.id,))
    name = label_set(("destination_name",), (destination.name,))
    add(DESTINATION_INFO, f"{labels},{name}", 1)
    if destination.backups is None:
        return out
    summary = destination.backups.value
    for status in STATUSES:
        add(DESTINATION_BACKUPS, f'{labels},status="{status.value}"', summary.counts.get(status, 0))
    add(DESTINATION_SIZE, labels, summary.completed_size_bytes)
    for (project, addon), at in sorted(summary.last_completed_at.items()):
        add(DESTINATION_LAST, f"{labels},{label_set(('project', 'addon'), (project, addon))}", at)
    return out


def _account_refreshes(snapshot: Snapshot) -> bytes:
    out: list[str] = []
    if snapshot.projects_at is not None:
        out.append(sample(LAST_REFRESH.name, 'project="",addon="",resource="projects"', snapshot.projects_at))
    for project in sorted(snapshot.projects.values(), key=lambda p: p.id):
        if project.addons_at is not None:
            labels = label_set(("project", "addon", "resource"), (project.id, "", "addons"))
            out.append(sample(LAST_REFRESH.name, labels, project.addons_at))
    if snapshot.destinations_at is not None:
        out.append(
            sample(
                LAST_REFRESH.name,
                'project="",addon="",resource="backup_destinations"',
                snapshot.destinations_at,
            )
        )
    times = [d.backups.at for d in snapshot.destinations.values() if d.backups is not None]
    if times and len(times) == len(snapshot.destinations):
        # The least recent of them: every destination's listing is at least this fresh.
        out.append(
            sample(LAST_REFRESH.name, 'project="",addon="",resource="destination_backups"', min(times))
        )
    return "".join(out).encode()

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

from exporter import metrics
from exporter.exposition import Family, RenderError, RenderErrors, format_value, label_set, sample
from exporter.metrics import (
    ADDON_INFO,
    ADDON_LABELS,
    BACKUP_AGE,
    BACKUPS_BY_STATUS,
    BUILD_INFO,
    COVERAGE_RATIO,
    DESTINATION_BACKUPS,
    DESTINATION_INFO,
    DESTINATION_LAST,
    DESTINATION_SIZE,
    LAST_REFRESH,
    RENDER_ERRORS,
    RESOURCE_UP,
    RESTORE_LAST,
    RESTORES,
    SCHEDULE_COVERED,
    SCHEDULE_INFO,
    SCHEDULE_LAST_MISSED,
    SCHEDULE_MAX_INTERVAL,
    SCHEDULE_MISSED,
    SCHEDULE_MISSED_RUNS,
    SCHEDULE_NEXT,
    SCHEDULE_PREVIOUS,
    SCHEDULE_RETENTION,
    UP,
)
from exporter.northflank.models import BackupStatus
from exporter.resources import ADDON_RESOURCES, RESOURCES, Resource
from exporter.schedule import judge_runs, judged_from, lookback_seconds
from exporter.snapshot import (
    AddonSnapshot,
    BackupSummary,
    DestinationSnapshot,
    ScheduleSummary,
    Snapshot,
)

STATUSES: tuple[BackupStatus, ...] = tuple(BackupStatus)

# API field -> metric, in one place. A gauge whose value is None for an addon is left out for it.
BACKUP_GAUGES: tuple[tuple[Family, Callable[[BackupSummary], float | None]], ...] = (
    (metrics.LAST_COMPLETED, lambda s: s.last_completed_at),
    (metrics.LAST_COMPLETED_SIZE, lambda s: s.last_completed_size_bytes),
    (metrics.LAST_COMPLETED_DURATION, lambda s: s.last_completed_duration_seconds),
    (metrics.LAST_FAILED, lambda s: s.last_failed_at),
    (metrics.CONSECUTIVE_FAILURES, lambda s: s.consecutive_failures),
    (metrics.BACKUPS_SIZE, lambda s: s.completed_size_bytes),
    (metrics.OLDEST_COMPLETED, lambda s: s.oldest_completed_at),
    (metrics.IN_PROGRESS_STARTED, lambda s: s.in_progress_started_at),
    (metrics.BACKUPS_FUTURE_DATED, lambda s: s.future_dated),
)

#: Every family of the snapshot, in exposition order.
FAMILIES = metrics.SNAPSHOT_FAMILIES

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
        labels = label_set(ADDON_LABELS, (addon.project_id, addon.addon_id))
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
        self.errors = RenderErrors(RENDER_ERRORS)

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


def _account_labels(resource: Resource) -> str:
    """The labels of an account-wide resource's refresh time: no project, no addon."""
    return f'project="",addon="",resource="{resource}"'


def _account_refreshes(snapshot: Snapshot) -> bytes:
    out: list[str] = []
    if snapshot.projects_at is not None:
        out.append(sample(LAST_REFRESH.name, _account_labels(Resource.PROJECTS), snapshot.projects_at))
    for project in sorted(snapshot.projects.values(), key=lambda p: p.id):
        if project.addons_at is not None:
            labels = label_set(("project", "addon", "resource"), (project.id, "", Resource.ADDONS))
            out.append(sample(LAST_REFRESH.name, labels, project.addons_at))
    if snapshot.destinations_at is not None:
        out.append(
            sample(LAST_REFRESH.name, _account_labels(Resource.BACKUP_DESTINATIONS), snapshot.destinations_at)
        )
    times = [d.backups.at for d in snapshot.destinations.values() if d.backups is not None]
    if times and len(times) == len(snapshot.destinations):
        # The least recent of them: every destination's listing is at least this fresh.
        out.append(sample(LAST_REFRESH.name, _account_labels(Resource.DESTINATION_BACKUPS), min(times)))
    return "".join(out).encode()

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
from dataclasses import dataclass

from exporter import metrics
from exporter.account_lines import account_refreshes_lines, destination_lines
from exporter.exposition import Family, RenderError, RenderErrors, format_value, label_set, sample
from exporter.metrics import (
    ADDON_INFO,
    ADDON_LABELS,
    BACKUP_AGE,
    BACKUPS_BY_STATUS,
    BUILD_INFO,
    COVERAGE_RATIO,
    DESTINATION_INFO,
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
from exporter.resources import ADDON_RESOURCES, RESOURCES
from exporter.schedule import judge_runs, judged_from, lookback_seconds
from exporter.snapshot import (
    AddonSnapshot,
    BackupSummary,
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

#: The families whose samples depend on the scrape time (an age, a schedule's runs and misses).
TIMED_FAMILIES: frozenset[str] = frozenset(
    family.name
    for family in (
        BACKUP_AGE,
        SCHEDULE_NEXT,
        SCHEDULE_PREVIOUS,
        SCHEDULE_MISSED,
        SCHEDULE_MISSED_RUNS,
        SCHEDULE_LAST_MISSED,
    )
)


def _runs() -> tuple[tuple[tuple[Family, ...], ...], tuple[tuple[Family, ...], ...]]:
    """FAMILIES cut into alternating runs: fixed, timed, fixed, ..., fixed (the first and last may be
    empty), so that a page is its fixed runs with the timed ones between them."""
    fixed: list[list[Family]] = [[]]
    timed: list[list[Family]] = []
    for family in FAMILIES:
        if family.name in TIMED_FAMILIES:
            if len(timed) < len(fixed):
                timed.append([])
            timed[-1].append(family)
        else:
            if len(fixed) == len(timed):
                fixed.append([])
            fixed[-1].append(family)
    if len(fixed) == len(timed):
        fixed.append([])
    return tuple(map(tuple, fixed)), tuple(map(tuple, timed))


_FIXED_RUNS, TIMED_RUNS = _runs()


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

    def __init__(
        self,
        *,
        schedule_grace_seconds: float,
        version: str,
        revision: str = "unknown",
        python_version: str = "unknown",
    ) -> None:
        self._grace = schedule_grace_seconds
        self._build = label_set(BUILD_INFO.labels, (version, revision, python_version))
        self._cache: dict[int, _AddonLines] = {}
        self.errors = RenderErrors(RENDER_ERRORS)

    def render(self, snapshot: Snapshot, now: float, trailer: bytes = b"") -> bytes:
        """The exposition of ``snapshot`` at scrape time ``now``, followed by ``trailer``."""
        page = self.page(snapshot)
        timed = page.timed(now)
        for family, error, n in (*page.errors, *timed.errors):
            self.errors.count(family, error, n)
        # One join for the whole body: a large fleet's exposition is megabytes, and every intermediate
        # copy of it costs as much as the rest of the scrape.
        parts = [
            piece
            for run, between in zip(page.fixed, (*timed.parts, b""), strict=True)
            for piece in (*run, between)
        ]
        parts.append(self.errors.render((family.name for family in FAMILIES), now).encode())
        parts.append(trailer)
        return b"".join(parts)

    def page(self, snapshot: Snapshot) -> SnapshotPage:
        """What ``snapshot`` renders to whatever the scrape time (see :class:`SnapshotPage`). Not for two
        threads at once: it updates the renderer's reuse of unchanged addons."""
        errors = _Left()
        lines: Lines = {
            family.name: [] for run in _FIXED_RUNS for family in run if family.name not in _STATIC_INDEX
        }
        lines[UP.name].append(sample(UP.name, "", 1 if snapshot.api_up else 0))
        lines[RESOURCE_UP.name].extend(
            sample(RESOURCE_UP.name, f'resource="{r}"', 1 if snapshot.resource_up(r) else 0)
            for r in RESOURCES
        )
        lines[BUILD_INFO.name].append(sample(BUILD_INFO.name, self._build, 1))

        cache: dict[int, _AddonLines] = {}
        rows: list[tuple[bytes, ...]] = []
        addons: list[_AddonLines] = []
        coverage: dict[str, list[int]] = {}
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
            addons.append(rendered)
            for family_name, failure in rendered.errors:
                errors.count(family_name, failure)
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
            account_refreshes = account_refreshes_lines(snapshot)
        except Exception as error:
            errors.count(LAST_REFRESH.name, error)
            account_refreshes = b""

        columns = list(zip(*rows, strict=True)) if rows else [() for _ in STATIC_FAMILIES]
        fixed: list[tuple[bytes, ...]] = []
        for run in _FIXED_RUNS:
            parts: list[bytes] = []
            for family in run:
                index = _STATIC_INDEX.get(family.name)
                if index is None:
                    _append_family(parts, family, lines[family.name], errors)
                    continue
                column = columns[index]
                extra = account_refreshes if family is LAST_REFRESH else b""
                if extra or any(column):
                    parts.append(family.header.encode())
                    parts.extend(column)
                    parts.append(extra)
            fixed.append(tuple(parts))
        return SnapshotPage(tuple(fixed), tuple(errors.entries), tuple(addons), self._grace)


#: A series left out: its family, why, and how many samples.
LeftOut = tuple[str, Exception, int]


class _Left:
    """Collects what a render leaves out, to be counted (RenderErrors) by whoever serves the render."""

    def __init__(self) -> None:
        self.entries: list[LeftOut] = []

    def count(self, family: str, error: Exception, n: int = 1) -> None:
        self.entries.append((family, error, n))


def _append_family(parts: list[bytes], family: Family, lines: list[str], errors: _Left) -> None:
    text = "".join(lines)
    try:
        if text:
            parts += (family.header.encode(), text.encode())
    except UnicodeEncodeError as error:  # what escaping missed: this family, not the page
        errors.count(family.name, error, len(lines))


@dataclass(frozen=True, slots=True)
class TimedParts:
    """The families of a page that depend on the scrape time, one byte string per slot of the page."""

    parts: tuple[bytes, ...]
    errors: tuple[LeftOut, ...]


@dataclass(frozen=True, slots=True, eq=False)
class SnapshotPage:
    """A snapshot's exposition split by what it depends on. ``fixed`` is the same at every scrape time: runs
    of byte strings (each addon's lines are the renderer's own, shared, not copied); between the runs go
    the families computed from the scrape time (ages, a schedule's runs), rendered by :meth:`timed`:
    ``fixed[0] + timed.parts[0] + fixed[1] + ... + fixed[-1]``, joined, is the snapshot's part of
    ``SnapshotRenderer.render`` (before the render errors counter). ``errors``: the series left out
    whatever the time, to be counted at every scrape served from the page."""

    fixed: tuple[tuple[bytes, ...], ...]
    errors: tuple[LeftOut, ...]
    addons: tuple[_AddonLines, ...]
    grace: float

    def timed(self, now: float) -> TimedParts:
        """The scrape-time families at ``now``. Not for two threads at once: a schedule keeps its lines
        between the scrapes that share them."""
        errors = _Left()
        lines: Lines = {family.name: [] for run in TIMED_RUNS for family in run}
        age, next_run, previous_run, missed = (
            lines[BACKUP_AGE.name],
            lines[SCHEDULE_NEXT.name],
            lines[SCHEDULE_PREVIOUS.name],
            lines[SCHEDULE_MISSED.name],
        )
        missed_runs, last_missed = lines[SCHEDULE_MISSED_RUNS.name], lines[SCHEDULE_LAST_MISSED.name]
        for rendered in self.addons:
            addon = rendered.addon
            backups = addon.backups.value if addon.backups is not None else None
            try:
                if backups is not None and backups.last_completed_at is not None:
                    age.append(f"{rendered.age}{format_value(max(0.0, now - backups.last_completed_at))}\n")
            except Exception as error:
                errors.count(BACKUP_AGE.name, error)
            for schedule_lines in rendered.schedules:
                try:
                    upcoming, latest, was_missed, recent_misses, last_miss = schedule_lines.lines(
                        now, self.grace
                    )
                except Exception as error:  # this schedule's scrape-time series, not the page
                    errors.count(SCHEDULE_NEXT.name, error)
                    continue
                next_run.append(upcoming)
                previous_run.append(latest)
                missed.append(was_missed)
                missed_runs.append(recent_misses)
                last_missed.append(last_miss)
        parts: list[bytes] = []
        for run in TIMED_RUNS:
            run_parts: list[bytes] = []
            for family in run:
                _append_family(run_parts, family, lines[family.name], errors)
            parts.append(b"".join(run_parts))
        return TimedParts(tuple(parts), tuple(errors.entries))


def _destinations(snapshot: Snapshot, lines: Lines, errors: _Left) -> None:
    for destination in sorted(snapshot.destinations.values(), key=lambda d: d.id):
        try:
            rendered = destination_lines(destination)
        except Exception as error:  # one destination, never the whole page
            errors.count(DESTINATION_INFO.name, error)
            continue
        for name, added in rendered.items():
            lines[name].extend(added)

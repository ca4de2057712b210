"""When a Northflank backup schedule fires, and which of its runs were missed.

Pure arithmetic on unix timestamps (float seconds, UTC): no I/O and no clock, so the caller passes
``now``. A schedule is compiled once into the sorted second-offsets of its runs within one period
(an hour, a day or a week); every question after that is a ``divmod`` and a ``bisect``, because it is
asked for thousands of schedules on every scrape.

Runs always fall on whole seconds (whole minutes, in fact), so an instant is floored to whole seconds
first: "the latest run <= at" and "the earliest run > at" give the same answer for ``at`` and
``floor(at)``, and the rest of the arithmetic is then exact integer arithmetic whatever the year.
Instants must be finite.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from exporter.northflank.models import Scheduling

HOUR = 3_600
DAY = 86_400
WEEK = 604_800

#: 1970-01-05 00:00 UTC, the first Monday after the epoch (1970-01-01 was a Thursday). It is also the
#: start of a day and of an hour, so one anchor serves all three periods.
ANCHOR = 4 * DAY

_PERIODS = {"hourly": HOUR, "daily": DAY, "weekly": WEEK}


@dataclass(frozen=True, slots=True)
class ScheduleCalendar:
    """The runs of a schedule: ``ANCHOR + k * period_seconds + offset`` for every integer k and offset."""

    period_seconds: int
    offsets: tuple[int, ...]
    #: For the run at each offset, how far before it its window starts and how far after it the window
    #: ends at most (``grace_seconds`` may end it sooner), as ``run_window`` computes them: they depend
    #: only on the gaps to the neighbouring runs, the same in every period, so judge_runs reads them here.
    early: tuple[float, ...] = field(init=False, repr=False, compare=False)
    late: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _longest_gap: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every lookup relies on these; checking them once here keeps the hot paths free of checks.
        if self.period_seconds <= 0:
            raise ValueError("period_seconds must be positive")
        if not self.offsets:
            raise ValueError("a schedule needs at least one run per period")
        if self.offsets[0] < 0 or self.offsets[-1] >= self.period_seconds:
            raise ValueError("offsets must lie within the period")
        if any(a >= b for a, b in pairwise(self.offsets)):
            raise ValueError("offsets must be sorted and unique")
        offsets = self.offsets
        wrap = offsets[0] + self.period_seconds - offsets[-1]
        gaps = [b - a for a, b in pairwise(offsets)]
        before, after = [wrap, *gaps], [*gaps, wrap]
        object.__setattr__(self, "_longest_gap", max(before))
        # run_window's expressions (exact: whole or half seconds), as floats: bisect compares a float
        # with a float much faster than with an int.
        object.__setattr__(self, "early", tuple(float(min(EARLY_START_SECONDS, g / 2)) for g in before))
        object.__setattr__(self, "late", tuple(float(g - min(EARLY_START_SECONDS, g / 2)) for g in after))

    @classmethod
    def from_scheduling(cls, scheduling: Scheduling) -> ScheduleCalendar:
        # The API may echo hours on an hourly schedule or days on a daily one; Northflank ignores them,
        # so they are ignored here too rather than narrowing the schedule.
        minutes = {m * 60 for m in scheduling.minute}
        if scheduling.interval == "hourly":
            offsets = minutes
        else:
            # The model guarantees the lists a daily/weekly schedule needs, but one built without
            # validation may lack them: an empty list then fails in __post_init__ instead of here.
            hours = {h * HOUR + m for h in scheduling.hour or () for m in minutes}
            if scheduling.interval == "daily":
                offsets = hours
            else:
                offsets = {d * DAY + h for d in scheduling.day or () for h in hours}
        return cls(_PERIODS[scheduling.interval], tuple(sorted(offsets)))

    def previous_run(self, at: float) -> float:
        """The latest run at or before ``at``."""
        cycle, position = divmod(math.floor(at) - ANCHOR, self.period_seconds)
        index = bisect_right(self.offsets, position) - 1
        if index < 0:
            # Before the first run of this period: the last run of the previous one.
            cycle -= 1
        return float(ANCHOR + cycle * self.period_seconds + self.offsets[index])

    def next_run(self, at: float) -> float:
        """The earliest run strictly after ``at``: a run at exactly ``at`` has already happened."""
        cycle, position = divmod(math.floor(at) - ANCHOR, self.period_seconds)
        index = bisect_right(self.offsets, position)
        if index == len(self.offsets):
            cycle, index = cycle + 1, 0
        return float(ANCHOR + cycle * self.period_seconds + self.offsets[index])

    def runs_between(self, start: float, end: float) -> Iterator[float]:
        """The runs with ``start < run <= end``, oldest first; nothing when ``end <= start``."""
        offsets, period = self.offsets, self.period_seconds
        last = math.floor(end)
        cycle, position = divmod(math.floor(start) - ANCHOR, period)
        index = bisect_right(offsets, position)
        base = ANCHOR + cycle * period
        while True:
            if index == len(offsets):
                base, index = base + period, 0
            run = base + offsets[index]
            if run > last:
                return
            yield float(run)
            index += 1

    @property
    def max_interval_seconds(self) -> int:
        """The longest wait between two consecutive runs, including from the last run of a period to
        the first of the next: the longest a healthy schedule can go without a new backup."""
        return self._longest_gap


# --- judging every run ------------------------------------------------------------------------------

#: How long before a scheduled run its backup may be initiated and still count for that run (Northflank
#: may start a scheduled backup a little early). The planner uses the same value.
EARLY_START_SECONDS = 300

#: A run is judged only if its backup would still be retained by this margin when the listing was read:
#: the API may delete an expired backup a little before the exact end of its retention, and a missed
#: run cannot be told from a backup that expired.
RETENTION_MARGIN_SECONDS = 900

#: How far back runs are judged: hourly schedules only two days (they have 24 runs or more a day, and a
#: day's count is what the metrics show), the others up to five weeks. Their retention bounds it too.
HOURLY_LOOKBACK_SECONDS = 2 * DAY
MAX_LOOKBACK_SECONDS = 35 * DAY

#: The window of the count of missed runs (northflank_addon_backup_schedule_missed_runs).
RECENT_SECONDS = DAY


def lookback_seconds(calendar: ScheduleCalendar) -> int:
    """How far back the runs of this schedule are judged (see HOURLY_LOOKBACK_SECONDS)."""
    return HOURLY_LOOKBACK_SECONDS if calendar.period_seconds <= HOUR else MAX_LOOKBACK_SECONDS


def run_window(run: float, *, previous: float, following: float, grace_seconds: float) -> tuple[float, float]:
    """When a backup must be initiated, ``[start, end)``, to count for ``run``, given the runs before
    and after it: from EARLY_START_SECONDS before it to ``grace_seconds`` after it, but never into the
    window of a neighbouring run: when runs are closer than twice EARLY_START_SECONDS, two neighbours
    share the time between them half and half. One backup therefore never counts for two runs, which is
    what lets the backup of the next run leave a missed run missed."""
    start = run - min(EARLY_START_SECONDS, (run - previous) / 2)
    end = min(run + grace_seconds, following - min(EARLY_START_SECONDS, (following - run) / 2))
    return start, end


def judged_from(
    *,
    active_since: float | None,
    listed_at: float,
    retention_seconds: float,
    complete_since: float | None,
    oldest_initiated: float | None,
) -> float:
    """The earliest run of a schedule that can be judged from a backup listing read at ``listed_at``
    (API time) that is complete from ``complete_since`` on.

    A run before the schedule's creation (``active_since``) was never due. A run whose backup would have
    expired by the time of the listing (its retention, less RETENTION_MARGIN_SECONDS) cannot be told
    from a missed one. Without a creation time a schedule created a minute ago cannot be told from one
    that stopped long ago: only runs from the oldest backup it could have made (``oldest_initiated``)
    on are judged, and none when it has no backup at all (NorthflankBackupNeverCompleted and TooOld
    still see such an addon).
    """
    bounds = [listed_at - retention_seconds + RETENTION_MARGIN_SECONDS + EARLY_START_SECONDS]
    if complete_since is not None:
        bounds.append(complete_since + EARLY_START_SECONDS)
    if active_since is not None:
        bounds.append(active_since)
    elif oldest_initiated is not None:
        bounds.append(oldest_initiated)
    else:
        return math.inf
    return max(bounds)


@dataclass(frozen=True, slots=True)
class RunVerdicts:
    """What the judged runs of a schedule say at one instant."""

    #: Runs missed within the last ``recent_seconds`` (by the time of the run).
    recent_missed: int
    #: The newest run judged missed within the look-back, or None.
    last_missed: float | None
    #: Whether the newest run whose grace has ended was missed (False when it cannot be judged).
    newest_missed: bool
    #: The verdicts above hold from the instant they were made until just before this one.
    valid_until: float


def judge_runs(
    calendar: ScheduleCalendar,
    *,
    initiated: Sequence[float],
    now: float,
    grace_seconds: float,
    not_before: float,
    lookback_seconds: float,
    recent_seconds: float = RECENT_SECONDS,
    listed_at: float | None = None,
) -> RunVerdicts:
    """Judge every run ``r`` with ``r >= not_before``, ``r > now - lookback_seconds`` and whose grace
    has ended (``r + grace_seconds <= now``): it was missed when no time in ``initiated`` (backup
    initiations, ascending) lies in its window (see ``run_window``).

    A verdict depends on nothing but the initiations around its run, so a run judged missed stays
    missed whatever happens after it, until it leaves the look-back.

    ``listed_at`` is when the initiations were read: a run whose grace ends after it is not judged yet,
    since its backup may have started after the read. A stale listing (the API down, the budget
    stretched) therefore delays verdicts instead of inventing misses.

    The same results as :func:`judge_runs_reference`, bit for bit, several times faster, because the
    status page judges every schedule of the account on its first visit: a window's widths depend only
    on the run's offset within the period (computed once per calendar), so the runs of each offset are
    an arithmetic progression judged by one bisect each, in integers. Runs and window edges are whole or
    half seconds, exact in a float below 2**51; beyond that (hostile instants) the reference decides.
    """
    start = now - lookback_seconds
    if not_before > start:
        start = math.ceil(not_before) - 1 if math.isfinite(not_before) else math.inf
    judged_until = now if listed_at is None else min(now, listed_at)
    last = judged_until - grace_seconds
    valid_until = calendar.next_run(now - grace_seconds) + grace_seconds
    if start >= last:
        return RunVerdicts(0, None, False, valid_until)
    if not (start > -_EXACT and last < _EXACT and -_EXACT < grace_seconds < _EXACT):
        return judge_runs_reference(
            calendar,
            initiated=initiated,
            now=now,
            grace_seconds=grace_seconds,
            not_before=not_before,
            lookback_seconds=lookback_seconds,
            recent_seconds=recent_seconds,
            listed_at=listed_at,
        )
    period, size = calendar.period_seconds, len(initiated)
    first_after, end = math.floor(start) + 1, math.floor(last)
    missed_runs: list[int] = []
    newest: int | None = None
    for offset, early, late in zip(calendar.offsets, calendar.early, calendar.late, strict=True):
        # This offset's runs in (start, last]: ANCHOR + offset + k * period.
        base = ANCHOR + offset
        first = first_after + (base - first_after) % period
        if first > end:
            continue
        own_newest = end - (end - base) % period
        newest = own_newest if newest is None else max(newest, own_newest)
        # run_window, with the run's own window widths: min(run + grace, run + late) is run + min(grace,
        # late) since rounding is monotonic. A run is missed when no initiation lies in its window.
        width = min(grace_seconds, late)
        missed_runs += [
            run
            for run in range(first, end + 1, period)
            if (at := bisect_left(initiated, run - early)) == size or initiated[at] >= run + width
        ]
    if newest is None:
        return RunVerdicts(0, None, False, valid_until)
    if len(calendar.offsets) > 1:
        missed_runs.sort()
    recent_from = now - recent_seconds
    # The first missed run after recent_from (ints against a float: compared exactly, as the floats were).
    if math.isfinite(recent_from):
        recent_index = bisect_right(missed_runs, math.floor(recent_from))
    else:  # -inf: every run is recent; +inf or NaN (no comparison holds): none is
        recent_index = 0 if recent_from < 0 else len(missed_runs)
    recent = len(missed_runs) - recent_index
    last_missed = float(missed_runs[-1]) if missed_runs else None
    # The newest run whose grace has ended may be past the listing: then it is not judged yet, not missed.
    missed = bool(missed_runs) and missed_runs[-1] == newest == calendar.previous_run(now - grace_seconds)
    if recent:
        valid_until = min(valid_until, float(missed_runs[recent_index]) + recent_seconds)
    if last_missed is not None:
        valid_until = min(valid_until, last_missed + lookback_seconds)
    return RunVerdicts(recent, last_missed, missed, valid_until)


#: Below this, runs (whole seconds) and window edges (whole or half seconds) are exact floats.
_EXACT = float(2**51)


def judge_runs_reference(
    calendar: ScheduleCalendar,
    *,
    initiated: Sequence[float],
    now: float,
    grace_seconds: float,
    not_before: float,
    lookback_seconds: float,
    recent_seconds: float = RECENT_SECONDS,
    listed_at: float | None = None,
) -> RunVerdicts:
    """The specification of :func:`judge_runs`, kept as written for clarity (one run at a time, through
    ``runs_between`` and ``run_window``): tests check that the faster walk gives identical results.

    Judge every run ``r`` with ``r >= not_before``, ``r > now - lookback_seconds`` and whose grace
    has ended (``r + grace_seconds <= now``): it was missed when no time in ``initiated`` (backup
    initiations, ascending) lies in its window (see ``run_window``).

    A verdict depends on nothing but the initiations around its run, so a run judged missed stays
    missed whatever happens after it, until it leaves the look-back.

    ``listed_at`` is when the initiations were read: a run whose grace ends after it is not judged yet,
    since its backup may have started after the read. A stale listing (the API down, the budget
    stretched) therefore delays verdicts instead of inventing misses.
    """
    # Runs fall on whole seconds: ``r > ceil(not_before) - 1`` is ``r >= not_before``.
    start = now - lookback_seconds
    if not_before > start:
        start = math.ceil(not_before) - 1 if math.isfinite(not_before) else math.inf
    judged_until = now if listed_at is None else min(now, listed_at)
    last = judged_until - grace_seconds
    # The verdicts change when a newer run's grace ends (judged, or past the listing and so not missed).
    valid_until = calendar.next_run(now - grace_seconds) + grace_seconds
    if start >= last:
        return RunVerdicts(0, None, False, valid_until)
    runs = list(calendar.runs_between(start, last))
    recent_from = now - recent_seconds
    recent = 0
    oldest_recent: float | None = None
    last_missed: float | None = None
    missed = False
    previous = calendar.previous_run(runs[0] - 1) if runs else 0.0
    for index, run in enumerate(runs):
        following = runs[index + 1] if index + 1 < len(runs) else calendar.next_run(run)
        low, high = run_window(run, previous=previous, following=following, grace_seconds=grace_seconds)
        previous = run
        at = bisect_left(initiated, low)
        missed = at == len(initiated) or initiated[at] >= high
        if missed:
            last_missed = run
            if run > recent_from:
                recent += 1
                if oldest_recent is None:
                    oldest_recent = run
    if runs and runs[-1] != calendar.previous_run(now - grace_seconds):
        # The newest run whose grace has ended is past the listing: not judged yet, so not missed.
        missed = False
    if oldest_recent is not None:
        valid_until = min(valid_until, oldest_recent + recent_seconds)
    if last_missed is not None:
        valid_until = min(valid_until, last_missed + lookback_seconds)
    return RunVerdicts(recent, last_missed, missed, valid_until)


__all__ = [
    "ANCHOR",
    "DAY",
    "EARLY_START_SECONDS",
    "HOUR",
    "HOURLY_LOOKBACK_SECONDS",
    "MAX_LOOKBACK_SECONDS",
    "RECENT_SECONDS",
    "RETENTION_MARGIN_SECONDS",
    "WEEK",
    "RunVerdicts",
    "ScheduleCalendar",
    "judge_runs",
    "judge_runs_reference",
    "judged_from",
    "lookback_seconds",
    "run_window",
]

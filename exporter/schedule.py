"""When a Northflank backup schedule fires, and whether it has missed a run.

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
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
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
        offsets = self.offsets
        wrap = offsets[0] + self.period_seconds - offsets[-1]
        return max(wrap, max((b - a for a, b in pairwise(offsets)), default=0))


def missed_run(
    calendar: ScheduleCalendar,
    *,
    last_initiated: float | None,
    now: float,
    grace_seconds: float,
    lead_seconds: float = 900,
    active_since: float | None = None,
) -> float | None:
    """The scheduled run that passed without a backup, or None when the schedule is on track.

    Only the newest run older than the grace period is judged: the newest backup (of any status) covers
    it when it was initiated no earlier than ``lead_seconds`` before the run, since Northflank may start
    a scheduled backup a little early. Judging an older run could only repeat the verdict (a backup
    recent enough for the newest run is recent enough for every older one), and judging a newer run
    would call a backup missed while it may still be starting. Runs before ``active_since`` (when the
    schedule was created) were never due.
    """
    # The grace is subtracted from now rather than added to the run so that a schedule whose runs are
    # closer together than the grace (hourly with 2 h) still has a run old enough to be missed.
    run = calendar.previous_run(now - grace_seconds)
    if active_since is not None and run < active_since:
        return None
    if last_initiated is not None and last_initiated >= run - lead_seconds:
        return None
    return run


def is_missed(
    calendar: ScheduleCalendar,
    *,
    last_initiated: float | None,
    now: float,
    grace_seconds: float,
    lead_seconds: float = 900,
    active_since: float | None = None,
) -> bool:
    """Whether the schedule missed its newest run older than the grace period; see ``missed_run``."""
    return (
        missed_run(
            calendar,
            last_initiated=last_initiated,
            now=now,
            grace_seconds=grace_seconds,
            lead_seconds=lead_seconds,
            active_since=active_since,
        )
        is not None
    )


__all__ = ["ANCHOR", "DAY", "HOUR", "WEEK", "ScheduleCalendar", "is_missed", "missed_run"]

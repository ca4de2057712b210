"""Schedule arithmetic, checked against a brute-force oracle that walks the calendar minute by minute.

The oracle shares nothing with the code under test: no anchor, no offsets, no bisect. It asks
``datetime`` what the weekday, hour and minute of each minute are, exactly as the Northflank docs
describe a schedule, so an error in the anchor or the offset arithmetic cannot hide in both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.northflank.models import Interval, Scheduling
from exporter.schedule import (
    ANCHOR,
    DAY,
    EARLY_START_SECONDS,
    HOUR,
    RETENTION_MARGIN_SECONDS,
    WEEK,
    RunVerdicts,
    ScheduleCalendar,
    judge_runs,
    judged_from,
    run_window,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60
#: Far enough back and forth to cross the epoch, the weekly anchor, leap years and 2038.
FIRST_INSTANT = int(datetime(1960, 1, 1, tzinfo=UTC).timestamp())
LAST_INSTANT = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
INTERVALS: tuple[Interval, ...] = ("hourly", "daily", "weekly")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def utc(timestamp: float) -> datetime:
    return EPOCH + timedelta(seconds=timestamp)


# --- the oracle -----------------------------------------------------------------------------------


def fires(scheduling: Scheduling, minute_start: int) -> bool:
    """Whether the schedule fires at this whole minute, straight from the definition of a schedule."""
    moment = EPOCH + timedelta(seconds=minute_start)
    if moment.minute not in scheduling.minute:
        return False
    if scheduling.interval == "hourly":
        return True
    assert scheduling.hour is not None
    if moment.hour not in scheduling.hour:
        return False
    if scheduling.interval == "daily":
        return True
    assert scheduling.day is not None
    return moment.weekday() in scheduling.day


def oracle_previous(scheduling: Scheduling, at: float) -> float:
    minute = math.floor(at / MINUTE) * MINUTE
    # Every schedule fires at least once a week, so a week and a minute of steps always finds a run.
    for _ in range(WEEK // MINUTE + 2):
        if minute <= at and fires(scheduling, minute):
            return float(minute)
        minute -= MINUTE
    raise AssertionError("no run within a week")


def oracle_next(scheduling: Scheduling, at: float) -> float:
    minute = math.floor(at / MINUTE) * MINUTE
    for _ in range(WEEK // MINUTE + 2):
        if minute > at and fires(scheduling, minute):
            return float(minute)
        minute += MINUTE
    raise AssertionError("no run within a week")


def oracle_runs(scheduling: Scheduling, start: float, end: float) -> list[float]:
    minute = math.floor(start / MINUTE) * MINUTE
    runs = []
    while minute <= end:
        if minute > start and fires(scheduling, minute):
            runs.append(float(minute))
        minute += MINUTE
    return runs


def oracle_max_interval(scheduling: Scheduling) -> int:
    # A week is a whole number of every period, so the gaps within one week, plus the wrap to the next
    # week, are all the gaps there are.
    monday = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    assert utc(monday).weekday() == 0
    runs = [t for t in range(monday, monday + WEEK, MINUTE) if fires(scheduling, t)]
    gaps = [b - a for a, b in zip(runs, [*runs[1:], runs[0] + WEEK], strict=True)]
    return max(gaps)


def oracle_judge(
    scheduling: Scheduling,
    *,
    initiated: Sequence[float],
    now: float,
    grace_seconds: float,
    not_before: float,
    lookback_seconds: float,
    recent_seconds: float,
) -> tuple[int, float | None, bool]:
    """Walks every minute of the look-back; a run is missed when no initiation lies within its window:
    from EARLY_START_SECONDS before it (or half-way from the run before, when that is closer) until
    the end of its grace, or until the next run's window begins if that is sooner."""
    early = EARLY_START_SECONDS
    minute = math.floor((now - lookback_seconds) / MINUTE) * MINUTE
    recent, last, newest = 0, None, False
    while minute <= now - grace_seconds:
        if minute > now - lookback_seconds and minute >= not_before and fires(scheduling, minute):
            before, after = oracle_previous(scheduling, minute - 1), oracle_next(scheduling, minute)
            low = minute - min(early, (minute - before) / 2)
            high = min(minute + grace_seconds, after - min(early, (after - minute) / 2))
            newest = not any(low <= t < high for t in initiated)
            if newest:
                last = float(minute)
                recent += minute > now - recent_seconds
        minute += MINUTE
    return recent, last, newest


# --- strategies -----------------------------------------------------------------------------------


def _lists(high: int, most: int) -> st.SearchStrategy[tuple[int, ...]]:
    # Duplicates allowed on purpose: nothing in the model forbids them.
    return st.lists(st.integers(0, high), min_size=1, max_size=most).map(tuple)


@st.composite
def schedulings(draw: st.DrawFn) -> Scheduling:
    interval = draw(st.sampled_from(INTERVALS))
    minute = draw(_lists(59, 4))
    # Lists an interval ignores are sometimes present, as the API may send them.
    hour = draw(_lists(23, 4)) if interval != "hourly" else draw(st.none() | _lists(23, 4))
    day = draw(_lists(6, 3)) if interval == "weekly" else draw(st.none() | _lists(6, 3))
    return Scheduling(interval=interval, minute=minute, hour=hour, day=day)


def _run_of(scheduling: Scheduling, draw: st.DrawFn) -> float:
    """An exact run time, built from the schedule's own lists rather than from the code under test."""
    day = draw(st.integers(FIRST_INSTANT // DAY, LAST_INSTANT // DAY - 7))
    date = EPOCH + timedelta(days=day)
    if scheduling.interval == "weekly":
        assert scheduling.day is not None
        date += timedelta(days=(draw(st.sampled_from(scheduling.day)) - date.weekday()) % 7)
    if scheduling.interval == "hourly":
        hour = draw(st.integers(0, 23))
    else:
        assert scheduling.hour is not None
        hour = draw(st.sampled_from(scheduling.hour))
    run = date + timedelta(hours=hour, minutes=draw(st.sampled_from(scheduling.minute)))
    return run.timestamp()


_NUDGES = st.sampled_from([0.0, 0.0, 0.0, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0, 59.0, -59.0, 60.0, -60.0])


@st.composite
def instants(draw: st.DrawFn, scheduling: Scheduling) -> float:
    """Anywhere in two and a half centuries, often exactly on a run or a hair either side of one."""
    if draw(st.booleans()):
        return _run_of(scheduling, draw) + draw(_NUDGES)
    seconds = draw(st.integers(FIRST_INSTANT, LAST_INSTANT))
    return seconds + draw(st.sampled_from([0.0, 0.25, 0.999]))


def calendar(
    interval: Interval,
    minute: Sequence[int],
    hour: Sequence[int] | None = None,
    day: Sequence[int] | None = None,
) -> ScheduleCalendar:
    return ScheduleCalendar.from_scheduling(
        Scheduling(
            interval=interval,
            minute=tuple(minute),
            hour=None if hour is None else tuple(hour),
            day=None if day is None else tuple(day),
        )
    )


# --- properties against the oracle ---------------------------------------------------------------

# The oracle walks up to a week of minutes per example; these counts keep the file well under 20 s.
ORACLE = settings(max_examples=150, deadline=None)


@ORACLE
@given(st.data())
def test_previous_run_matches_the_oracle(data: st.DataObject) -> None:
    scheduling = data.draw(schedulings())
    at = data.draw(instants(scheduling))
    run = ScheduleCalendar.from_scheduling(scheduling).previous_run(at)
    assert type(run) is float
    assert run == oracle_previous(scheduling, at)


@ORACLE
@given(st.data())
def test_next_run_matches_the_oracle(data: st.DataObject) -> None:
    scheduling = data.draw(schedulings())
    at = data.draw(instants(scheduling))
    run = ScheduleCalendar.from_scheduling(scheduling).next_run(at)
    assert type(run) is float
    assert run == oracle_next(scheduling, at)


@ORACLE
@given(st.data())
def test_runs_between_matches_the_oracle(data: st.DataObject) -> None:
    scheduling = data.draw(schedulings())
    start = data.draw(instants(scheduling))
    # Up to eight days on, often moved onto a run (found by the oracle) and nudged either side of it, so
    # both ends of the window sit on the boundaries; a negative length must give nothing.
    end = start + data.draw(st.integers(-60, 8 * DAY // MINUTE)) * MINUTE
    if data.draw(st.booleans()):
        end = oracle_next(scheduling, end) + data.draw(_NUDGES)
    runs = list(ScheduleCalendar.from_scheduling(scheduling).runs_between(start, end))
    assert runs == oracle_runs(scheduling, start, end)


@settings(max_examples=60, deadline=None)
@given(schedulings())
def test_max_interval_matches_the_oracle(scheduling: Scheduling) -> None:
    assert ScheduleCalendar.from_scheduling(scheduling).max_interval_seconds == oracle_max_interval(
        scheduling
    )


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_judge_runs_matches_the_oracle(data: st.DataObject) -> None:
    scheduling = data.draw(schedulings())
    cal = ScheduleCalendar.from_scheduling(scheduling)
    now = data.draw(instants(scheduling))
    grace = data.draw(st.sampled_from([0.0, 900.0, 7200.0, float(DAY)]) | st.floats(0, 2 * DAY))
    lookback = data.draw(st.sampled_from([float(DAY), 2.0 * DAY, 8.0 * DAY]))
    recent = data.draw(st.sampled_from([float(HOUR), float(DAY)]))
    # Initiations near runs (on the edges of their windows) and anywhere, some runs left without one.
    runs = oracle_runs(scheduling, now - lookback - HOUR, now)
    near = st.sampled_from(runs or [now]).flatmap(
        lambda run: st.sampled_from([-EARLY_START_SECONDS, -1.0, 0.0, 90.0, grace - 1, grace, 3000.0]).map(
            lambda offset: run + offset
        )
    )
    initiated = sorted(data.draw(st.lists(near | st.floats(now - lookback - DAY, now + HOUR), max_size=30)))
    not_before = data.draw(st.sampled_from([-math.inf, math.inf]) | st.floats(now - 2 * lookback, now))
    found = judge_runs(
        cal,
        initiated=initiated,
        now=now,
        grace_seconds=grace,
        not_before=not_before,
        lookback_seconds=lookback,
        recent_seconds=recent,
    )
    expected = oracle_judge(
        scheduling,
        initiated=initiated,
        now=now,
        grace_seconds=grace,
        not_before=not_before,
        lookback_seconds=lookback,
        recent_seconds=recent,
    )
    assert (found.recent_missed, found.last_missed, found.newest_missed) == expected
    # Nothing changes before valid_until: a later instant up to it gives the same verdicts.
    assert found.valid_until > now
    # A millisecond short of it: near 1e5 s, float rounding moves a window's edge by a few 1e-12 s.
    later = now + data.draw(st.floats(0, 1)) * max(0.0, min(found.valid_until, now + 8 * DAY) - now - 1e-3)
    if later < found.valid_until:
        again = judge_runs(
            cal,
            initiated=initiated,
            now=later,
            grace_seconds=grace,
            not_before=not_before,
            lookback_seconds=lookback,
            recent_seconds=recent,
        )
        assert (again.recent_missed, again.last_missed, again.newest_missed) == expected


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_runs_repeat_every_period(data: st.DataObject) -> None:
    """Cheap, so run often: shifting an instant by whole periods shifts its runs by the same amount."""
    scheduling = data.draw(schedulings())
    cal = ScheduleCalendar.from_scheduling(scheduling)
    at = data.draw(instants(scheduling))
    shift = data.draw(st.integers(-5_000, 5_000)) * cal.period_seconds
    assert cal.previous_run(at + shift) == cal.previous_run(at) + shift
    assert cal.next_run(at + shift) == cal.next_run(at) + shift
    assert cal.previous_run(at) <= at < cal.next_run(at)
    assert cal.next_run(at) - cal.previous_run(at) <= cal.max_interval_seconds
    assert cal.previous_run(cal.next_run(at)) == cal.next_run(at)


# --- hand-written examples, which double as documentation -----------------------------------------


def test_weekly_friday_evening() -> None:
    cal = calendar("weekly", minute=[30], hour=[18], day=[4])
    assert cal.period_seconds == WEEK
    assert cal.offsets == (4 * DAY + 18 * HOUR + 30 * MINUTE,)
    wednesday = ts("2024-06-12T09:00:00")
    assert cal.next_run(wednesday) == ts("2024-06-14T18:30:00")
    assert utc(cal.next_run(wednesday)).weekday() == 4
    assert cal.previous_run(wednesday) == ts("2024-06-07T18:30:00")
    assert cal.max_interval_seconds == WEEK


def test_a_run_at_exactly_the_instant_is_previous_not_next() -> None:
    cal = calendar("weekly", minute=[30], hour=[18], day=[4])
    run = ts("2024-06-14T18:30:00")
    assert cal.previous_run(run) == run
    assert cal.next_run(run) == run + WEEK
    assert cal.previous_run(run - 0.001) == run - WEEK
    assert cal.next_run(run - 0.001) == run


def test_hourly_on_the_half_hour() -> None:
    cal = calendar("hourly", minute=[30, 0])
    assert cal.period_seconds == HOUR
    assert cal.offsets == (0, 30 * MINUTE)
    assert cal.max_interval_seconds == 1800
    # The start is excluded and the end included, so consecutive windows never count a run twice.
    runs = list(cal.runs_between(ts("2024-01-01T00:00:00"), ts("2024-01-01T01:30:00")))
    assert runs == [ts("2024-01-01T00:30:00"), ts("2024-01-01T01:00:00"), ts("2024-01-01T01:30:00")]


def test_daily_max_interval_is_a_day() -> None:
    cal = calendar("daily", minute=[30], hour=[2])
    assert cal.period_seconds == DAY
    assert cal.offsets == (2 * HOUR + 30 * MINUTE,)
    assert cal.max_interval_seconds == 86_400


def test_max_interval_is_the_longest_gap_including_the_wrap() -> None:
    # Monday and Wednesday: two days, then five days from Wednesday round to Monday.
    assert calendar("weekly", minute=[0], hour=[3], day=[0, 2]).max_interval_seconds == 5 * DAY
    # 00:00 and 06:00: six hours, then eighteen round to midnight.
    assert calendar("daily", minute=[0], hour=[0, 6]).max_interval_seconds == 18 * HOUR
    assert calendar("hourly", minute=[10, 20, 50]).max_interval_seconds == 30 * MINUTE


def test_lists_an_interval_does_not_use_are_ignored_and_duplicates_collapse() -> None:
    assert calendar("hourly", minute=[5], hour=[1, 2], day=[3]) == calendar("hourly", minute=[5])
    assert calendar("daily", minute=[5], hour=[1], day=[3]) == calendar("daily", minute=[5], hour=[1])
    assert calendar("daily", minute=[5, 5], hour=[1, 1]).offsets == (HOUR + 5 * MINUTE,)


def test_every_combination_of_the_lists_is_a_run() -> None:
    cal = calendar("weekly", minute=[0, 45], hour=[1, 13], day=[6, 0])
    monday = ts("2024-01-01T00:00:00")
    runs = [utc(run) for run in cal.runs_between(monday, monday + WEEK)]
    assert [(r.weekday(), r.hour, r.minute) for r in runs] == [
        (0, 1, 0), (0, 1, 45), (0, 13, 0), (0, 13, 45),
        (6, 1, 0), (6, 1, 45), (6, 13, 0), (6, 13, 45),
    ]  # fmt: skip


def test_the_weekly_anchor_is_a_monday_and_times_before_it_work() -> None:
    assert ts("1970-01-05T00:00:00") == ANCHOR
    assert utc(ANCHOR).weekday() == 0
    mondays = calendar("weekly", minute=[0], hour=[0], day=[0])
    # The epoch is a Thursday, between the anchor's Monday and the one before.
    assert mondays.next_run(0.0) == ANCHOR
    assert mondays.previous_run(0.0) == ts("1969-12-29T00:00:00")
    assert mondays.previous_run(ts("1901-01-01T00:00:00")) == ts("1900-12-31T00:00:00")


def test_runs_between_is_lazy_and_empty_for_an_empty_window() -> None:
    cal = calendar("hourly", minute=[0])
    start = ts("2024-01-01T00:00:00")
    lazy = cal.runs_between(start, start + 1e12)
    assert isinstance(lazy, Iterator)
    assert next(lazy) == start + HOUR
    assert list(cal.runs_between(start, start)) == []
    assert list(cal.runs_between(start + HOUR, start)) == []


@pytest.mark.parametrize(
    ("period", "offsets"),
    [(0, (0,)), (HOUR, ()), (HOUR, (HOUR,)), (HOUR, (-1,)), (HOUR, (60, 0)), (HOUR, (0, 0))],
)
def test_an_inconsistent_calendar_is_refused(period: int, offsets: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"period|offsets|run"):
        ScheduleCalendar(period, offsets)


def test_an_unvalidated_daily_schedule_without_hours_is_refused() -> None:
    scheduling = Scheduling.model_construct(interval="daily", minute=(0,), hour=None, day=None)
    with pytest.raises(ValueError, match="at least one run"):
        ScheduleCalendar.from_scheduling(scheduling)


# --- missed runs -----------------------------------------------------------------------------------

HOURLY = calendar("hourly", minute=[0])
DAILY = calendar("daily", minute=[30], hour=[2])
GRACE = 7200.0
#: The schedules below were created then.
CREATED = ts("2024-01-01T00:00:00")


def verdicts(
    cal: ScheduleCalendar, initiated: Sequence[float], now: float, *, not_before: float = CREATED
) -> RunVerdicts:
    return judge_runs(
        cal,
        initiated=sorted(initiated),
        now=now,
        grace_seconds=GRACE,
        not_before=not_before,
        lookback_seconds=2 * DAY,
    )


def hours(first: str, count: int, *, skip: Sequence[str] = (), delay: float = 60.0) -> list[float]:
    """The initiations of an hourly run from ``first`` on, ``delay`` after each run, but for ``skip``."""
    start = ts(first)
    skipped = {ts(s) for s in skip}
    return [start + k * HOUR + delay for k in range(count) if start + k * HOUR not in skipped]


def test_a_single_missed_hourly_run_is_reported_once_its_grace_has_ended_and_stays_missed() -> None:
    # Every hour from 00:00 but 10:00; the 11:00 run's backup must not make up for the 10:00 one.
    initiated = hours("2024-01-01T00:00:00", 48, skip=["2024-01-01T10:00:00"])
    missed = ts("2024-01-01T10:00:00")
    before = verdicts(HOURLY, initiated, missed + GRACE - 1)
    assert (before.recent_missed, before.last_missed, before.newest_missed) == (0, None, False)
    assert before.valid_until == missed + GRACE
    at = verdicts(HOURLY, initiated, missed + GRACE)
    assert (at.recent_missed, at.last_missed, at.newest_missed) == (1, missed, True)
    # Later runs were made: the newest judged run is fine, the missed one is still counted.
    later = verdicts(HOURLY, initiated, missed + 10 * HOUR)
    assert (later.recent_missed, later.last_missed, later.newest_missed) == (1, missed, False)
    # It leaves the count 24 hours after it was due, and the last-missed time after the look-back.
    assert verdicts(HOURLY, initiated, missed + DAY - 1).recent_missed == 1
    gone = verdicts(HOURLY, initiated, missed + DAY)
    assert (gone.recent_missed, gone.last_missed) == (0, missed)


def test_a_late_backup_counts_until_the_grace_ends_but_never_for_two_runs() -> None:
    run = ts("2024-01-02T02:30:00")
    yesterday = run - DAY + 60
    judged = run + GRACE
    # A daily run may start up to the grace late...
    assert verdicts(DAILY, [yesterday, run + GRACE - 1], judged).newest_missed is False
    assert verdicts(DAILY, [yesterday, run + GRACE], judged).newest_missed is True
    # ...and up to EARLY_START_SECONDS early.
    assert verdicts(DAILY, [yesterday, run - EARLY_START_SECONDS], judged).newest_missed is False
    assert verdicts(DAILY, [yesterday, run - EARLY_START_SECONDS - 1], judged).newest_missed is True
    # An hourly run's backup late by more than the gap to the next run's early start is the next run's.
    ten = ts("2024-01-01T10:00:00")
    late = [ten - HOUR + 60, ten + HOUR - EARLY_START_SECONDS, ten + HOUR + 60]
    result = verdicts(HOURLY, late, ten + GRACE, not_before=ten - HOUR)
    assert (result.recent_missed, result.last_missed) == (1, ten)
    just_in_time = [ten - HOUR + 60, ten + HOUR - EARLY_START_SECONDS - 1, ten + HOUR + 60]
    assert verdicts(HOURLY, just_in_time, ten + GRACE, not_before=ten - HOUR).recent_missed == 0


def test_runs_closer_than_the_early_start_split_the_time_between_them() -> None:
    cal = calendar("hourly", minute=[0, 2])
    run = ts("2024-01-01T10:00:00")
    assert run_window(run, previous=run - 58 * MINUTE, following=run + 120, grace_seconds=GRACE) == (
        run - EARLY_START_SECONDS,
        run + 60,
    )
    # One backup at 10:00:30 covers 10:00 but not 10:02.
    initiated = [t + 30 for t in cal.runs_between(run - DAY, run + DAY) if t != run + 120]
    result = verdicts(cal, initiated, run + 120 + GRACE)
    assert (result.newest_missed, result.last_missed) == (True, run + 120)


def test_runs_that_cannot_be_judged_are_not_missed() -> None:
    initiated = hours("2024-01-01T12:00:00", 10)  # nothing before 12:00
    now = ts("2024-01-01T20:00:00")
    assert verdicts(HOURLY, initiated, now).recent_missed == 12  # 00:00 to 11:00, all judged
    # Without a bound, every run of the last 24 hours until 11:00: from 21:00 the day before.
    assert verdicts(HOURLY, initiated, now, not_before=-math.inf).recent_missed == 15
    assert verdicts(HOURLY, initiated, now, not_before=ts("2024-01-01T12:00:00")).recent_missed == 0
    assert verdicts(HOURLY, initiated, now, not_before=ts("2024-01-01T11:00:00")).recent_missed == 1
    assert verdicts(HOURLY, initiated, now, not_before=math.inf) == RunVerdicts(0, None, False, now + HOUR)


def test_judged_from_the_creation_the_retention_and_what_the_listing_holds() -> None:
    listed = ts("2024-01-10T00:00:00")
    created = ts("2024-01-09T00:00:00")

    def since(
        active_since: float | None, oldest_initiated: float | None, complete_since: float | None = None
    ) -> float:
        return judged_from(
            active_since=active_since,
            listed_at=listed,
            retention_seconds=2 * DAY,
            complete_since=complete_since,
            oldest_initiated=oldest_initiated,
        )

    # A run is judged only while its backup would still be retained, with a margin.
    expired = listed - 2 * DAY + RETENTION_MARGIN_SECONDS + EARLY_START_SECONDS
    assert since(created - 5 * DAY, None) == expired
    assert since(created, None) == created
    # The summary keeps initiations from some time on only: runs before it are not judged.
    assert since(None, listed - 3 * DAY, complete_since=listed - DAY) == listed - DAY + EARLY_START_SECONDS
    # Without a creation time, from the oldest backup on; without one either, nothing is judged.
    assert since(None, listed - HOUR) == listed - HOUR
    assert since(None, None) == math.inf

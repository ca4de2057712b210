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
from exporter.schedule import ANCHOR, DAY, HOUR, WEEK, ScheduleCalendar, is_missed, missed_run

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


def oracle_missed(
    scheduling: Scheduling,
    *,
    last_initiated: float | None,
    now: float,
    grace_seconds: float,
    lead_seconds: float,
    active_since: float | None,
) -> bool:
    """Missed when *some* run past its grace, and due, has no backup initiated from ``lead_seconds``
    before it on. A week back is enough: the schedule repeats weekly, and a later copy of a run is at
    least as easy to miss (more of it is due, less of the backup history covers it)."""
    deadline = now - grace_seconds
    newest = math.floor(deadline / MINUTE) * MINUTE
    for minute in range(newest, newest - WEEK - MINUTE, -MINUTE):
        if minute > deadline or not fires(scheduling, minute):
            continue
        due = active_since is None or minute >= active_since
        # A backup stamped after now (clock skew) still shows the schedule is alive.
        covered = last_initiated is not None and last_initiated >= minute - lead_seconds
        if due and not covered:
            return True
    return False


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


@ORACLE
@given(st.data())
def test_is_missed_matches_the_oracle(data: st.DataObject) -> None:
    scheduling = data.draw(schedulings())
    now = data.draw(instants(scheduling))
    grace = data.draw(st.sampled_from([0.0, 900.0, 7200.0, float(DAY)]) | st.floats(0, 2 * DAY))
    lead = data.draw(st.sampled_from([0.0, 900.0]) | st.floats(0, 2 * HOUR))
    # The run that decides, found by the oracle, so the times below land on the edges that matter.
    run = oracle_previous(scheduling, now - grace)
    last_initiated = data.draw(
        st.none() | _NUDGES.map(lambda nudge: run - lead + nudge) | st.floats(now - 8 * DAY, now + HOUR)
    )
    active_since = data.draw(
        st.none() | _NUDGES.map(lambda nudge: run + nudge) | st.floats(now - 8 * DAY, now + HOUR)
    )
    cal = ScheduleCalendar.from_scheduling(scheduling)
    expected = oracle_missed(
        scheduling,
        last_initiated=last_initiated,
        now=now,
        grace_seconds=grace,
        lead_seconds=lead,
        active_since=active_since,
    )
    found = missed_run(
        cal,
        last_initiated=last_initiated,
        now=now,
        grace_seconds=grace,
        lead_seconds=lead,
        active_since=active_since,
    )
    assert found == (run if expected else None)
    assert (
        is_missed(
            cal,
            last_initiated=last_initiated,
            now=now,
            grace_seconds=grace,
            lead_seconds=lead,
            active_since=active_since,
        )
        is expected
    )


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


def test_an_hourly_schedule_with_a_longer_grace_can_still_be_missed() -> None:
    now = ts("2024-01-01T12:10:00")
    # 12:00 and 11:00 are still within the two hours' grace; 10:00 is the run that is judged.
    assert missed_run(HOURLY, last_initiated=None, now=now, grace_seconds=7200) == ts("2024-01-01T10:00:00")
    assert is_missed(HOURLY, last_initiated=ts("2024-01-01T09:00:00"), now=now, grace_seconds=7200)
    assert not is_missed(HOURLY, last_initiated=ts("2024-01-01T10:00:00"), now=now, grace_seconds=7200)
    assert not is_missed(HOURLY, last_initiated=ts("2024-01-01T11:00:00"), now=now, grace_seconds=7200)


def test_a_backup_started_up_to_the_lead_before_the_run_counts() -> None:
    now = ts("2024-01-01T12:10:00")
    on_the_edge = ts("2024-01-01T09:45:00")  # 15 minutes before the 10:00 run
    assert not is_missed(HOURLY, last_initiated=on_the_edge, now=now, grace_seconds=7200)
    assert is_missed(HOURLY, last_initiated=on_the_edge - 1, now=now, grace_seconds=7200)
    assert is_missed(HOURLY, last_initiated=on_the_edge, now=now, grace_seconds=7200, lead_seconds=0)


def test_runs_before_the_schedule_existed_cannot_be_missed() -> None:
    now = ts("2024-01-01T12:10:00")
    run = ts("2024-01-01T10:00:00")
    assert not is_missed(HOURLY, last_initiated=None, now=now, grace_seconds=7200, active_since=run + 1)
    assert is_missed(HOURLY, last_initiated=None, now=now, grace_seconds=7200, active_since=run)


def test_a_daily_run_is_judged_once_its_grace_has_passed() -> None:
    cal = calendar("daily", minute=[30], hour=[2])
    yesterday = ts("2024-01-01T02:31:00")
    # Before 04:30 today's 02:30 run may still be starting: yesterday's run is judged, and was made.
    assert (
        missed_run(cal, last_initiated=yesterday, now=ts("2024-01-02T04:29:59"), grace_seconds=7200) is None
    )
    assert missed_run(cal, last_initiated=yesterday, now=ts("2024-01-02T04:30:00"), grace_seconds=7200) == ts(
        "2024-01-02T02:30:00"
    )

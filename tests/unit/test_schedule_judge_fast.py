"""``judge_runs`` (the fast walk the status page and /metrics use) gives exactly what
``judge_runs_reference`` (one run at a time through ``runs_between`` and ``run_window``) gives.

Exactly: the same RunVerdicts, float for float, or the same exception. The oracle test in test_schedule.py
checks the meaning on Northflank calendars; this one hunts the edges the rewrite could get wrong: any
period, offsets a second apart (windows split in halves), initiations on and a hair off every window
edge, fractional and negative graces, listings older than now, infinite and NaN bounds, and instants
around 2**51 where the fast walk hands over to the reference.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.schedule import (
    DAY,
    HOUR,
    WEEK,
    RunVerdicts,
    ScheduleCalendar,
    judge_runs,
    judge_runs_reference,
    run_window,
)

EDGE = float(2**51)


@st.composite
def calendars(draw: st.DrawFn) -> ScheduleCalendar:
    period = draw(st.sampled_from([HOUR, DAY, WEEK]) | st.integers(1, 2 * DAY))
    # Neighbours from 1 s to a period apart: closer than 2 * EARLY_START_SECONDS, two runs share the time
    # between them half and half (also across the end of the period).
    offset = draw(st.integers(0, period - 1))
    offsets = {offset}
    for gap in draw(st.lists(st.integers(1, 900) | st.integers(1, period), max_size=6)):
        offset += gap
        if offset >= period:
            break
        offsets.add(offset)
    return ScheduleCalendar(period, tuple(sorted(offsets)))


def _near_edges(
    calendar: ScheduleCalendar, now: float, span: float, grace: float
) -> st.SearchStrategy[float]:
    """Instants on a run's window edges, a hair either side, and mid-window."""
    runs = list(calendar.runs_between(now - span, now + calendar.period_seconds))[-60:] or [now]

    def edges(run: float) -> list[float]:
        start, end = run_window(
            run,
            previous=calendar.previous_run(run - 1),
            following=calendar.next_run(run),
            grace_seconds=grace if math.isfinite(grace) else 0.0,
        )
        return [start, end, math.nextafter(start, -math.inf), math.nextafter(end, -math.inf), run, run + 0.5]

    return st.sampled_from(runs).flatmap(lambda run: st.sampled_from(edges(run)))


def _outcome(judge: Any, **kwargs: Any) -> RunVerdicts | str:
    try:
        return judge(**kwargs)  # type: ignore[no-any-return]
    except (ValueError, OverflowError) as error:
        return type(error).__name__


def _same(a: RunVerdicts | str, b: RunVerdicts | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (a.recent_missed, a.last_missed, a.newest_missed) == (
        b.recent_missed,
        b.last_missed,
        b.newest_missed,
    ) and (a.valid_until == b.valid_until or (math.isnan(a.valid_until) and math.isnan(b.valid_until)))


INSTANTS = (
    st.floats(-3e9, 7e9)
    | st.integers(-3 * 10**9, 7 * 10**9).map(float)
    | st.sampled_from([EDGE - DAY, EDGE - 1.0, EDGE, EDGE + 1.0, -EDGE + DAY, 1e300, -1e300])
)
GRACES = st.sampled_from([0.0, 300.0, 7200.0, 86_400.0, -600.0, 0.5, math.inf, math.nan]) | st.floats(
    -DAY, 3 * DAY
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_fast_walk_matches_the_reference(data: st.DataObject) -> None:
    calendar = data.draw(calendars())
    now = data.draw(INSTANTS)
    grace = data.draw(GRACES)
    # Up to 40 periods back (a few hundred runs at most, so the reference stays quick).
    lookback = data.draw(
        st.floats(0, 40 * calendar.period_seconds) | st.sampled_from([float(DAY), 35.0 * DAY, math.inf])
    )
    recent = data.draw(st.sampled_from([float(DAY), 0.0, math.inf, -math.inf]) | st.floats(0, 3 * DAY))
    span = min(lookback, 40.0 * calendar.period_seconds) if math.isfinite(now) else 0.0
    near = _near_edges(calendar, now, span, grace) if abs(now) < 1e12 else st.just(now)
    initiated = sorted(data.draw(st.lists(near | st.floats(now - span - DAY, now + HOUR), max_size=40)))
    not_before = data.draw(
        st.sampled_from([-math.inf, math.inf]) | st.floats(now - 2 * span - DAY, now + DAY) | near
    )
    listed_at = data.draw(st.none() | st.floats(now - 2 * DAY, now + DAY) | near)
    kwargs: dict[str, Any] = {
        "initiated": initiated,
        "now": now,
        "grace_seconds": grace,
        "not_before": not_before,
        "lookback_seconds": lookback,
        "recent_seconds": recent,
        "listed_at": listed_at,
    }
    fast = _outcome(judge_runs, calendar=calendar, **kwargs)
    reference = _outcome(judge_runs_reference, calendar=calendar, **kwargs)
    assert _same(fast, reference), (fast, reference)


def test_a_fleet_of_daily_schedules_is_judged_alike() -> None:
    """The bench's shape (a daily run, backups around it, some outside the window), judged both ways."""
    calendar = ScheduleCalendar(DAY, (2 * HOUR + 30 * 60,))
    now = 1_763_640_000.0
    for minutes in range(0, 90, 7):
        initiated = [now - d * DAY - 9 * HOUR - minutes * 60 for d in range(40, -1, -1)]
        initiated[10] += 5 * HOUR  # one run left without a backup, a late one elsewhere
        kwargs: dict[str, Any] = {
            "initiated": initiated,
            "now": now,
            "grace_seconds": 7200.0,
            "not_before": now - 30 * DAY,
            "lookback_seconds": 35.0 * DAY,
            "listed_at": now,
        }
        assert judge_runs(calendar, **kwargs) == judge_runs_reference(calendar, **kwargs)

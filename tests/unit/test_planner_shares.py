"""The fast tier takes what the other tiers leave (issue 9, part 3): the buckets' shares are fitted to the
fleet, the fast tier borrows idle budget at once, and an addon whose runs come daily or more often is
floored by its runs once the budget is short."""

from __future__ import annotations

import pytest

from exporter.planner.policy import (
    BUCKET_SHARES,
    FIRST_CHECK_FRACTION,
    FLOOR_CEILING,
    HOUR,
    SHARE_HEADROOM,
    SPARE_SHARE,
    START_ALLOWANCE,
    PlannerSettings,
    Tier,
    fit_cadence,
    fit_shares,
    plan_backups,
)
from exporter.schedule import ScheduleCalendar
from tests.support import max_in_rolling_hour
from tests.unit.test_planner import (
    DAILY_AT_0230,
    T0,
    ScriptedAddon,
    run_account,
    summary,
    view,
)

WEEKLY = ScheduleCalendar(7 * 86_400, (2 * 3600,))


def _fit(budget: float, **fleet: int) -> tuple[float, float, float]:
    settings = PlannerSettings()
    counts = {"unscheduled_addons": 0, "run_floored_addons": 0, **fleet}
    cadence = fit_cadence(
        budget,
        addons=counts["addons"],
        floor_addons=counts["floor_addons"],
        discovery_items=counts["discovery_items"],
        unscheduled_addons=counts["unscheduled_addons"],
        settings=settings,
    )
    shares = fit_shares(budget, cadence, **counts)
    return shares.fast, shares.floor, shares.slow


def test_the_fast_tier_gets_what_a_small_fleet_leaves() -> None:
    fast, floor, slow = _fit(500, addons=10, floor_addons=0, discovery_items=4)
    # Ten hourly addons: schedules and restores hourly, discovery half-hourly, no floor; with room to
    # catch up.
    assert slow == pytest.approx(SHARE_HEADROOM * (10 + 10 + 8))
    assert floor == 0
    assert fast == pytest.approx((1 - SPARE_SHARE) * 500 - slow)
    assert fast > BUCKET_SHARES["fast"] * 500  # the old fixed share: 150


def test_a_big_fleet_gives_the_fast_tier_what_runs_refresh_and_never_more_than_the_budget() -> None:
    # The reference fleet at 1000 addons: 100 hourly, 750 daily, 100 weekly, 50 unscheduled.
    fleet = {"addons": 1000, "floor_addons": 900, "unscheduled_addons": 50, "discovery_items": 58}
    fast, floor, slow = _fit(500, **fleet, run_floored_addons=750)
    assert slow == pytest.approx(BUCKET_SHARES["slow"] * 500)
    # The floor keeps the unscheduled addons' and the weekly addons' cadence; the daily ones are left to
    # their runs, and the fast tier gets that budget too.
    assert floor == pytest.approx(SHARE_HEADROOM * (50 / 2.625 + 100 / 10.5))
    assert fast > 1.2 * BUCKET_SHARES["fast"] * 500
    assert fast + floor + slow == pytest.approx((1 - SPARE_SHARE) * 500)
    # Without addons their runs refresh, the floor takes its whole share and the fast tier its least.
    fast, floor, slow = _fit(500, **fleet)
    assert (fast, floor) == pytest.approx((BUCKET_SHARES["fast"] * 500, BUCKET_SHARES["floor"] * 500))


def test_runs_floor_an_addon_only_when_the_budget_is_short() -> None:
    fleet = {"addons": 100, "floor_addons": 90, "discovery_items": 10}
    # An hourly floor (100 addons at 500/h): the daily addons keep their floor, its share counts them.
    _, with_runs, _ = _fit(500, **fleet, run_floored_addons=80)
    _, without, _ = _fit(500, **fleet)
    assert with_runs == without == pytest.approx(min(BUCKET_SHARES["floor"] * 500, SHARE_HEADROOM * 90))


def test_a_daily_addon_is_floored_by_its_runs_once_the_floor_is_stretched() -> None:
    read = T0 + 3 * HOUR
    done = summary(typical=600, initiated=T0 + 2.5 * HOUR, completed=T0 + 2.5 * HOUR + 600)
    next_look = T0 + 26.5 * HOUR + FIRST_CHECK_FRACTION * 600 + START_ALLOWANCE
    # Stretched (the budget is short): the next run's first look, no floor read before it.
    stretched = plan_backups(view(read, done, DAILY_AT_0230), floor=5 * HOUR, floor_unscheduled=HOUR)
    assert (stretched.due, stretched.tier) == (next_look, Tier.FAST)
    # A missed run: the floor reads it a run's interval after the last read.
    missed = plan_backups(view(T0 + 26.5 * HOUR + 200, done, DAILY_AT_0230), floor=5 * HOUR)
    assert (missed.due, missed.tier) == (T0 + 26.5 * HOUR + 200 + 24 * HOUR, Tier.FLOOR)
    # A configured max staleness is a promise: it holds for every addon.
    explicit = plan_backups(view(read, done, DAILY_AT_0230), floor=5 * HOUR, floor_by_runs=False)
    assert (explicit.due, explicit.tier) == (read + 5 * HOUR, Tier.FLOOR)
    # An hourly floor: as before.
    hourly = plan_backups(view(read, done, DAILY_AT_0230), floor=FLOOR_CEILING)
    assert (hourly.due, hourly.tier) == (read + FLOOR_CEILING, Tier.FLOOR)
    # A weekly addon keeps the stretched floor: its runs are too far apart.
    weekly = plan_backups(view(read, done, WEEKLY), floor=5 * HOUR)
    assert (weekly.due, weekly.tier) == (read + 5 * HOUR, Tier.FLOOR)


def test_the_fast_tier_takes_the_budget_the_other_tiers_leave() -> None:
    # Twelve addons each running every hour for ten minutes: their checks need ~60 requests an hour, more
    # than the old fixed share of a 100/h budget (30); the other tiers need ~10 (schedules and restores
    # daily, no floor). Every backup is seen within a follow-up gap or two of its end, none waits for the
    # fast tier to fall ten minutes behind; the budget holds in every rolling hour.
    addons = [
        ScriptedAddon("p", f"a{i:02d}", ScheduleCalendar(3600, (i * 300,)), delay=60, duration=600)
        for i in range(12)
    ]
    settings = PlannerSettings(schedules_interval=24 * HOUR, restores_interval=24 * HOUR)
    account, planner = run_account(addons, hours=8, budget=100, settings=settings)
    assert max_in_rolling_hour([t for t, _, _ in account.calls]) <= 100
    assert account.overlaps == 0
    delays = []
    for scripted in addons:
        reads = account.reads("backups", scripted.addon)
        assert scripted.calendar is not None
        for hour in range(3, 7):
            end = scripted.calendar.next_run(T0 + hour * HOUR) + scripted.delay + scripted.duration
            seen = next(t for t in reads if t >= end)
            delays.append(seen - end)
    assert max(delays) <= 2 * 60, sorted(delays)[-5:]
    fast = [t for t, _, tier in account.tiers if tier is Tier.FAST and T0 + 3 * HOUR <= t < T0 + 8 * HOUR]
    assert len(fast) / 5 > BUCKET_SHARES["fast"] * 100  # more than the old fixed share, every hour
    assert planner.cadence.floor == FLOOR_CEILING

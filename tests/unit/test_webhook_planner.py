"""What a webhook event changes in the planner: the pure policy for pushed addons (push_covered,
plan_backups) and the loop's hint entry points (hint, hint_due, the headroom)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from exporter.budget import RequestBudget
from exporter.clock import FixedClock
from exporter.planner import Planner, Tier, plan_backups
from exporter.planner.policy import (
    FIRST_CHECK_FRACTION,
    FLOOR_CEILING,
    PUSH_FLOOR,
    START_ALLOWANCE,
    push_covered,
    push_fallback,
)
from exporter.virtual_time import VirtualClock
from tests.unit.test_planner import (
    DAILY_AT_0230,
    HOUR,
    HOURLY_AT_0,
    T0,
    Account,
    ScriptedAddon,
    run_account,
    summary,
    view,
)

#: A floor stretched past hourly: the budget is short, pushed addons wait for their events.
SHORT = 5 * HOUR


def test_an_addon_named_after_its_newest_backup_began_is_pushed() -> None:
    read = T0 + 9 * HOUR + 50 * 60
    base = view(read, summary(initiated=T0 + 9 * HOUR, completed=T0 + 9 * HOUR + 600), HOURLY_AT_0)
    assert not push_covered(base)
    assert push_covered(replace(base, pushed_at=T0 + 9 * HOUR + 610))
    # A backup initiated after the latest event: its delivery was lost, poll as usual.
    assert not push_covered(replace(base, pushed_at=T0 + 8 * HOUR))
    # Never named itself, but its project was, lately.
    assert push_covered(replace(base, project_pushed_at=read - HOUR))
    assert not push_covered(replace(base, project_pushed_at=read - 3 * HOUR))


def test_a_pushed_addon_is_checked_only_as_a_fallback_when_the_budget_is_short() -> None:
    read = T0 + 9 * HOUR + 50 * 60
    typical = 600.0
    base = view(
        read,
        summary(typical=typical, initiated=T0 + 9 * HOUR, completed=T0 + 9 * HOUR + 600),
        HOURLY_AT_0,
        pushed_at=T0 + 9 * HOUR + 610,
    )
    polled = plan_backups(replace(base, pushed_at=None), floor=SHORT)
    assert polled.due == T0 + 10 * HOUR + FIRST_CHECK_FRACTION * typical + START_ALLOWANCE
    pushed = plan_backups(base, floor=SHORT)
    assert pushed.tier is Tier.FAST
    assert pushed.due == T0 + 10 * HOUR + push_fallback(typical, SHORT / FLOOR_CEILING)
    assert pushed.due > polled.due
    assert pushed.due >= T0 + 10 * HOUR + typical  # not before the backup typically ends
    # The shorter the budget, the later the fallback check (at most 1.5 typical durations + 2 min).
    assert push_fallback(typical, 2) < push_fallback(typical, 20) == push_fallback(typical, 40)
    # With room in the budget (an hourly floor), polling goes on as before.
    assert plan_backups(base, floor=FLOOR_CEILING) == plan_backups(
        replace(base, pushed_at=None), floor=FLOOR_CEILING
    )


def test_a_pushed_addon_is_floored_at_least_every_26_hours_when_the_budget_is_short() -> None:
    read = T0 + 3 * HOUR
    base = view(read, summary(initiated=T0 + 2.5 * HOUR, completed=T0 + 2.6 * HOUR), DAILY_AT_0230)
    pushed = plan_backups(replace(base, pushed_at=T0 + 2.7 * HOUR), floor=SHORT)
    # The next daily run's fallback check comes first; no floor read before 26 h.
    assert pushed.reason == "scheduled-run"
    assert pushed.due > read + SHORT
    assert PUSH_FLOOR == 26 * HOUR


def test_hints_name_known_addons_only_and_hint_due_moves_close_fast_checks() -> None:
    clock = FixedClock(T0)
    planner = Planner(RequestBudget(clock=clock, budget=500), clock=clock)
    assert planner.hint("unknown-addon") is False
    assert planner.hint_due() == 0
    assert planner.pushed_floor() is None


def test_a_hint_reads_at_once_and_an_unmatched_event_moves_due_checks_forward() -> None:
    addon = ScriptedAddon("p", "a", HOURLY_AT_0, delay=60, duration=1200)
    other = ScriptedAddon("p", "b", DAILY_AT_0230, delay=60, duration=600)
    run = T0 + 2 * HOUR
    results: dict[str, object] = {}

    async def during(account: Account, clock: VirtualClock) -> None:
        planner = account.planner
        assert planner is not None
        # The run is under way; its first check is due 0.6 x 1200 s after it (within the horizon).
        await asyncio.sleep(run + 300 - clock.now())
        results["moved"] = planner.hint_due()
        # The backup ended at run + 1260; an event says so at run + 1300.
        await asyncio.sleep(run + 1300 - clock.now())
        results["known"] = planner.hint("a")
        results["unknown"] = planner.hint("nope", "p")

    account, planner = run_account([addon, other], hours=2.5, during=during)
    reads = account.reads("backups", "a")
    assert results == {"moved": 1, "known": True, "unknown": False}
    assert run + 300 in reads  # moved forward from run + 720
    assert run + 1300 in reads  # read at once for the event, not at the next follow-up
    assert planner.hinted_reads == 1

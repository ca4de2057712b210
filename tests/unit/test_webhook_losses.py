"""Lost webhook deliveries: the loss estimate (exporter.planner.losses), the verdict on one backup end
(policy.unannounced), and a lossy webhook making pushed addons polled as usual (policy.plan_backups,
TargetBook's judging of each read)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from exporter.planner import plan_backups
from exporter.planner.losses import LOSS_WINDOW, DeliveryLosses
from exporter.planner.policy import PUSH_DELIVERY_GRACE, PUSH_SKEW, unannounced
from exporter.virtual_time import VirtualClock
from tests.unit.test_planner import (
    HOUR,
    HOURLY_AT_0,
    T0,
    Account,
    ScriptedAddon,
    run_account,
    summary,
    view,
)

SHORT = 5 * HOUR


@given(st.lists(st.booleans(), max_size=3 * LOSS_WINDOW))
def test_the_estimate_counts_the_losses_among_the_latest_window_of_ends(verdicts: list[bool]) -> None:
    losses = DeliveryLosses()
    lossy = False
    for lost in verdicts:
        flipped = losses.observe(lost)
        assert flipped == (losses.lossy != lossy)
        lossy = losses.lossy
    assert losses.share == sum(verdicts[-LOSS_WINDOW:]) / LOSS_WINDOW
    # More than 2% of the window: three losses among the latest 100 ends, however few were judged.
    assert losses.lossy == (sum(verdicts[-LOSS_WINDOW:]) >= 3)


def test_the_estimate_decays_once_ends_come_with_their_events_again() -> None:
    losses = DeliveryLosses()
    assert not losses.observe(True)
    assert not losses.observe(True)
    assert losses.observe(True)  # the third loss: deliveries are being lost
    flips = [losses.observe(False) for _ in range(LOSS_WINDOW - 3)]
    assert not any(flips)
    assert losses.lossy  # the three losses are still among the latest 100
    assert losses.observe(False)  # the first loss left the window
    assert not losses.lossy


def test_a_backup_end_is_unannounced_when_the_latest_end_event_came_before_it() -> None:
    end = T0 + HOUR
    late = end + PUSH_DELIVERY_GRACE
    assert unannounced(end, end + 5, read_at=late) is False
    assert unannounced(end, end - PUSH_SKEW, read_at=late) is False  # the clocks may differ
    assert unannounced(end, end - HOUR, read_at=late) is True  # the previous backup's event
    assert unannounced(end, None, read_at=late) is True
    # Read just after it ended: its event may still be on the way.
    assert unannounced(end, end - HOUR, read_at=end + 10) is None
    assert unannounced(end, end + 5, read_at=end + 10) is False


def test_a_pushed_addon_is_polled_as_usual_while_deliveries_are_being_lost() -> None:
    typical = 600.0
    base = view(
        T0 + 9 * HOUR + 50 * 60,
        summary(typical=typical, initiated=T0 + 9 * HOUR, completed=T0 + 9 * HOUR + 600),
        HOURLY_AT_0,
        pushed_at=T0 + 9 * HOUR + 610,
    )
    polled = plan_backups(replace(base, pushed_at=None), floor=SHORT)
    assert plan_backups(base, floor=SHORT).due > polled.due  # the late fallback
    assert plan_backups(replace(base, push_lossy=True), floor=SHORT) == polled


def _judged(lose: frozenset[str], hours: int) -> DeliveryLosses:
    """Hourly addons a, b and c whose every backup end is announced by an event 5 s after it, except the
    addons in ``lose``, none of whose end events arrive (their start events do); the planner's estimate."""
    addons = [ScriptedAddon("p", name, HOURLY_AT_0, delay=60, duration=600) for name in "abc"]

    async def during(account: Account, clock: VirtualClock) -> None:
        planner = account.planner
        assert planner is not None
        for hour in range(1, hours):
            run = T0 + hour * HOUR
            await asyncio.sleep(run + 60 - clock.now())
            for addon in addons:
                planner.hint(addon.addon, "p", read=False)
            await asyncio.sleep(run + 60 + 600 + 5 - clock.now())
            for addon in addons:
                if addon.addon not in lose:
                    planner.hint(addon.addon, "p")

    _, planner = run_account(addons, hours=hours, during=during)
    return planner.delivery_losses


def test_reads_that_find_ends_no_event_announced_make_the_webhook_lossy() -> None:
    reliable = _judged(frozenset(), hours=8)
    assert reliable.share == 0.0
    assert not reliable.lossy
    lossy = _judged(frozenset("c"), hours=8)
    # Hours 2..7 of addon c (the first read is the baseline), each seen by a later read.
    assert lossy.share * LOSS_WINDOW >= 3
    assert lossy.lossy

"""The request budget: a sliding hour never over budget, the rate-limit reserve, holding off after a 429."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.budget import MAX_PLAUSIBLE_LIMIT, MIN_PLAUSIBLE_LIMIT, BudgetCollector, RequestBudget
from exporter.clock import FixedClock
from exporter.northflank.client import RateLimitStatus
from tests.support import max_in_rolling_hour

T0 = 1_795_392_000.0
HOUR = 3600.0


class Sleeper:
    """An injected sleep that moves a FixedClock instead of waiting, and remembers every wait."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def make(budget: int | None = 3, reserve: float = 0.2) -> tuple[RequestBudget, FixedClock, Sleeper]:
    clock = FixedClock(T0)
    sleeper = Sleeper(clock)
    return RequestBudget(clock=clock, budget=budget, reserve=reserve, sleep=sleeper), clock, sleeper


def status(clock: FixedClock, *, limit: int = 1000, remaining: int, reset_in: float) -> RateLimitStatus:
    now = clock.now()
    return RateLimitStatus(limit=limit, remaining=remaining, reset_at=now + reset_in, observed_at=now)


async def test_the_budget_holds_over_a_rolling_hour_not_a_fixed_one() -> None:
    budget, clock, sleeper = make(budget=3)
    for offset in (0.0, 100.0, 200.0):
        clock.set(T0 + offset)
        await budget.acquire("/v1/projects")
    assert sleeper.waits == []
    clock.set(T0 + 250)
    assert budget.spent(clock.now()) == 3
    # The fourth may go only when the first leaves the window, an hour after it was sent.
    assert budget.delay(clock.now(), essential=False) == pytest.approx(3350)
    assert budget.delay(clock.now(), essential=True) == pytest.approx(3350)
    await budget.acquire("/v1/projects")
    assert clock.now() == pytest.approx(T0 + HOUR)
    assert budget.sent_times() == pytest.approx((T0 + 100, T0 + 200, T0 + HOUR))


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=900, allow_nan=False), min_size=1, max_size=80),
)
def test_never_over_budget_in_any_rolling_hour(limit: int, gaps: list[float]) -> None:
    """Whatever the demand, what is sent never exceeds the budget in any rolling hour."""
    budget, clock, _ = make(budget=limit)
    sent: list[float] = []

    async def demand() -> None:
        for gap in gaps:
            clock.advance(gap)
            await budget.acquire("/v1/projects")
            sent.append(clock.now())

    asyncio.run(demand())
    assert len(sent) == len(gaps)
    assert max_in_rolling_hour(sent) <= limit
    assert budget.spent(clock.now()) <= limit


def test_default_budget_is_half_the_announced_limit() -> None:
    budget, clock, _ = make(budget=None)
    assert budget.limit == 500
    budget.observe("/v1/projects", 200, status(clock, limit=2000, remaining=1999, reset_in=3600))
    assert budget.limit == 1000
    configured, clock, _ = make(budget=42)
    configured.observe("/v1/projects", 200, status(clock, limit=2000, remaining=1999, reset_in=3600))
    assert configured.limit == 42


def test_below_the_reserve_only_essential_requests_go_until_the_window_resets() -> None:
    budget, clock, _ = make(budget=500, reserve=0.2)
    budget.observe("/v1/projects", 200, status(clock, remaining=201, reset_in=600))
    assert not budget.in_reserve(clock.now())
    assert budget.delay(clock.now(), essential=False) == 0
    budget.observe("/v1/projects", 200, status(clock, remaining=199, reset_in=600))
    assert budget.in_reserve(clock.now())
    assert budget.delay(clock.now(), essential=False) == pytest.approx(600)
    assert budget.delay(clock.now(), essential=True) == 0
    assert budget.deferred_seconds(clock.now()) == pytest.approx(600)
    clock.advance(600)
    assert budget.delay(clock.now(), essential=False) == 0
    assert budget.deferred_seconds(clock.now()) == 0


def test_nothing_goes_when_the_account_has_no_request_left() -> None:
    budget, clock, _ = make(budget=500)
    budget.observe("/v1/projects", 200, status(clock, remaining=0, reset_in=120))
    assert budget.delay(clock.now(), essential=True) == pytest.approx(120)
    assert budget.delay(clock.now(), essential=False) == pytest.approx(120)


def test_after_a_429_nothing_goes_until_the_api_says() -> None:
    # A 429 on an exhausted account: nothing until its window resets.
    budget, clock, _ = make(budget=500)
    budget.observe("/v1/projects", 429, status(clock, remaining=0, reset_in=900))
    assert budget.delay(clock.now(), essential=True) == pytest.approx(900)
    # A 429 with requests left: the client waits what Retry-After says before its retry; when that is
    # too long it gives the listing up and the refresher passes on when to come back.
    busy, clock, _ = make(budget=500)
    busy.observe("/v1/projects", 429, status(clock, remaining=500, reset_in=3000))
    assert busy.delay(clock.now(), essential=True) == 0
    busy.rate_limited(clock.now() + 1200)
    assert busy.delay(clock.now(), essential=True) == pytest.approx(1200)
    busy.rate_limited(clock.now() + 10)  # an earlier time never shortens the hold
    assert busy.deferred_seconds(clock.now()) == pytest.approx(1200)
    # Without any hint: a minute.
    bare, clock, _ = make(budget=500)
    bare.rate_limited(None)
    assert bare.delay(clock.now(), essential=True) == pytest.approx(60)


def test_a_429_is_logged_once_not_per_request(caplog: pytest.LogCaptureFixture) -> None:
    budget, clock, _ = make(budget=500)
    for _ in range(5):
        budget.observe("/v1/projects", 429, status(clock, remaining=3, reset_in=100))
        budget.rate_limited(clock.now() + 100)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "rate-limited" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("announced", "assumed"),
    [(1, MIN_PLAUSIBLE_LIMIT), (0, MIN_PLAUSIBLE_LIMIT), (10**12, MAX_PLAUSIBLE_LIMIT), (2000, 2000)],
)
def test_an_implausible_announced_limit_is_bounded_and_warned_about_once(
    caplog: pytest.LogCaptureFixture, announced: int, assumed: int
) -> None:
    budget, clock, _ = make(budget=None)
    for remaining in (announced, 0, announced):
        budget.observe("/v1/projects", 200, status(clock, limit=announced, remaining=remaining, reset_in=600))
    # 1 announced: half of it was the budget, one request an hour; 10**12: no budget at all.
    assert budget.limit == assumed // 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if announced == assumed:
        assert warnings == []
    else:
        (warning,) = warnings
        assert f"rate limit of {announced} requests" in warning
        assert f"assuming {assumed}" in warning


def test_an_implausible_limit_does_not_hold_ordinary_refreshes_in_the_reserve() -> None:
    budget, clock, _ = make(budget=500, reserve=0.2)
    # 10**12 announced, 2500 left: a fifth of 10**12 would hold every ordinary request for the window.
    budget.observe("/v1/projects", 200, status(clock, limit=10**12, remaining=2500, reset_in=600))
    assert not budget.in_reserve(clock.now())
    assert budget.delay(clock.now(), essential=False) == 0


def test_no_hold_lasts_longer_than_the_window() -> None:
    budget, clock, _ = make(budget=500)
    budget.rate_limited(clock.now() + 10 * 365 * 86400)
    assert budget.delay(clock.now(), essential=True) == pytest.approx(HOUR)
    budget, clock, _ = make(budget=500)
    budget.rate_limited(float("inf"))
    assert budget.delay(clock.now(), essential=True) == pytest.approx(60)
    # Headers that say no request is left until a reset years away (the client bounds them too).
    budget, clock, _ = make(budget=500)
    budget.observe("/v1/projects", 200, status(clock, remaining=0, reset_in=10 * 365 * 86400))
    assert budget.delay(clock.now(), essential=True) == pytest.approx(HOUR)


async def test_acquire_waits_for_the_hold_then_goes() -> None:
    budget, clock, sleeper = make(budget=500)
    budget.rate_limited(clock.now() + 300)
    await budget.acquire("/v1/projects")
    assert clock.now() == pytest.approx(T0 + 300)
    assert sum(sleeper.waits) == pytest.approx(300)
    assert budget.spent(clock.now()) == 1


async def test_track_marks_essential_requests_and_counts_them_across_tasks() -> None:
    budget, clock, _ = make(budget=500)
    budget.observe("/v1/projects", 200, status(clock, remaining=10, reset_in=600))  # in the reserve
    with budget.track(essential=True) as tally:
        await budget.acquire("/v1/projects/{projectId}/addons/{addonId}/backups")
        # Tasks started inside inherit the mark (the client's pages and a refresher's gather).
        await asyncio.gather(*(budget.acquire("/v1/backup-destinations") for _ in range(2)))
    assert tally.requests == 3
    assert clock.now() == T0  # essential: nothing waited for the reserve
    with budget.track(essential=False) as ordinary:
        await budget.acquire("/v1/projects")
    assert ordinary.requests == 1
    assert clock.now() == pytest.approx(T0 + 600)


def test_metrics_are_computed_at_scrape_time() -> None:
    budget, clock, _ = make(budget=2)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(budget, clock=clock))

    async def spend() -> None:
        for _ in range(2):
            await budget.acquire("/v1/projects")

    asyncio.run(spend())
    assert registry.get_sample_value("northflank_exporter_api_request_budget") == 2
    assert registry.get_sample_value("northflank_exporter_api_requests_last_hour") == 2
    assert registry.get_sample_value("northflank_exporter_refresh_deferred_seconds") == pytest.approx(HOUR)
    clock.advance(HOUR)
    assert registry.get_sample_value("northflank_exporter_api_requests_last_hour") == 0
    assert registry.get_sample_value("northflank_exporter_refresh_deferred_seconds") == 0


@pytest.mark.parametrize(("budget", "reserve"), [(0, 0.2), (10, 1.0), (10, -0.1)])
def test_invalid_settings_are_refused(budget: int, reserve: float) -> None:
    with pytest.raises(ValueError, match=r"budget|reserve"):
        RequestBudget(clock=FixedClock(T0), budget=budget, reserve=reserve)


def test_rolling_hour_helper_counts_half_open_windows() -> None:
    assert max_in_rolling_hour([0.0, HOUR, 2 * HOUR]) == 1
    assert max_in_rolling_hour([0.0, HOUR - 1, HOUR]) == 2
    assert max_in_rolling_hour(list(itertools.repeat(5.0, 4))) == 4

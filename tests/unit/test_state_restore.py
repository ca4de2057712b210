"""The components' side of --storage.path: what the request budget and the planner take from a saved
state, and what they refuse to take (a restart must never buy a fresh budget or a longer hold)."""

from __future__ import annotations

from exporter.budget import RequestBudget
from exporter.clock import FixedClock
from exporter.northflank.ratelimit import RateLimitStatus
from exporter.planner import Planner
from exporter.state.records import BucketLevel, BudgetState, PlannerState

NOW = 1_795_600_000.0


def test_the_budget_counts_the_restored_hour_and_nothing_older() -> None:
    clock = FixedClock(NOW)
    budget = RequestBudget(clock=clock, budget=3)
    budget.restore_state(BudgetState(sent=(NOW - 7200, NOW - 1800, NOW - 60, NOW + 600)))
    # The request of two hours ago is gone; one "from the future" counts as sent now.
    assert budget.sent_times() == (NOW - 1800, NOW - 60, NOW)
    assert budget.delay(NOW, essential=True) == 1800
    assert budget.export_state().sent == budget.sent_times()


def test_the_budget_keeps_holds_but_never_beyond_a_window() -> None:
    clock = FixedClock(NOW)
    budget = RequestBudget(clock=clock, budget=100)
    exhausted = RateLimitStatus(limit=1000, remaining=0, reset_at=NOW + 10**6, observed_at=NOW - 100)
    budget.restore_state(BudgetState(rate_limit=exhausted, blocked_until=NOW + 10**6, announced=10**9))
    assert budget.delay(NOW, essential=True) == 3600  # the hold, bounded to a window from now
    state = budget.export_state()
    assert state.rate_limit is not None
    assert state.rate_limit.reset_at == NOW - 100 + 3600
    assert state.announced == 10_000  # an implausible limit is bounded as when announced


def test_the_planner_buckets_do_not_refill_across_a_restart() -> None:
    clock = FixedClock(NOW)
    first = Planner(RequestBudget(clock=clock, budget=500), clock=clock)
    exported = first.export_state()
    emptied = PlannerState(buckets=tuple((name, BucketLevel(-1.0, NOW)) for name, _ in exported.buckets))
    second = Planner(RequestBudget(clock=clock, budget=500), clock=clock)
    second.restore_state(emptied)
    assert {name: level.tokens for name, level in second.export_state().buckets} == {
        name: -1.0 for name, _ in exported.buckets
    }
    assert all(level.tokens > 0 for _, level in exported.buckets)

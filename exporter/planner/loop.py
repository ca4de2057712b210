"""The planner's event loop: it keeps every target's plan in a queue per tier and starts the due refreshes
as the token buckets and the request gate allow. The decisions themselves are in :mod:`.policy`."""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Protocol

from exporter.buckets import MIN_WAIT, TokenBucket
from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.northflank.errors import RateLimitedError
from exporter.planner.policy import (
    BORROW_ORDER,
    BUCKET_BURST_SECONDS,
    BUCKET_SHARES,
    DESTINATIONS,
    FAST_BORROW_LATENESS,
    GLOBAL_BURST_SHARE,
    HELD_IN_WARMUP,
    HOUR,
    OWN_ORDER,
    PRIORITY_FIRST_READS,
    PROJECTS,
    TIER_BUCKET,
    WARMUP_HOLD,
    Cadence,
    Plan,
    PlannerSettings,
    Target,
    Tier,
)
from exporter.planner.targets import TargetBook, TargetState
from exporter.poller import Outcome
from exporter.resources import Resource
from exporter.snapshot import AddonKey, AddonResource, Snapshot, SnapshotStore

log = logging.getLogger(__name__)


def _bucket(rate_per_hour: float, burst_seconds: float, now: float) -> TokenBucket:
    rate = rate_per_hour / HOUR
    return TokenBucket.full(rate=rate, capacity=max(1.0, rate * burst_seconds), now=now)


# -- the planner ------------------------------------------------------------------------------------------


class Refreshes(Protocol):
    """What the planner needs of a :class:`~exporter.poller.Refresher` (which is one)."""

    @property
    def store(self) -> SnapshotStore: ...

    def refresh_projects(self) -> Awaitable[Outcome]: ...

    def refresh_project_addons(self, project_id: str) -> Awaitable[Outcome]: ...

    def refresh_destinations(self) -> Awaitable[Outcome]: ...

    def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Awaitable[Outcome]: ...


class PlanningLoop:
    """Plans every refresh and spends the request budget by priority (:class:`~exporter.planner.Planner`
    adds what it exposes)."""

    def __init__(
        self, budget: RequestBudget, *, clock: Clock, settings: PlannerSettings | None = None
    ) -> None:
        self._budget = budget
        self._clock = clock
        self._settings = settings or PlannerSettings()
        if self._settings.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._refresher: Refreshes | None = None
        limit = budget.limit
        self._book = TargetBook(
            settings=self._settings,
            limit=limit,
            snapshot=lambda: self._refresher.store.current if self._refresher is not None else None,
        )
        self._tasks: dict[Target, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        now = clock.now()
        self._global = _bucket(limit, GLOBAL_BURST_SHARE * HOUR, now)
        self._buckets = {
            name: _bucket(share * limit, BUCKET_BURST_SECONDS[name], now)
            for name, share in BUCKET_SHARES.items()
        }
        self._started: dict[Tier, int] = dict.fromkeys(Tier, 0)

    # -- what the collector reads ---------------------------------------------------------------------

    @property
    def cadence(self) -> Cadence:
        return self._book.cadence

    @property
    def targets_version(self) -> int:
        """Moves on whenever a target comes or goes."""
        return self._book.targets_version

    def plans(self) -> Iterator[tuple[Target, Plan]]:
        """Every known target and its current plan (for a refresh in flight: the plan it was started on)."""
        for target, state in self._book.states.items():
            yield target, state.plan

    def plan_of(self, target: Target) -> Plan | None:
        state = self._book.states.get(target)
        return state.plan if state is not None else None

    def started(self) -> Mapping[Tier, int]:
        """Refreshes started so far, by tier."""
        return dict(self._started)

    def known_since(self, target: Target) -> float | None:
        state = self._book.states.get(target)
        return state.known_since if state is not None else None

    def in_flight(self) -> frozenset[Target]:
        return frozenset(self._tasks)

    def addon_keys(self) -> Iterable[AddonKey]:
        """The addons the planner refreshes."""
        return self._book.by_addon.keys()

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self, refresher: Refreshes, stop: asyncio.Event) -> None:
        self._refresher = refresher
        now = self._clock.now()
        for target in (PROJECTS, DESTINATIONS):
            if target not in self._book.states:
                self._book.add(target, now)
        watcher = asyncio.create_task(self._wake_on(stop), name="planner-stop")
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    wake_at = self.step(self._clock.now())
                except Exception:
                    # A bug in planning must not end the polling; look again in a minute.
                    log.exception("planning failed unexpectedly; trying again in a minute")
                    wake_at = self._clock.now() + 60.0
                await self._sleep_until(wake_at)
        finally:
            watcher.cancel()
            tasks = [*self._tasks.values(), watcher]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _sleep_until(self, wake_at: float | None) -> None:
        if wake_at is None:
            await self._wake.wait()
            return
        timeout = max(MIN_WAIT, wake_at - self._clock.now())
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    def step(self, now: float) -> float | None:
        """Start every refresh that may start at ``now``; return when to look again (None: only when a
        refresh ends or stop is asked).

        Two passes over the tiers. First each capped tier spends its own share (fast first): a due
        refresh goes when its tier's bucket has the tokens. Then the budget nobody is using (the global
        bucket's tokens) goes to the tiers that still have due refreshes: new ones first (they are
        finite), then the fast tier when its checks are over ``FAST_BORROW_LATENESS`` late, then the
        others catching up. The global bucket paces everything: when the chosen refresh must wait for
        it, nothing behind it may go first. While first reads of backups or schedules wait, the
        discovery, floor and slow tiers spend their own shares only on refreshes over WARMUP_HOLD
        overdue, so that the first reads take what the fast tier leaves.
        """
        self._follow_budget(now)
        wake: float | None = None

        def later(at: float) -> None:
            nonlocal wake
            wake = at if wake is None else min(wake, at)

        ordinary_gate = self._budget.delay(now, essential=False)
        essential_gate = self._budget.delay(now, essential=True) if ordinary_gate > 0 else 0.0
        while len(self._tasks) < self._settings.concurrency:
            chosen: tuple[Tier, TargetState, bool] | None = None
            first = self._book.top(Tier.NEW)
            warming = first is not None and first.order <= PRIORITY_FIRST_READS
            for borrowing, order in ((False, OWN_ORDER), (True, BORROW_ORDER)):
                for tier in order:
                    entry = self._book.top(tier)
                    if entry is None:
                        continue
                    if entry.due > now:
                        later(entry.due)
                        continue
                    held = warming and not borrowing and tier in HELD_IN_WARMUP
                    if held and entry.due > now - WARMUP_HOLD:
                        later(entry.due + WARMUP_HOLD)
                        continue
                    gate = essential_gate if tier is Tier.FAST else ordinary_gate
                    if gate > 0:
                        later(now + max(gate, MIN_WAIT))
                        continue
                    state = self._book.states[entry.target]
                    if not borrowing:
                        wait = self._buckets[TIER_BUCKET[tier]].wait(now, state.cost)
                        if wait > 0:
                            later(now + wait)
                            continue
                    elif tier is Tier.FAST and entry.due > now - FAST_BORROW_LATENESS:
                        later(entry.due + FAST_BORROW_LATENESS)
                        continue
                    chosen = (tier, state, borrowing)
                    break
                if chosen is not None:
                    break
            if chosen is None:
                break
            tier, state, borrowing = chosen
            wait = self._global.wait(now, state.cost)
            if wait > 0:
                # The best refresh waits for the pace of the whole budget; nothing may jump ahead of it.
                later(now + wait)
                break
            self._start(tier, state, borrowing, now)
        return wake

    def _start(self, tier: Tier, state: TargetState, borrowing: bool, now: float) -> None:
        heapq.heappop(self._book.queues[tier])
        state.in_flight = True
        # A borrowed refresh costs only the global bucket: the tier's own share stays its own.
        bucket = None if borrowing else self._buckets[TIER_BUCKET[tier]]
        cost = state.cost
        self._global.take(now, cost)
        if bucket is not None:
            bucket.take(now, cost)
        self._started[tier] += 1
        target = state.target
        self._tasks[target] = asyncio.create_task(
            self._refresh(state, tier, cost, bucket), name=f"refresh {target.resource} {target.project}"
        )

    async def _refresh(
        self, state: TargetState, tier: Tier, estimate: int, bucket: TokenBucket | None
    ) -> None:
        target = state.target
        outcome: Outcome | None
        with self._budget.track(essential=tier is Tier.FAST) as tally:
            try:
                outcome = await self._call(target)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refreshing %s failed unexpectedly", target)
                outcome = None
        now = self._clock.now()
        extra = tally.requests - estimate
        if extra:
            # Settle the buckets with what the refresh actually cost (more pages, retries, or fewer).
            self._global.take(now, extra)
            if bucket is not None:
                bucket.take(now, extra)
        del self._tasks[target]
        state.in_flight = False
        try:
            self._finish(state, outcome, tally.requests, now)
        except Exception:
            # A bug in planning must not leave the target unplanned (it would never be read again).
            log.exception("planning the next refresh of %s failed unexpectedly; trying in a minute", target)
            if self._book.states.get(target) is state:
                state.plan = Plan(now + 60.0, state.plan.tier, "retry")
                self._book.push(state)
        finally:
            self._wake.set()

    async def _call(self, target: Target) -> Outcome:
        refresher = self._running()
        match target.resource:
            case Resource.PROJECTS:
                return await refresher.refresh_projects()
            case Resource.ADDONS:
                return await refresher.refresh_project_addons(target.project)
            case Resource.BACKUP_DESTINATIONS:
                return await refresher.refresh_destinations()
            case _:
                return await refresher.refresh_addon(target.key, target.resource)

    # -- after a refresh ------------------------------------------------------------------------------

    def _finish(self, state: TargetState, outcome: Outcome | None, requests: int, now: float) -> None:
        error = outcome.error if outcome is not None else None
        current = self._book.states.get(state.target) is state
        if isinstance(error, RateLimitedError) and current and outcome is not None and not outcome.gone:
            # Not this listing's fault: it stays due and goes first once the API takes requests again.
            self._budget.rate_limited(error.retry_at)
            self._book.replan(state, now)
            return
        if self._book.record(state, outcome, requests, now):
            self._running().store.update(Snapshot.with_ready)

    def _running(self) -> Refreshes:
        if self._refresher is None:
            raise RuntimeError("the planner reads the snapshot only while it runs")
        return self._refresher

    # -- fitting the plan to the budget ---------------------------------------------------------------

    def _follow_budget(self, now: float) -> None:
        limit = self._budget.limit
        if limit == self._book.limit:
            return
        self._book.limit = limit
        self._global.configure(now, limit / HOUR, max(1.0, GLOBAL_BURST_SHARE * limit))
        for name, share in BUCKET_SHARES.items():
            rate = share * limit / HOUR
            self._buckets[name].configure(now, rate, max(1.0, rate * BUCKET_BURST_SECONDS[name]))
        self._book.refit(now)


__all__ = ["PlanningLoop", "Refreshes"]

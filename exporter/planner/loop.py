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
from exporter.northflank.errors import AuthError, RateLimitedError
from exporter.planner import persistence
from exporter.planner.losses import DeliveryLosses
from exporter.planner.policy import (
    BORROW_ORDER,
    BORROW_ORDER_LATE_FIRST_READS,
    BUCKET_BURST_SECONDS,
    DESTINATIONS,
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
    Shares,
    Target,
    Tier,
)
from exporter.planner.push import Pushes
from exporter.planner.targets import TargetBook, TargetState, target_fields
from exporter.poller import Outcome
from exporter.resources import Resource
from exporter.snapshot import AddonKey, AddonResource, Snapshot, SnapshotStore
from exporter.state.records import PlannerState

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
        self._shares = self._book.shares
        self._buckets = {
            name: _bucket(rate, BUCKET_BURST_SECONDS[name], now) for name, rate in self._shares.items()
        }
        self._started: dict[Tier, int] = dict.fromkeys(Tier, 0)
        #: The previous process's plans (--storage.path), applied when the loop starts (they need the
        #: snapshot, which the planner sees only while it runs).
        self._restored: PlannerState | None = None
        #: Only the projects listing may go until it is answered: at start, in a forced pass, and while
        #: the token is refused (any other listing would be refused too: one request says it).
        self._projects_first = True
        #: Set while nothing is in flight and nothing may start now (see :attr:`settled`).
        self._settled = asyncio.Event()
        #: What webhook events ask for (see :meth:`hint`).
        self._push = Pushes(self._book, budget, clock=clock, wake=self._wake)
        #: Reads started for webhook events (counted in the fast tier too).
        self.hinted_reads = 0

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
        if self._restored is not None:
            if persistence.resume(self._book, self._restored, now):
                self._projects_first = False
            self._restored = None
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
                if self._tasks:
                    self._settled.clear()
                else:
                    self._settled.set()
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
        finite; restores' first reads only after the fast tier), then the fast tier (it takes what the
        others leave), then the others catching up. The global bucket paces everything: when the chosen
        refresh must wait for it, nothing behind it may go first. While first reads of backups or
        schedules wait, the discovery, floor and slow tiers spend their own shares only on refreshes
        over WARMUP_HOLD overdue, so that the first reads take what the fast tier leaves.
        """
        self._follow_budget(now)
        wake: float | None = None

        def later(at: float) -> None:
            nonlocal wake
            wake = at if wake is None else min(wake, at)

        ordinary_gate = self._budget.delay(now, essential=False)
        essential_gate = self._budget.delay(now, essential=True) if ordinary_gate > 0 else 0.0
        if self._projects_first:
            return self._start_projects(now, ordinary_gate)
        if self._push.hinted:
            # Webhook reads go ahead of every tier; while one waits for the budget, nothing jumps it.
            blocked = self._start_hinted(now, essential_gate)
            if blocked is not None:
                return blocked
        # While events come, the tiers leave the webhook's reads room for their next burst.
        headroom = self._push.headroom(now)
        ordinary_gate, essential_gate = max(ordinary_gate, headroom), max(essential_gate, headroom)
        while len(self._tasks) < self._settings.concurrency:
            chosen: tuple[Tier, TargetState, bool] | None = None
            first = self._book.top(Tier.NEW)
            warming = first is not None and first.order <= PRIORITY_FIRST_READS
            borrow_order = BORROW_ORDER if warming else BORROW_ORDER_LATE_FIRST_READS
            for borrowing, order in ((False, OWN_ORDER), (True, borrow_order)):
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
                log.exception("a refresh failed unexpectedly", extra=target_fields(target))
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
            log.exception(
                "planning the next refresh failed unexpectedly; trying in a minute",
                extra=target_fields(target),
            )
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
        if isinstance(error, AuthError):
            self._projects_first = True
            projects = self._book.states.get(PROJECTS)
            if projects is not None and state.target != PROJECTS:
                # The token was refused elsewhere: ask the projects listing at once whether it works.
                projects.forced = now
                self._book.replan(projects, now)
        elif state.target == PROJECTS and not isinstance(error, RateLimitedError):
            self._projects_first = False
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

    # -- webhook hints (exporter.web.webhook) ---------------------------------------------------------

    def hint(self, addon: str, project: str | None = None, *, read: bool = True) -> bool:
        """See :meth:`.push.Pushes.hint`."""
        return self._push.hint(addon, project, read=read)

    def hint_due(self) -> int:
        """See :meth:`.push.Pushes.hint_due`."""
        return self._push.hint_due()

    def pushed_floor(self) -> float | None:
        """See :meth:`.push.Pushes.pushed_floor`."""
        return self._push.pushed_floor()

    @property
    def delivery_losses(self) -> DeliveryLosses:
        """How many webhook deliveries the reads found lost (see :mod:`.losses`)."""
        return self._book.losses

    def _start_hinted(self, now: float, gate: float) -> float | None:
        """Start the hinted reads that may start now; when to look again if one must wait for the
        budget (None: none waits, or only for a slot or a read in flight, whose end wakes the loop)."""
        hinted = self._push.hinted
        for key in list(hinted):
            if len(self._tasks) >= self._settings.concurrency:
                return None
            state = self._book.states.get(Target(Resource.BACKUPS, *key))
            if state is None:
                del hinted[key]
                continue
            if state.in_flight:
                # The read in flight may have begun before the backup ended: read again after it.
                continue
            if gate > 0:
                return now + max(gate, MIN_WAIT)
            del hinted[key]
            # Its queued plan is superseded (the queue drops it); the read starts now. It does not wait
            # for the global bucket's pace (a burst of runs ending together would queue for minutes)
            # but pays it, so the tiers slow down after a burst; the request gate still bounds it all,
            # and Pushes.headroom keeps room in the rolling window for it.
            state.version += 1
            state.in_flight = True
            cost = state.cost
            self._global.take(now, cost)
            self._started[Tier.FAST] += 1
            self.hinted_reads += 1
            self._tasks[state.target] = asyncio.create_task(
                self._refresh(state, Tier.FAST, cost, None), name=f"refresh {state.target} (webhook)"
            )
        return None

    # -- forced passes and the projects listing first --------------------------------------------------

    @property
    def settled(self) -> asyncio.Event:
        """Set while the loop has nothing in flight and nothing it may start now (all is read, or what is
        due waits for the budget or for a later time); cleared when a refresh starts or a pass is forced."""
        return self._settled

    def read_everything(self) -> None:
        """A forced pass: every target due now, the projects listing first and alone (the rest follows
        once it is answered, and not while the token is refused), each within the request budget."""
        now = self._clock.now()
        self._book.force_all(now)
        self._projects_first = True
        self._settled.clear()
        self._wake.set()

    def _start_projects(self, now: float, gate: float) -> float | None:
        """While only the projects listing may go: start it when it is due and the budget allows; when to
        look again (None: when it ends)."""
        state = self._book.states.get(PROJECTS)
        if state is None or state.in_flight:
            return None
        if state.plan.due > now:
            return state.plan.due
        if gate > 0:
            return now + max(gate, MIN_WAIT)
        wait = self._global.wait(now, state.cost)
        if wait > 0:
            return now + wait
        # Its queued plan is superseded (the queue drops it); it costs the global bucket, as a borrow.
        state.version += 1
        state.in_flight = True
        self._global.take(now, state.cost)
        self._started[state.plan.tier] += 1
        self._tasks[PROJECTS] = asyncio.create_task(
            self._refresh(state, state.plan.tier, state.cost, None), name="refresh projects"
        )
        return None

    # -- fitting the plan to the budget ---------------------------------------------------------------

    def _follow_budget(self, now: float) -> None:
        limit = self._budget.limit
        if limit != self._book.limit:
            self._book.limit = limit
            self._global.configure(now, limit / HOUR, max(1.0, GLOBAL_BURST_SHARE * limit))
            self._book.refit(now)
        self._follow_shares(now, self._book.shares)

    def _follow_shares(self, now: float, shares: Shares) -> None:
        """Refill each capped tier's bucket at its share as last fitted (the fleet or the budget moved)."""
        if shares == self._shares:
            return
        self._shares = shares
        for name, per_hour in shares.items():
            rate = per_hour / HOUR
            self._buckets[name].configure(now, rate, max(1.0, rate * BUCKET_BURST_SECONDS[name]))

    # -- across a restart (--storage.path) ------------------------------------------------------------

    def export_state(self) -> PlannerState:
        """See :func:`.persistence.export_state` (the global bucket saved as ``global``)."""
        return persistence.export_state(self._book, {"global": self._global, **self._buckets})

    def restore_state(self, state: PlannerState) -> None:
        """Take the previous process's state: the buckets at once (a restart must not refill them), the
        plans when the loop starts."""
        persistence.restore_buckets({"global": self._global, **self._buckets}, state, self._clock.now())
        self._restored = state


__all__ = ["PlanningLoop", "Refreshes"]

"""The refresh planner: what to read from the Northflank API next, and when, within the request budget.

Every listing the exporter reads is a *target* (the projects, a project's addons, the destinations with
their backups, and each addon's backups, schedules and restores) with a *plan*: when it is next due and
in which *tier*. The plans are pure functions of what the last reads said (:func:`plan_backups`,
:func:`plan_periodic`); the :class:`Planner` only keeps them in queues and starts the due ones as the
budget allows.

Readiness: the snapshot is marked ready once discovery has succeeded, i.e. the projects were listed
successfully and every listed project's addon listing was answered (successfully or not: a project
whose listing fails is retried and counted, it does not hold readiness). From then on the exporter
serves what it has; ``northflank_exporter_initial_read_ratio`` shows how far the first reads are.

Tiers, in priority order:

``fast``
    Backup listings when something is expected to have changed: a first look a fraction of the addon's
    typical backup duration (learned from its history) after each scheduled run, then a follow-up every
    ~15% of that duration (at least a minute apart) while the run has not started or its backup is in
    progress, until it reaches a final state. A backup in progress found any other way (a manual one)
    is followed the same way. The only *essential* refreshes: they still go out when the account's
    rate limit is in its reserve.
``new``
    The first read of anything discovery found, at once, in this order: discovery's own listings, then
    every addon's backups (the *warm-up*: then each addon's last backup is known), then schedules, then
    restores. Until every addon's backups and schedules have been read once, these first reads also go
    before the discovery, floor and slow tiers' own shares (a refresh of theirs more than WARMUP_HOLD
    overdue still goes): the warm-up takes about what one request per addon costs, and the schedules
    that the fast tier plans by are known soon after.
``discovery``
    The projects, each project's addons, the destinations: every ``discovery_interval``.
``floor``
    Each addon's backups at least every ``max_staleness`` (four times as often for an addon without a
    schedule), oldest first: manual backups and anything the schedules do not predict are still seen.
``slow``
    Schedules and restores, every ``schedules_interval`` / ``restores_interval``.

How the budget is spent. Three token buckets refill at fixed shares of the budget: fast 30%, floor
20%, discovery and slow together 40%. A global bucket refills at the whole budget (paced over the hour,
with a tenth of it available at once). A due refresh starts when its tier's bucket and the global one
have the tokens (its expected cost: the page count of its last read); what the capped tiers leave
unused in the global bucket goes first to ``new`` (finite: it cannot starve anyone), then to ``fast``
once its checks are more than ten minutes late, then to the others catching up. The request gate
(:class:`~exporter.budget.RequestBudget`) still holds every request to the rolling-hour budget, the
reserve and any 429. So no tier starves another, and a small fleet spends only what its plans need.

When the fleet is too big for the budget: the floor and slow intervals are fitted to their shares
(:func:`fit_cadence`) and stretch evenly (``northflank_exporter_stalest_refresh_age_seconds`` and
``northflank_exporter_planned_interval_seconds`` show by how much); the fast tier's due checks queue
earliest-due first, so the spacing of checks widens evenly across addons instead of some addons going
unchecked, and each check tends to find its backup final (fewer requests per backup).

Within a tier the earliest due goes first; a target is never refreshed twice at once. The planner waits
on an :class:`asyncio.Event` (set when a refresh ends or stop is asked) with a timeout to the next due
time or the next token: it never polls. Everything reads the injected clock: under a virtual clock
(:mod:`exporter.virtual_time`) its decisions are deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.exposition import Family, format_value, label_set
from exporter.northflank.errors import NorthflankError, NotFoundError, RateLimitedError
from exporter.poller import Outcome
from exporter.schedule import EARLY_START_SECONDS, ScheduleCalendar
from exporter.snapshot import ADDON_RESOURCES, AddonKey, AddonResource, BackupSummary, Snapshot, SnapshotStore

log = logging.getLogger(__name__)

HOUR = 3600.0

# -- the tiers --------------------------------------------------------------------------------------------


class Tier(IntEnum):
    """Refresh tiers; a lower value goes first."""

    FAST = 0
    NEW = 1
    DISCOVERY = 2
    FLOOR = 3
    SLOW = 4

    @property
    def label(self) -> str:
        return self.name.lower()


#: The token bucket of each capped tier's own share. ``new`` has none: it only uses what is idle.
TIER_BUCKET: Mapping[Tier, str] = {
    Tier.FAST: "fast",
    Tier.DISCOVERY: "slow",
    Tier.FLOOR: "floor",
    Tier.SLOW: "slow",
}
_OWN_ORDER = (Tier.FAST, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
#: Who gets the budget no tier is using: first reads first (they are finite, so they cannot starve the
#: others), then the fast tier, but only once it is behind (see FAST_BORROW_LATENESS).
_BORROW_ORDER = (Tier.NEW, Tier.FAST, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
#: The fast tier keeps to its own share while its checks are less than this late; past it, it also
#: takes budget no other tier is using. (Below it, extra follow-ups would cost more than they gain.)
FAST_BORROW_LATENESS = 600.0
#: While first reads of backups and schedules wait, the discovery, floor and slow tiers hold their own
#: shares back for them, but not for a refresh more than this overdue: a fleet whose first reads take
#: many hours still notices projects and addons that come and go.
WARMUP_HOLD = 3600.0
#: The order of first reads in the ``new`` tier: discovery's listings (they find the addons), then every
#: addon's backups (what the alerts need), then schedules, then restores.
_NEW_ORDER: Mapping[str, int] = {
    "projects": 0,
    "addons": 0,
    "destinations": 0,
    "backups": 1,
    "schedules": 2,
    "restores": 3,
}
#: First reads up to this place in _NEW_ORDER (discovery, backups, schedules) go before the periodic
#: tiers' own shares; restores only take what is idle.
_PRIORITY_FIRST_READS = 2
#: The tiers that hold their own shares back during the warm-up.
_HELD_IN_WARMUP = frozenset((Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW))


def _bucket_of(tier: Tier) -> str:
    return TIER_BUCKET[tier]


def _set_member(items: set[AddonKey], key: AddonKey, member: bool) -> bool:
    """Make ``key`` a member of ``items`` or not; whether that changed anything."""
    if member == (key in items):
        return False
    if member:
        items.add(key)
    else:
        items.discard(key)
    return True


#: Share of the budget each bucket refills at. The remaining 10% absorbs new resources, extra pages and
#: retries.
BUCKET_SHARES: Mapping[str, float] = {"fast": 0.30, "floor": 0.20, "slow": 0.40}
#: How much each bucket may save up, in seconds of its refill: the fast tier absorbs a cluster of runs.
BUCKET_BURST_SECONDS: Mapping[str, float] = {"fast": 600.0, "floor": 300.0, "slow": 300.0}
#: The global bucket paces the whole budget over the hour, with this much of it available at once.
GLOBAL_BURST_SHARE = 0.1

# -- backups: when a listing is worth a request -----------------------------------------------------------

#: The first look at a scheduled run: this fraction of the typical duration after the run time (the
#: short end of how long a run takes: a look earlier than that is almost always wasted).
FIRST_CHECK_FRACTION = 0.6
#: Follow-ups while a backup runs (or its run has not started yet): this fraction of its typical
#: duration apart, clamped to [MIN_FOLLOW_UP, MAX_FOLLOW_UP].
FOLLOW_UP_FRACTION = 0.15
MIN_FOLLOW_UP = 60.0
MAX_FOLLOW_UP = 300.0
#: A scheduled run's backup is initiated within two minutes of its time: without one after this long,
#: the run is late or missed, and the planner stops waiting for it (the floor still looks).
START_WINDOW = 180.0
#: A backup initiated up to this long before a run belongs to that run (Northflank may start early): the
#: same tolerance as the missed-run verdicts'.
EARLY_START = float(EARLY_START_SECONDS)
#: A backup running longer than this many typical durations plus GIVE_UP_SLACK is followed only by
#: the floor: it is stuck, or far off what its history says.
GIVE_UP_FACTOR = 3.0
GIVE_UP_SLACK = 900.0
#: The typical duration assumed before an addon has a completed backup to learn it from.
DEFAULT_TYPICAL_DURATION = 300.0
#: The floor refreshes an addon at most this often unless ``max_staleness`` says otherwise.
FLOOR_CEILING = HOUR
#: Addons without a schedule are floored this many times as often: it is the only way to see their
#: (manual) backups, while a scheduled addon's floor rarely finds anything its schedule did not predict.
UNSCHEDULED_FLOOR_FACTOR = 4.0
#: A failed refresh is retried after this, doubling per consecutive failure, up to its usual interval.
RETRY_BASE = 60.0
#: Waits shorter than this are rounded up to it (float clocks near 1.8e9 s have a 2e-7 s resolution).
MIN_WAIT = 0.001

_RESOURCE_RANK: Mapping[str, int] = {
    "projects": 0,
    "addons": 1,
    "destinations": 2,
    "schedules": 3,
    "backups": 4,
    "restores": 5,
}
#: The label ``resource`` of each target kind, as in northflank_exporter_last_refresh_timestamp_seconds.
_RESOURCE_LABEL: Mapping[str, str] = {
    "projects": "projects",
    "addons": "addons",
    "destinations": "backup_destinations",
    "schedules": "schedules",
    "backups": "backups",
    "restores": "restores",
}


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One listing to read: ``resource`` is projects, addons (of ``project``), destinations, or an
    addon's backups, schedules or restores."""

    resource: str
    project: str = ""
    addon: str = ""

    @property
    def key(self) -> AddonKey:
        return (self.project, self.addon)


_ADDON_RESOURCE: Mapping[str, AddonResource] = {r: r for r in ADDON_RESOURCES}

PROJECTS = Target("projects")
DESTINATIONS = Target("destinations")


@dataclass(frozen=True, slots=True)
class Plan:
    """When a target is next due, in which tier, and why (for logs and tests)."""

    due: float
    tier: Tier
    reason: str


# -- pure decisions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """The knobs (flags) of the planner."""

    #: The longest an addon's backups may go unread; None: as often as the floor's share allows, at most
    #: hourly.
    max_staleness: float | None = None
    discovery_interval: float = 1800.0
    schedules_interval: float = HOUR
    restores_interval: float = HOUR
    #: Refreshes in flight at most.
    concurrency: int = 4


@dataclass(frozen=True, slots=True)
class Cadence:
    """The intervals of the periodic tiers, once fitted to the budget."""

    #: Each scheduled addon's backups are read at least this often.
    floor: float
    #: Each addon without a schedule: ``floor / UNSCHEDULED_FLOOR_FACTOR``.
    floor_unscheduled: float
    discovery: float
    schedules: float
    restores: float


def fit_cadence(
    budget: float,
    *,
    addons: int,
    floor_addons: int,
    discovery_items: int,
    settings: PlannerSettings,
    unscheduled_addons: int = 0,
) -> Cadence:
    """The periodic intervals for a fleet and a budget (requests per hour).

    The floor: ``max_staleness`` when set; otherwise the floor's share of the budget spread over the
    ``floor_addons`` (those no hourly schedule refreshes anyway; the ``unscheduled_addons`` among them
    count UNSCHEDULED_FLOOR_FACTOR times), but not more often than hourly. The slow tiers: their
    configured intervals, stretched to fit their share; discovery first (up to half of it), then
    schedules and restores stretched by the same factor.
    """
    floor_rate = BUCKET_SHARES["floor"] * budget
    if settings.max_staleness is not None:
        floor = settings.max_staleness
    else:
        weighted = floor_addons + (UNSCHEDULED_FLOOR_FACTOR - 1) * unscheduled_addons
        floor = max(FLOOR_CEILING, weighted * HOUR / floor_rate)
    slow_rate = BUCKET_SHARES["slow"] * budget
    discovery_rate = discovery_items * HOUR / settings.discovery_interval
    discovery_share = slow_rate / 2
    discovery = settings.discovery_interval * max(1.0, discovery_rate / discovery_share)
    rest = slow_rate - min(discovery_rate, discovery_share)
    per_addon = addons * HOUR / settings.schedules_interval + addons * HOUR / settings.restores_interval
    stretch = max(1.0, per_addon / rest)
    return Cadence(
        floor=floor,
        floor_unscheduled=floor / UNSCHEDULED_FLOOR_FACTOR,
        discovery=discovery,
        schedules=settings.schedules_interval * stretch,
        restores=settings.restores_interval * stretch,
    )


def retry_delay(failures: int, interval: float) -> float:
    """How long after its latest failure a target is tried again: doubling, up to its usual interval."""
    return min(interval, RETRY_BASE * 2.0 ** min(failures - 1, 30))


@dataclass(frozen=True, slots=True)
class PeriodicView:
    """What the planner knows of a periodic target."""

    known_since: float
    last_attempt: float | None = None
    last_success: float | None = None
    failures: int = 0


def plan_periodic(view: PeriodicView, *, interval: float, tier: Tier, first: Tier = Tier.NEW) -> Plan:
    """Never read: due at once, in the ``first`` tier. Else ``interval`` after the last success, or a
    backed-off retry after a failure."""
    if view.last_attempt is None:
        return Plan(view.known_since, first, "new")
    if view.failures:
        return Plan(view.last_attempt + retry_delay(view.failures, interval), tier, "retry")
    last = view.last_success if view.last_success is not None else view.last_attempt
    return Plan(last + interval, tier, "periodic")


@dataclass(frozen=True, slots=True)
class BackupsView:
    """What the planner knows of an addon's backups: the last successful read and what it said."""

    known_since: float
    last_attempt: float | None = None
    #: When the listing was last read successfully (the snapshot's refresh time).
    last_success: float | None = None
    failures: int = 0
    summary: BackupSummary | None = None
    #: The addon's schedules (empty: none, or not known yet).
    calendars: tuple[ScheduleCalendar, ...] = ()


def typical_duration(summary: BackupSummary | None) -> float:
    if summary is None or summary.typical_duration_seconds is None:
        return DEFAULT_TYPICAL_DURATION
    return max(1.0, summary.typical_duration_seconds)


def follow_up_gap(typical: float) -> float:
    return min(MAX_FOLLOW_UP, max(MIN_FOLLOW_UP, FOLLOW_UP_FRACTION * typical))


def pending_run(
    calendars: Iterable[ScheduleCalendar], *, read_at: float, last_initiated: float | None
) -> float | None:
    """The scheduled run the addon's next backup is expected from, as of a read at ``read_at``.

    The earliest run after both the newest backup's initiation (a backup initiated up to EARLY_START
    before a run counts as that run's) and ``read_at - START_WINDOW`` (a run that had not started that
    long after its time is late or missed: waiting on it would never end).
    """
    anchor = read_at - START_WINDOW
    if last_initiated is not None:
        anchor = max(anchor, last_initiated + EARLY_START)
    return min((c.next_run(anchor) for c in calendars), default=None)


def plan_backups(view: BackupsView, *, floor: float, floor_unscheduled: float | None = None) -> Plan:
    """When an addon's backups are next worth a request, from what the last read said.

    The earliest of: the floor (``floor`` after the last read, ``floor_unscheduled`` when the addon has
    no known schedule); a follow-up while a backup is in
    progress (from a fraction of its typical duration after it started, then every follow-up gap, until
    it is far past its typical duration); and the pending scheduled run's first check (a fraction of
    the typical duration after the run time), or, when that check found the run not started yet, a
    follow-up until it is too late to start.
    """
    if view.last_attempt is None:
        return Plan(view.known_since, Tier.NEW, "new")
    read_at = view.last_success
    if read_at is None:
        return Plan(view.last_attempt + retry_delay(max(1, view.failures), floor), Tier.FLOOR, "retry")
    summary = view.summary
    typical = typical_duration(summary)
    gap = follow_up_gap(typical)
    if not view.calendars and floor_unscheduled is not None:
        floor = floor_unscheduled
    best = Plan(read_at + floor, Tier.FLOOR, "floor")
    started = summary.in_progress_started_at if summary is not None else None
    if started is not None and read_at < started + GIVE_UP_FACTOR * typical + GIVE_UP_SLACK:
        due = max(read_at + gap, started + FIRST_CHECK_FRACTION * typical)
        if due <= best.due:
            best = Plan(due, Tier.FAST, "in-progress")
    run = pending_run(
        view.calendars,
        read_at=read_at,
        last_initiated=summary.last_initiated_at if summary is not None else None,
    )
    if run is not None:
        first = run + FIRST_CHECK_FRACTION * typical
        plan = (
            Plan(first, Tier.FAST, "scheduled-run")
            if read_at < first
            else Plan(read_at + gap, Tier.FAST, "run-not-started")
        )
        if plan.due <= best.due:
            best = plan
    if view.failures:
        retry = view.last_attempt + retry_delay(view.failures, floor)
        if retry > best.due:
            best = replace(best, due=retry, reason="retry")
    return best


# -- token buckets ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, up to ``capacity``; a request takes one token per expected request."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, now: float, need: float) -> float:
        """Seconds until ``need`` tokens (at most the capacity) are there; 0 when they are."""
        self.refill(now)
        need = min(need, self.capacity)
        missing = need - self.tokens
        if missing <= 1e-9:
            return 0.0
        return max(MIN_WAIT, missing / self.rate) if self.rate > 0 else math.inf

    def take(self, now: float, amount: float) -> None:
        self.refill(now)
        self.tokens = min(self.capacity, self.tokens - amount)

    def configure(self, now: float, rate: float, capacity: float) -> None:
        self.refill(now)
        self.rate, self.capacity = rate, capacity
        self.tokens = min(self.tokens, capacity)


def _bucket(rate_per_hour: float, burst_seconds: float, now: float) -> TokenBucket:
    rate = rate_per_hour / HOUR
    capacity = max(1.0, rate * burst_seconds)
    return TokenBucket(rate=rate, capacity=capacity, tokens=capacity, updated=now)


# -- the planner ------------------------------------------------------------------------------------------


class Refreshes(Protocol):
    """What the planner needs of a :class:`~exporter.poller.Refresher` (which is one)."""

    @property
    def store(self) -> SnapshotStore: ...

    def refresh_projects(self) -> Awaitable[Outcome]: ...

    def refresh_project_addons(self, project_id: str) -> Awaitable[Outcome]: ...

    def refresh_destinations(self) -> Awaitable[Outcome]: ...

    def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Awaitable[Outcome]: ...


@dataclass(slots=True)
class _State:
    target: Target
    known_since: float
    plan: Plan
    version: int = 0
    last_attempt: float | None = None
    last_success: float | None = None
    failures: int = 0
    #: Requests the last successful read took (its page count): what the next one is expected to cost.
    cost: int = 1
    in_flight: bool = False
    #: Due no later than this (a 404 elsewhere says this listing is out of date).
    forced: float | None = None
    #: Its northflank_exporter_next_refresh_timestamp_seconds sample, up to the value (escaped once).
    sample_prefix: str = ""


@dataclass(order=True, slots=True)
class _Entry:
    #: In the new tier, the target's place in _NEW_ORDER (backups before schedules...); else 0.
    order: int
    due: float
    rank: int
    seq: int
    version: int = field(compare=False)
    target: Target = field(compare=False)


class Planner:
    """A ``RefreshScheduler`` that plans every refresh and spends the request budget by priority."""

    def __init__(
        self, budget: RequestBudget, *, clock: Clock, settings: PlannerSettings | None = None
    ) -> None:
        self._budget = budget
        self._clock = clock
        self._settings = settings or PlannerSettings()
        if self._settings.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._states: dict[Target, _State] = {}
        self._by_addon: dict[AddonKey, list[Target]] = {}
        self._queues: dict[Tier, list[_Entry]] = {tier: [] for tier in Tier}
        self._seq = itertools.count()
        self._tasks: dict[Target, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        #: Until ready: the discovery listings not answered yet (the projects: not listed successfully).
        self._discovering: set[Target] = set()
        self._ready = False
        #: Addons with an hourly schedule (never floored: their runs refresh them) and without any.
        self._hourly: set[AddonKey] = set()
        self._unscheduled: set[AddonKey] = set()
        #: Projects whose addon listings are targets.
        self._projects: set[str] = set()
        self._limit = budget.limit
        now = clock.now()
        self._global = _bucket(self._limit, GLOBAL_BURST_SHARE * HOUR, now)
        self._buckets = {
            name: _bucket(share * self._limit, BUCKET_BURST_SECONDS[name], now)
            for name, share in BUCKET_SHARES.items()
        }
        self._cadence = self._fit()
        self._started: dict[Tier, int] = dict.fromkeys(Tier, 0)
        self._refresher: Refreshes | None = None
        #: The states in exposition order, until a target comes or goes.
        self._ordered: list[_State] | None = None

    # -- what the collector reads ---------------------------------------------------------------------

    @property
    def cadence(self) -> Cadence:
        return self._cadence

    def plans(self) -> Iterator[tuple[Target, Plan]]:
        """Every known target and its current plan (for a refresh in flight: the plan it was started on)."""
        for target, state in self._states.items():
            yield target, state.plan

    def plan_of(self, target: Target) -> Plan | None:
        state = self._states.get(target)
        return state.plan if state is not None else None

    def started(self) -> Mapping[Tier, int]:
        """Refreshes started so far, by tier."""
        return dict(self._started)

    def known_since(self, target: Target) -> float | None:
        state = self._states.get(target)
        return state.known_since if state is not None else None

    def in_flight(self) -> frozenset[Target]:
        return frozenset(self._tasks)

    def addon_keys(self) -> Iterable[AddonKey]:
        """The addons the planner refreshes."""
        return self._by_addon.keys()

    def render_next_refresh(self) -> str:
        """The ``northflank_exporter_next_refresh_timestamp_seconds`` family in the text format: one
        sample per target, rendered directly (label sets escaped once per target), since a large fleet
        has thousands of them and prometheus_client's exposition costs ~10 µs a sample."""
        ordered = self._ordered
        if ordered is None:
            ordered = self._ordered = sorted(self._states.values(), key=lambda state: state.target)
        return NEXT_REFRESH.header + "".join(
            [f"{s.sample_prefix}{format_value(s.plan.due)}\n" for s in ordered]
        )

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self, refresher: Refreshes, stop: asyncio.Event) -> None:
        self._refresher = refresher
        now = self._clock.now()
        for target in (PROJECTS, DESTINATIONS):
            if target not in self._states:
                self._add(target, now)
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
            chosen: tuple[Tier, _State, bool] | None = None
            first = self._top(Tier.NEW)
            warming = first is not None and first.order <= _PRIORITY_FIRST_READS
            for borrowing, order in ((False, _OWN_ORDER), (True, _BORROW_ORDER)):
                for tier in order:
                    entry = self._top(tier)
                    if entry is None:
                        continue
                    if entry.due > now:
                        later(entry.due)
                        continue
                    held = warming and not borrowing and tier in _HELD_IN_WARMUP
                    if held and entry.due > now - WARMUP_HOLD:
                        later(entry.due + WARMUP_HOLD)
                        continue
                    gate = essential_gate if tier is Tier.FAST else ordinary_gate
                    if gate > 0:
                        later(now + max(gate, MIN_WAIT))
                        continue
                    state = self._states[entry.target]
                    if not borrowing:
                        wait = self._buckets[_bucket_of(tier)].wait(now, state.cost)
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

    def _top(self, tier: Tier) -> _Entry | None:
        queue = self._queues[tier]
        while queue:
            entry = queue[0]
            state = self._states.get(entry.target)
            if state is not None and not state.in_flight and state.version == entry.version:
                return entry
            heapq.heappop(queue)
        return None

    def _start(self, tier: Tier, state: _State, borrowing: bool, now: float) -> None:
        heapq.heappop(self._queues[tier])
        state.in_flight = True
        # A borrowed refresh costs only the global bucket: the tier's own share stays its own.
        bucket = None if borrowing else self._buckets[_bucket_of(tier)]
        cost = state.cost
        self._global.take(now, cost)
        if bucket is not None:
            bucket.take(now, cost)
        self._started[tier] += 1
        target = state.target
        self._tasks[target] = asyncio.create_task(
            self._refresh(state, tier, cost, bucket), name=f"refresh {target.resource} {target.project}"
        )

    async def _refresh(self, state: _State, tier: Tier, estimate: int, bucket: TokenBucket | None) -> None:
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
            if self._states.get(target) is state:
                state.plan = Plan(now + 60.0, state.plan.tier, "retry")
                self._push(state)
        finally:
            self._wake.set()

    async def _call(self, target: Target) -> Outcome:
        refresher = self._refresher
        assert refresher is not None
        if target.resource == "projects":
            return await refresher.refresh_projects()
        if target.resource == "addons":
            return await refresher.refresh_project_addons(target.project)
        if target.resource == "destinations":
            return await refresher.refresh_destinations()
        resource = _ADDON_RESOURCE[target.resource]
        return await refresher.refresh_addon(target.key, resource)

    # -- after a refresh ------------------------------------------------------------------------------

    def _finish(self, state: _State, outcome: Outcome | None, requests: int, now: float) -> None:
        target = state.target
        if self._states.get(target) is not state:
            return  # dropped while it ran (its project or addon disappeared)
        error: NorthflankError | None = outcome.error if outcome is not None else None
        if outcome is not None and outcome.gone:
            if target.addon:
                self._drop_addon(target.key)
            else:
                self._drop(target)
            self._answered(target, ok=False)
            return
        if isinstance(error, RateLimitedError):
            # Not this listing's fault: it stays due and goes first once the API takes requests again.
            self._budget.rate_limited(error.retry_at)
            self._replan(state, now)
            return
        state.last_attempt = now
        state.forced = None
        if outcome is not None and outcome.ok:
            state.last_success = now
            state.failures = 0
            state.cost = max(1, requests)
        else:
            state.failures += 1
            if isinstance(error, NotFoundError):
                self._not_found(target, now)
        if outcome is not None and outcome.ok:
            if target.resource == "projects":
                self._sync_projects(now)
            elif target.resource == "addons":
                self._sync_addons(target.project, now)
            elif target.resource == "schedules":
                self._schedules_read(target.key, now)
        self._answered(target, ok=outcome is not None and outcome.ok)
        self._replan(state, now)

    def _answered(self, target: Target, *, ok: bool) -> None:
        """The API answered a read of ``target``. Discovery has succeeded once the projects were listed
        successfully and every listed project's addon listing was answered (the syncs add the addon
        listings of the projects found before this): then the snapshot is marked ready. A failed addon
        listing is retried and counted; it does not hold readiness, as a failed projects listing does
        (the token refused, the API unreachable: nothing the exporter could serve)."""
        if ok or target.resource != "projects":
            self._discovering.discard(target)
        if not self._ready and not self._discovering and self._refresher is not None:
            self._ready = True
            self._refresher.store.update(Snapshot.with_ready)

    def _not_found(self, target: Target, now: float) -> None:
        """A 404: the listing that says this target exists is out of date; read it again now."""
        if target.addon:
            parent = Target("addons", target.project)
        elif target.resource == "addons":
            parent = PROJECTS
        else:
            return
        state = self._states.get(parent)
        if state is not None:
            state.forced = now if state.forced is None else min(state.forced, now)
            self._replan(state, now)

    def _snapshot(self) -> Snapshot:
        assert self._refresher is not None
        return self._refresher.store.current

    def _sync_projects(self, now: float) -> None:
        projects = self._snapshot().projects
        for project_id in projects:
            target = Target("addons", project_id)
            if target not in self._states:
                self._add(target, now)
        for target in [t for t in self._states if t.resource == "addons" and t.project not in projects]:
            self._drop(target)
        for key in [k for k in self._by_addon if k[0] not in projects]:
            self._drop_addon(key)
        self._refit(now)

    def _sync_addons(self, project_id: str, now: float) -> None:
        snapshot = self._snapshot()
        listed = {key for key in snapshot.addons if key[0] == project_id}
        for key in sorted(listed - self._by_addon.keys()):
            targets = [Target(resource, *key) for resource in ("schedules", "backups", "restores")]
            self._by_addon[key] = targets
            for target in targets:
                self._add(target, now)
        for key in [k for k in self._by_addon if k[0] == project_id and k not in listed]:
            self._drop_addon(key)
        self._refit(now)

    def _schedules_read(self, key: AddonKey, now: float) -> None:
        addon = self._snapshot().addons.get(key)
        schedules = addon.schedules.value if addon is not None and addon.schedules is not None else ()
        hourly = any(s.calendar.max_interval_seconds <= FLOOR_CEILING for s in schedules)
        changed = _set_member(self._hourly, key, hourly) | _set_member(self._unscheduled, key, not schedules)
        if changed:
            self._refit(now)
        backups = self._states.get(Target("backups", *key))
        if backups is not None:
            self._replan(backups, now)

    # -- targets and plans ----------------------------------------------------------------------------

    def _add(self, target: Target, now: float) -> None:
        if target.resource == "addons":
            self._projects.add(target.project)
        labels = label_set(
            NEXT_REFRESH.labels, (target.project, target.addon, _RESOURCE_LABEL[target.resource])
        )
        state = _State(
            target=target,
            known_since=now,
            plan=Plan(now, Tier.NEW, "new"),
            sample_prefix=f"{NEXT_REFRESH.name}{{{labels}}} ",
        )
        self._ordered = None
        self._states[target] = state
        if target.resource in ("projects", "addons") and not self._ready:
            self._discovering.add(target)
        state.plan = self._plan(state)
        self._push(state)

    def _drop(self, target: Target) -> None:
        if target.resource == "addons":
            self._projects.discard(target.project)
        self._ordered = None
        state = self._states.pop(target, None)
        if state is not None:
            state.version += 1
        self._discovering.discard(target)

    def _drop_addon(self, key: AddonKey) -> None:
        for target in self._by_addon.pop(key, ()):
            self._drop(target)
        self._hourly.discard(key)
        self._unscheduled.discard(key)

    def _push(self, state: _State) -> None:
        state.version += 1
        order = _NEW_ORDER[state.target.resource] if state.plan.tier is Tier.NEW else 0
        entry = _Entry(
            order,
            state.plan.due,
            _RESOURCE_RANK[state.target.resource],
            next(self._seq),
            state.version,
            state.target,
        )
        queue = self._queues[state.plan.tier]
        heapq.heappush(queue, entry)
        if len(queue) > 64 and len(queue) > 3 * len(self._states):
            # Drop the entries of superseded plans so that the queues stay proportional to the fleet.
            live = [
                e for e in queue if (s := self._states.get(e.target)) is not None and s.version == e.version
            ]
            heapq.heapify(live)
            self._queues[state.plan.tier] = live

    def _replan(self, state: _State, now: float) -> None:
        if state.in_flight or self._states.get(state.target) is not state:
            return
        plan = self._plan(state)
        if state.forced is not None and state.forced < plan.due:
            plan = Plan(state.forced, plan.tier, "forced")
        state.plan = plan
        self._push(state)

    def _plan(self, state: _State) -> Plan:
        target, cadence = state.target, self._cadence
        if target.resource == "backups":
            return plan_backups(
                self._backups_view(state), floor=cadence.floor, floor_unscheduled=cadence.floor_unscheduled
            )
        view = PeriodicView(state.known_since, state.last_attempt, state.last_success, state.failures)
        if target.resource == "schedules":
            return plan_periodic(view, interval=cadence.schedules, tier=Tier.SLOW)
        if target.resource == "restores":
            return plan_periodic(view, interval=cadence.restores, tier=Tier.SLOW)
        return plan_periodic(view, interval=cadence.discovery, tier=Tier.DISCOVERY)

    def _backups_view(self, state: _State) -> BackupsView:
        addon = self._snapshot().addons.get(state.target.key) if self._refresher is not None else None
        fetched = addon.backups if addon is not None else None
        schedules = addon.schedules.value if addon is not None and addon.schedules is not None else ()
        return BackupsView(
            known_since=state.known_since,
            last_attempt=state.last_attempt,
            last_success=fetched.at if fetched is not None else None,
            failures=state.failures,
            summary=fetched.value if fetched is not None else None,
            calendars=tuple(s.calendar for s in schedules),
        )

    # -- fitting the plan to the budget ---------------------------------------------------------------

    def _fit(self) -> Cadence:
        addons = len(self._by_addon)
        destinations = self._states.get(DESTINATIONS)
        return fit_cadence(
            self._limit,
            addons=addons,
            floor_addons=addons - len(self._hourly),
            unscheduled_addons=len(self._unscheduled),
            discovery_items=1 + len(self._projects) + (destinations.cost if destinations is not None else 1),
            settings=self._settings,
        )

    def _refit(self, now: float) -> None:
        """Refit the cadence to the fleet and the budget; replan everything when it moved by over 5%."""
        cadence = self._fit()
        old = self._cadence
        if all(
            math.isclose(a, b, rel_tol=0.05)
            for a, b in (
                (cadence.floor, old.floor),
                (cadence.floor_unscheduled, old.floor_unscheduled),
                (cadence.discovery, old.discovery),
                (cadence.schedules, old.schedules),
                (cadence.restores, old.restores),
            )
        ):
            return
        self._cadence = cadence
        log.debug("refresh cadence for %d addons: %s", len(self._by_addon), cadence)
        for state in list(self._states.values()):
            if state.last_attempt is not None:
                self._replan(state, now)

    def _follow_budget(self, now: float) -> None:
        limit = self._budget.limit
        if limit == self._limit:
            return
        self._limit = limit
        self._global.configure(now, limit / HOUR, max(1.0, GLOBAL_BURST_SHARE * limit))
        for name, share in BUCKET_SHARES.items():
            rate = share * limit / HOUR
            self._buckets[name].configure(now, rate, max(1.0, rate * BUCKET_BURST_SECONDS[name]))
        self._refit(now)


# -- metrics ----------------------------------------------------------------------------------------------


NEXT_REFRESH = Family(
    "northflank_exporter_next_refresh_timestamp_seconds",
    "When the exporter plans to read each resource from the Northflank API next (unix time; in the past "
    "when the refresh is overdue, waiting for the request budget). project and addon are empty for "
    "account-wide resources.",
    ("project", "addon", "resource"),
)


class PlannerCollector(Collector):
    """The planner's account-wide metrics, computed at scrape time from its plans and the snapshot. The
    per-resource next refresh times are rendered by :meth:`Planner.render_next_refresh`."""

    def __init__(self, planner: Planner, snapshot: Callable[[], Snapshot], *, clock: Clock) -> None:
        self._planner = planner
        self._snapshot = snapshot
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        now = self._clock.now()
        planner, addons = self._planner, self._snapshot().addons
        stalest: float | None = None
        for key in planner.addon_keys():
            addon = addons.get(key)
            at = addon.backups.at if addon is not None and addon.backups is not None else None
            if at is None:
                at = planner.known_since(Target("backups", *key))
            if at is not None and (stalest is None or at < stalest):
                stalest = at
        age = GaugeMetricFamily(
            "northflank_exporter_stalest_refresh_age_seconds",
            "Seconds since the least recently read addon backup listing was read (or, if never, since "
            "the addon was discovered). Grows when the fleet is too big for the request budget.",
        )
        if stalest is not None:
            age.add_metric([], max(0.0, now - stalest))
        yield age
        started = CounterMetricFamily(
            "northflank_exporter_planned_refreshes",
            "Refreshes the planner started, by tier: fast (scheduled runs and backups in progress), new "
            "(first reads), discovery, floor (backups not read for a while), slow (schedules, restores).",
            labels=["tier"],
        )
        for tier, count in planner.started().items():
            started.add_metric([tier.label], count)
        yield started
        interval = GaugeMetricFamily(
            "northflank_exporter_planned_interval_seconds",
            "The refresh interval of each periodic tier after fitting it into the request budget: floor "
            "(each addon's backups at least this often), discovery, schedules, restores.",
            labels=["tier"],
        )
        cadence = planner.cadence
        for name, seconds in (
            ("floor", cadence.floor),
            ("floor_unscheduled", cadence.floor_unscheduled),
            ("discovery", cadence.discovery),
            ("schedules", cadence.schedules),
            ("restores", cadence.restores),
        ):
            interval.add_metric([name], seconds)
        yield interval
        yield initial_read_ratio(self._snapshot())


def initial_read_ratio(snapshot: Snapshot) -> GaugeMetricFamily:
    """``northflank_exporter_initial_read_ratio``: of the addons discovery found, the share whose
    listing of each resource has been read successfully at least once. 0 before projects were ever
    listed (nothing is known), 1 for a discovered fleet without addons (nothing is missing)."""
    family = GaugeMetricFamily(
        "northflank_exporter_initial_read_ratio",
        "Share (0 to 1) of the addons the exporter has discovered whose resource (backups, schedules, "
        "restores) it has read successfully at least once: the progress of the first complete read "
        "after start, which reads every addon's backups before any schedule or restore. 0 until the "
        "projects were listed once; 1 when there is no addon.",
        labels=["resource"],
    )
    addons = snapshot.addons.values()
    for resource in ADDON_RESOURCES:
        if snapshot.projects_at is None:
            ratio = 0.0
        elif not addons:
            ratio = 1.0
        else:
            ratio = sum(1 for a in addons if a.refreshed_at(resource) is not None) / len(addons)
        family.add_metric([resource], ratio)
    return family


__all__ = [
    "BUCKET_SHARES",
    "DESTINATIONS",
    "PROJECTS",
    "BackupsView",
    "Cadence",
    "PeriodicView",
    "Plan",
    "Planner",
    "PlannerCollector",
    "PlannerSettings",
    "Refreshes",
    "Target",
    "Tier",
    "TokenBucket",
    "fit_cadence",
    "initial_read_ratio",
    "pending_run",
    "plan_backups",
    "plan_periodic",
    "retry_delay",
]

"""The planner's decisions, as pure functions of what the last reads said, and its loop on a virtual clock.

The loop tests run the real :class:`Planner` with a real :class:`RequestBudget` on a virtual-time event
loop, against a scripted account (a fake refresher writing summaries into a real snapshot store): hours
of planning take milliseconds, nothing sleeps, and every time below is exact.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.northflank.client import RateLimitStatus
from exporter.northflank.errors import NorthflankError, PermissionDeniedError, RateLimitedError
from exporter.northflank.models import Addon, AddonSpec, BackupStatus, Project
from exporter.planner import (
    EARLY_START,
    FIRST_CHECK_FRACTION,
    FLOOR_CEILING,
    GIVE_UP_FACTOR,
    GIVE_UP_SLACK,
    MIN_FOLLOW_UP,
    RETRY_BASE,
    START_WINDOW,
    UNSCHEDULED_FLOOR_FACTOR,
    BackupsView,
    PeriodicView,
    Plan,
    Planner,
    PlannerCollector,
    PlannerSettings,
    Target,
    Tier,
    TokenBucket,
    fit_cadence,
    follow_up_gap,
    pending_run,
    plan_backups,
    plan_periodic,
    retry_delay,
)
from exporter.planner.policy import START_ALLOWANCE
from exporter.poller import OK, Outcome
from exporter.resources import Resource
from exporter.schedule import ScheduleCalendar
from exporter.snapshot import (
    AddonKey,
    AddonResource,
    BackupSummary,
    RestoreSummary,
    ScheduleSummary,
    Snapshot,
    SnapshotStore,
    summarize_destination_backups,
)
from exporter.virtual_time import VirtualClock, run_virtual
from tests.support import max_in_rolling_hour

#: Monday 2026-11-23 00:00 UTC.
T0 = 1_795_392_000.0
HOUR = 3600.0
HOURLY_AT_0 = ScheduleCalendar(3600, (0,))
DAILY_AT_0230 = ScheduleCalendar(86_400, (2 * 3600 + 30 * 60,))


def summary(
    *,
    typical: float | None = 600.0,
    initiated: float | None = None,
    running_since: float | None = None,
    completed: float | None = None,
) -> BackupSummary:
    counts = dict.fromkeys(BackupStatus, 0)
    return BackupSummary(
        counts=MappingProxyType(counts),
        last_completed_at=completed,
        in_progress_started_at=running_since,
        last_initiated_at=initiated,
        typical_duration_seconds=typical,
    )


def view(
    read_at: float, backups: BackupSummary, *calendars: ScheduleCalendar, **changes: object
) -> BackupsView:
    base = BackupsView(
        known_since=T0 - 10 * HOUR,
        last_attempt=read_at,
        last_success=read_at,
        summary=backups,
        calendars=calendars,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- pure decisions: backups --------------------------------------------------------------------------------


def test_a_scheduled_run_is_read_just_after_it_should_have_finished() -> None:
    # Read at 09:50: the 09:00 run completed. The next run is at 10:00 and typically takes 10 minutes.
    read = T0 + 9 * HOUR + 50 * 60
    backups = summary(typical=600, initiated=T0 + 9 * HOUR + 60, completed=T0 + 9 * HOUR + 660)
    plan = plan_backups(view(read, backups, HOURLY_AT_0), floor=HOUR)
    run = T0 + 10 * HOUR
    assert plan == Plan(run + FIRST_CHECK_FRACTION * 600, Tier.FAST, "scheduled-run")
    # Just after the run: not before it, and before it should have finished.
    assert run < plan.due < run + 600


def test_a_backup_in_progress_is_followed_up_until_it_finishes() -> None:
    run = T0 + 10 * HOUR
    started = run + 60
    # A look 200 s in: running. Next: 60% of its typical duration after it started (the shortest runs).
    early = plan_backups(
        view(started + 200, summary(typical=600, initiated=started, running_since=started), HOURLY_AT_0),
        floor=HOUR,
    )
    assert early == Plan(started + 360, Tier.FAST, "in-progress")
    # Later looks: every follow-up gap (15% of the typical duration, at least a minute).
    late = plan_backups(
        view(started + 700, summary(typical=600, initiated=started, running_since=started), HOURLY_AT_0),
        floor=HOUR,
    )
    assert late == Plan(started + 700 + follow_up_gap(600), Tier.FAST, "in-progress")
    assert follow_up_gap(600) == 90
    assert follow_up_gap(60) == MIN_FOLLOW_UP
    # Once it is final, the next look is for the next run.
    done = plan_backups(
        view(started + 760, summary(typical=600, initiated=started, completed=started + 740), HOURLY_AT_0),
        floor=HOUR,
    )
    assert done == Plan(run + HOUR + 360, Tier.FAST, "scheduled-run")


def test_a_backup_running_far_past_its_typical_duration_is_left_to_the_floor() -> None:
    started = T0 + 2 * HOUR
    give_up = started + GIVE_UP_FACTOR * 600 + GIVE_UP_SLACK
    stuck = summary(typical=600, initiated=started, running_since=started)
    assert plan_backups(view(give_up - 1, stuck), floor=6 * HOUR).tier is Tier.FAST
    assert plan_backups(view(give_up, stuck), floor=6 * HOUR) == Plan(give_up + 6 * HOUR, Tier.FLOOR, "floor")


def test_a_run_not_started_at_its_first_look_is_looked_at_again_until_it_is_too_late() -> None:
    run = T0 + 10 * HOUR
    backups = summary(typical=100, initiated=run - HOUR, completed=run - HOUR + 100)
    first = run + FIRST_CHECK_FRACTION * 100
    assert plan_backups(view(run - 600, backups, HOURLY_AT_0), floor=HOUR).due == first
    # Nothing initiated yet at the first look (runs start up to two minutes late): look again.
    again = plan_backups(view(first, backups, HOURLY_AT_0), floor=HOUR)
    assert again == Plan(first + MIN_FOLLOW_UP, Tier.FAST, "run-not-started")
    # START_WINDOW after the run without a backup: missed or late; the next look is for the next run.
    missed = plan_backups(view(run + START_WINDOW, backups, HOURLY_AT_0), floor=HOUR)
    assert missed.due == run + HOUR + FIRST_CHECK_FRACTION * 100


def test_a_backup_initiated_a_little_early_belongs_to_its_run() -> None:
    run = T0 + 10 * HOUR
    assert pending_run([HOURLY_AT_0], read_at=run + 30, last_initiated=run - EARLY_START + 1) == run + HOUR
    assert pending_run([HOURLY_AT_0], read_at=run - 900, last_initiated=run - 1200) == run
    assert pending_run([], read_at=run, last_initiated=None) is None
    # The earliest of several schedules.
    assert pending_run(
        [HOURLY_AT_0, DAILY_AT_0230], read_at=T0 + 2 * HOUR + 20 * 60, last_initiated=None
    ) == (T0 + 2 * HOUR + 30 * 60)


def test_the_floor_covers_what_schedules_do_not_predict() -> None:
    read = T0 + HOUR
    daily = plan_backups(view(read, summary(), DAILY_AT_0230), floor=HOUR, floor_unscheduled=HOUR / 4)
    assert daily == Plan(read + HOUR, Tier.FLOOR, "floor")  # before the 02:30 run's first look at 02:36
    later = plan_backups(view(read, summary(), DAILY_AT_0230), floor=4 * HOUR, floor_unscheduled=HOUR)
    # (A floor stretched past hourly: the first look also allows for the run's start.)
    assert later == Plan(T0 + 2.5 * HOUR + 360 + START_ALLOWANCE, Tier.FAST, "scheduled-run")
    # An addon without a schedule: the floor is the only way to see its manual backups, so it comes sooner.
    manual = plan_backups(view(read, summary()), floor=HOUR, floor_unscheduled=HOUR / 4)
    assert manual == Plan(read + HOUR / 4, Tier.FLOOR, "floor")


def test_never_read_is_new_and_failures_back_off() -> None:
    fresh = BackupsView(known_since=T0)
    assert plan_backups(fresh, floor=HOUR) == Plan(T0, Tier.NEW, "new")
    failed_once = BackupsView(known_since=T0, last_attempt=T0, failures=1)
    assert plan_backups(failed_once, floor=HOUR) == Plan(T0 + RETRY_BASE, Tier.FLOOR, "retry")
    read = T0 + HOUR
    # Read at 01:00, failing since: the floor is overdue, the retry backs off from the latest failure.
    failing = view(read, summary(), last_attempt=read + 2 * HOUR, failures=3)
    assert plan_backups(failing, floor=HOUR) == Plan(read + 2 * HOUR + 4 * RETRY_BASE, Tier.FLOOR, "retry")
    assert [retry_delay(n, 600) for n in (1, 2, 3, 4, 5, 60)] == [60, 120, 240, 480, 600, 600]


def test_periodic_targets() -> None:
    assert plan_periodic(PeriodicView(T0), interval=HOUR, tier=Tier.SLOW) == Plan(T0, Tier.NEW, "new")
    done = PeriodicView(T0, last_attempt=T0 + 5, last_success=T0 + 5)
    assert plan_periodic(done, interval=HOUR, tier=Tier.SLOW) == Plan(T0 + 5 + HOUR, Tier.SLOW, "periodic")
    failed = PeriodicView(T0, last_attempt=T0 + 5, last_success=None, failures=2)
    assert plan_periodic(failed, interval=HOUR, tier=Tier.DISCOVERY) == Plan(
        T0 + 5 + 2 * RETRY_BASE, Tier.DISCOVERY, "retry"
    )


# -- pure decisions: fitting the cadence to the budget ----------------------------------------------------


def test_a_small_fleet_gets_the_configured_cadence() -> None:
    cadence = fit_cadence(500, addons=10, floor_addons=9, discovery_items=4, settings=PlannerSettings())
    assert cadence.floor == FLOOR_CEILING
    assert cadence.floor_unscheduled == FLOOR_CEILING / UNSCHEDULED_FLOOR_FACTOR
    assert (cadence.discovery, cadence.schedules, cadence.restores) == (1800, 3600, 3600)


def test_a_big_fleet_stretches_the_periodic_tiers_to_their_share_of_the_budget() -> None:
    settings = PlannerSettings()
    cadence = fit_cadence(
        500, addons=1000, floor_addons=900, unscheduled_addons=50, discovery_items=60, settings=settings
    )
    floor_rate = (850 / cadence.floor + 50 / cadence.floor_unscheduled) * HOUR
    assert floor_rate == pytest.approx(0.2 * 500)
    slow_rate = (60 / cadence.discovery + 1000 / cadence.schedules + 1000 / cadence.restores) * HOUR
    assert slow_rate == pytest.approx(0.4 * 500)
    assert cadence.discovery > settings.discovery_interval
    assert cadence.schedules == cadence.restores > 10 * HOUR
    # An explicit max staleness is a promise: it is not stretched.
    explicit = fit_cadence(
        500, addons=1000, floor_addons=900, discovery_items=60, settings=PlannerSettings(max_staleness=7200)
    )
    assert explicit.floor == 7200


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1 / 60, capacity=2, tokens=2, updated=T0)
    assert bucket.wait(T0, 1) == 0
    bucket.take(T0, 2)
    assert bucket.wait(T0, 1) == pytest.approx(60)
    assert bucket.wait(T0 + 30, 5) == pytest.approx(90)  # asks for more than the capacity: the capacity
    bucket.take(T0 + 120, -10)  # giving back never overfills
    assert bucket.tokens == 2


# -- the loop, on a virtual clock ----------------------------------------------------------------------------


@dataclass
class ScriptedAddon:
    """An addon whose scheduled runs start ``delay`` after their time and take ``duration``."""

    project: str
    addon: str
    calendar: ScheduleCalendar | None = HOURLY_AT_0
    delay: float = 60.0
    duration: float = 600.0

    @property
    def key(self) -> AddonKey:
        return (self.project, self.addon)

    def backups_at(self, now: float) -> BackupSummary:
        if self.calendar is None:
            return summary(typical=None)
        run = self.calendar.previous_run(now)
        start, end = run + self.delay, run + self.delay + self.duration
        if now < start:  # this run has not started: the previous one is the newest
            run = self.calendar.previous_run(run - 1)
            start, end = run + self.delay, run + self.delay + self.duration
        if now < end:
            previous_end = self.calendar.previous_run(run - 1) + self.delay + self.duration
            return summary(
                typical=self.duration, initiated=start, running_since=start, completed=previous_end
            )
        return summary(typical=self.duration, initiated=start, completed=end)

    def schedules(self) -> tuple[ScheduleSummary, ...]:
        if self.calendar is None:
            return ()
        return (ScheduleSummary("s", "hourly", "dump", "gz", 86_400, self.calendar, None),)


@dataclass
class Account:
    """A scripted Northflank account behind a fake refresher: the real store, no HTTP."""

    clock: Clock
    budget: RequestBudget
    addons: list[ScriptedAddon]
    store: SnapshotStore = field(default_factory=SnapshotStore)
    #: (time, resource, addon) of every refresh started.
    calls: list[tuple[float, str, str]] = field(default_factory=list)
    #: The refreshes running now, to catch two of the same at once.
    running: set[tuple[str, str, str]] = field(default_factory=set)
    overlaps: int = 0
    latency: float = 0.0
    #: Makes a refresh fail: (resource, addon, now) -> the error, or None.
    fail: Callable[[str, str, float], NorthflankError | None] = lambda *_: None
    planner: Planner | None = None
    tiers: list[tuple[float, str, Tier]] = field(default_factory=list)

    async def _request(self, resource: Resource, addon: str = "", project: str = "") -> Outcome:
        marker = (resource, project, addon)
        if marker in self.running:
            self.overlaps += 1
        self.running.add(marker)
        try:
            await self.budget.acquire(resource)
            # Recorded when the request goes out (after the budget let it).
            now = self.clock.now()
            self.calls.append((now, resource, addon))
            if self.planner is not None:
                plan = self.planner.plan_of(Target(resource, project, addon))
                if plan is not None:
                    self.tiers.append((now, resource, plan.tier))
            if self.latency:
                await asyncio.sleep(self.latency)
            error = self.fail(resource, addon, self.clock.now())
            return Outcome(error) if error is not None else OK
        finally:
            self.running.discard(marker)

    async def refresh_projects(self) -> Outcome:
        outcome = await self._request(Resource.PROJECTS)
        if outcome.ok:
            projects = sorted({a.project for a in self.addons})
            found = [(None, Project(id=p, name=p)) for p in projects]
            at = self.clock.now()
            self.store.update(lambda s: s.with_projects(found, at))
        return outcome

    async def refresh_project_addons(self, project_id: str) -> Outcome:
        outcome = await self._request(Resource.ADDONS, project=project_id)
        if outcome.ok:
            listed = [
                Addon(id=a.addon, name=a.addon, spec=AddonSpec(type="postgresql"))
                for a in self.addons
                if a.project == project_id
            ]
            at = self.clock.now()
            self.store.update(lambda s: s.with_project_addons(project_id, listed, at))
        return outcome

    async def refresh_destinations(self) -> Outcome:
        outcome = await self._request(Resource.BACKUP_DESTINATIONS)
        if outcome.ok:
            at = self.clock.now()
            self.store.update(lambda s: s.with_destinations([], at))
        return outcome

    async def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Outcome:
        scripted = next((a for a in self.addons if a.key == key), None)
        if scripted is None or key not in self.store.current.addons:
            return Outcome(gone=True)
        outcome = await self._request(resource, key[1], key[0])
        if not outcome.ok:
            return outcome
        at = self.clock.now()
        if resource == "backups":
            backups = scripted.backups_at(at)
            self.store.update(lambda s: s.with_addon_backups(key, backups, at))
        elif resource == "schedules":
            schedules = scripted.schedules()
            self.store.update(lambda s: s.with_addon_schedules(key, schedules, at))
        else:
            restores = RestoreSummary(counts=summarize_destination_backups([], now=0.0).counts, last_at={})
            self.store.update(lambda s: s.with_addon_restores(key, restores, at))
        return outcome

    def reads(self, resource: str, addon: str) -> list[float]:
        return [t for t, r, a in self.calls if r == resource and a == addon]


def run_account(
    addons: list[ScriptedAddon],
    *,
    hours: float,
    budget: int = 500,
    settings: PlannerSettings | None = None,
    configure: Callable[[Account], None] = lambda _: None,
    during: Callable[[Account, VirtualClock], Coroutine[None, None, None]] | None = None,
) -> tuple[Account, Planner]:
    """Run the planner against a scripted account for ``hours`` of virtual time, from T0; ``during``
    runs beside it (to change the account or the rate limit at some instant)."""

    async def main(clock: VirtualClock) -> tuple[Account, Planner]:
        gate = RequestBudget(clock=clock, budget=budget)
        account = Account(clock=clock, budget=gate, addons=addons)
        configure(account)
        planner = Planner(gate, clock=clock, settings=settings)
        account.planner = planner
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        meanwhile = asyncio.create_task(during(account, clock)) if during is not None else None
        await asyncio.sleep(hours * HOUR)
        stop.set()
        await asyncio.wait_for(task, 1)
        if meanwhile is not None:
            await meanwhile
        return account, planner

    return run_virtual(main, epoch=T0)


def test_loop_reads_each_scheduled_run_just_after_it_ends_and_little_else() -> None:
    addon = ScriptedAddon("p", "a", HOURLY_AT_0, delay=60, duration=600)
    account, planner = run_account([addon], hours=6)
    reads = account.reads("backups", "a")
    assert reads[0] == T0  # discovered and read at once
    for hour in range(1, 6):
        run = T0 + hour * HOUR
        end = run + addon.delay + addon.duration
        around = [t for t in reads if run <= t < run + HOUR]
        # The first look comes after the run started, then follow-ups until the backup is final...
        assert around[0] >= run + addon.delay
        seen = [t for t in around if t >= end]
        assert seen, f"run {hour} never seen finished"
        # ...seen within one follow-up gap of its end...
        assert seen[0] - end <= follow_up_gap(addon.duration)
        # ...and nothing more that hour: no polling, no floor (each run's reads refresh it).
        assert len(around) - len(seen) <= 4
        assert len(seen) == 1
    assert account.overlaps == 0
    assert planner.started()[Tier.FLOOR] == 0


def test_loop_follows_a_backup_in_progress_with_essential_refreshes() -> None:
    addon = ScriptedAddon("p", "a", HOURLY_AT_0, delay=30, duration=1200)
    account, _ = run_account([addon], hours=3)
    run = T0 + 2 * HOUR
    during = [(t, tier) for t, r, tier in account.tiers if r == "backups" and run < t <= run + 30 + 1200]
    assert len(during) >= 3
    assert all(tier is Tier.FAST for _, tier in during)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(during)]
    assert all(gap >= follow_up_gap(1200) - 1e-6 for gap in gaps)


def test_loop_waits_out_a_429_then_resumes() -> None:
    addon = ScriptedAddon("p", "a", HOURLY_AT_0)
    limited_until = T0 + 2 * HOUR + 900

    def fail(resource: str, name: str, now: float) -> NorthflankError | None:
        if resource == "backups" and T0 + 2 * HOUR <= now < T0 + 2 * HOUR + 1:
            return RateLimitedError("rate limited", retry_at=limited_until)
        return None

    account, _ = run_account([addon], hours=4, configure=lambda a: setattr(a, "fail", fail))
    limited = next(t for t, r, _ in account.calls if r == "backups" and t >= T0 + 2 * HOUR)
    after = [t for t, _, _ in account.calls if t > limited]
    # Nothing at all while the API said to wait; then the interrupted read first, at once.
    assert after[0] == pytest.approx(limited_until)
    assert next(r for t, r, _ in account.calls if t == after[0]) == "backups"


def test_loop_in_the_reserve_sends_only_essential_refreshes() -> None:
    addons = [ScriptedAddon("p", f"a{i}", HOURLY_AT_0, delay=60 * i, duration=600) for i in range(3)]
    addons.append(ScriptedAddon("p", "manual", None))
    window = (T0 + 2 * HOUR, T0 + 3 * HOUR)

    async def tighten(account: Account, clock: VirtualClock) -> None:
        await asyncio.sleep(window[0] - clock.now())
        # The account's other users leave it 10% of its requests until the window resets.
        account.budget.observe("x", 200, RateLimitStatus(1000, 100, window[1], clock.now()))

    account, _ = run_account(addons, hours=5, during=tighten)
    inside = [(r, tier) for t, r, tier in account.tiers if window[0] <= t < window[1]]
    assert inside, "the scheduled runs are still checked in the reserve"
    assert all(tier is Tier.FAST for _, tier in inside)
    outside = {tier for t, _, tier in account.tiers if t >= window[1]}
    assert Tier.FLOOR in outside or Tier.SLOW in outside


def test_budget_exhausted_defers_evenly_and_nothing_starves() -> None:
    # 40 addons, a budget of 40 requests an hour: far too small to read everything hourly.
    addons = [ScriptedAddon(f"p{i % 4}", f"a{i:02d}", None) for i in range(40)]
    account, planner = run_account(addons, hours=40, budget=40)
    times = [t for t, _, _ in account.calls]
    assert max_in_rolling_hour(times) <= 40
    assert account.overlaps == 0
    cadence = planner.cadence
    assert cadence.floor_unscheduled > HOUR  # stretched to fit
    settled = T0 + 12 * HOUR
    for scripted in addons:
        # Nothing starves: every listing of every addon is read, backups evenly often.
        assert account.reads("schedules", scripted.addon)
        assert account.reads("restores", scripted.addon)
        reads = [t for t in account.reads("backups", scripted.addon) if t >= settled]
        gaps = [b - a for a, b in itertools.pairwise(reads)]
        assert len(reads) >= 3
        assert max(gaps) <= 1.5 * cadence.floor_unscheduled
    assert len(account.reads("projects", "")) >= 10


def test_never_two_refreshes_of_one_resource_at_once_even_when_slow() -> None:
    addons = [ScriptedAddon("p", f"a{i}", HOURLY_AT_0, delay=10 * i, duration=60) for i in range(8)]
    account, _ = run_account(addons, hours=6, configure=lambda a: setattr(a, "latency", 90.0))
    assert account.overlaps == 0
    assert len(account.calls) > 100


def test_loop_sleeps_between_refreshes_instead_of_polling() -> None:
    steps = 0

    class Counting(Planner):
        def step(self, now: float) -> float | None:
            nonlocal steps
            steps += 1
            return super().step(now)

    async def main(clock: VirtualClock) -> int:
        gate = RequestBudget(clock=clock, budget=500)
        account = Account(clock=clock, budget=gate, addons=[ScriptedAddon("p", "a", DAILY_AT_0230)])
        planner = Counting(gate, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.sleep(24 * HOUR)
        stop.set()
        await task
        return len(account.calls)

    calls = run_virtual(main, epoch=T0)
    # A step per refresh ending and per planned wake-up, not one per tick.
    assert steps <= 3 * calls + 10


def test_stop_ends_the_loop_at_once() -> None:
    async def main(clock: VirtualClock) -> float:
        gate = RequestBudget(clock=clock, budget=500)
        account = Account(clock=clock, budget=gate, addons=[ScriptedAddon("p", "a")], latency=30.0)
        planner = Planner(gate, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.sleep(10)  # refreshes in flight
        stop.set()
        began = clock.now()
        await task
        return clock.now() - began

    assert run_virtual(main, epoch=T0) == 0


def test_a_new_addon_is_read_as_soon_as_discovery_finds_it() -> None:
    late = ScriptedAddon("p", "late", HOURLY_AT_0)
    addons = [ScriptedAddon("p", "a", HOURLY_AT_0)]

    async def appear(account: Account, clock: VirtualClock) -> None:
        await asyncio.sleep(2 * HOUR)
        account.addons.append(late)

    account, planner = run_account(addons, hours=4, during=appear)
    listing = next(t for t in account.reads("addons", "") if t >= T0 + 2 * HOUR)
    assert account.reads("schedules", "late")[0] == listing
    assert account.reads("backups", "late")[0] == listing
    assert listing - (T0 + 2 * HOUR) <= planner.cadence.discovery


def test_a_failing_listing_backs_off_instead_of_hammering() -> None:
    addon = ScriptedAddon("p", "denied", HOURLY_AT_0)

    def fail(resource: str, name: str, now: float) -> NorthflankError | None:
        if resource == "backups":
            return PermissionDeniedError("permission denied", status_code=403)
        return None

    account, _ = run_account([addon], hours=6, configure=lambda a: setattr(a, "fail", fail))
    reads = account.reads("backups", "denied")
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert gaps[:3] == [RETRY_BASE, 2 * RETRY_BASE, 4 * RETRY_BASE]
    assert len(reads) < 15


def test_collector_shows_the_plan_and_the_stalest_read() -> None:
    addons = [ScriptedAddon("p", "a", HOURLY_AT_0), ScriptedAddon("p", "m", None)]

    async def main(clock: VirtualClock) -> CollectorRegistry:
        gate = RequestBudget(clock=clock, budget=500)
        account = Account(clock=clock, budget=gate, addons=addons)
        planner = Planner(gate, clock=clock)
        registry = CollectorRegistry()
        registry.register(PlannerCollector(planner, lambda: account.store.current, clock=clock))
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.sleep(HOUR + 1200)  # the 01:00 run has been seen finished
        # The per-resource plan is rendered straight to the text format: parse it as Prometheus would.
        (family,) = text_string_to_metric_families(planner.render_next_refresh())
        assert family.name == "northflank_exporter_next_refresh_timestamp_seconds"
        assert family.type == "gauge"
        planned = {
            (x.labels["project"], x.labels["addon"], x.labels["resource"]): x.value for x in family.samples
        }
        assert len(planned) == 2 + 1 + 2 * 3  # projects, destinations, p's addons, 3 per addon
        assert planned[("p", "a", "backups")] == pytest.approx(T0 + 2 * HOUR + FIRST_CHECK_FRACTION * 600)
        last_manual = max(account.reads("backups", "m"))
        assert planned[("p", "m", "backups")] == pytest.approx(
            last_manual + planner.cadence.floor_unscheduled
        )
        assert clock.now() < planned[("", "", "projects")] <= clock.now() + planner.cadence.discovery
        assert ("", "", "backup_destinations") in planned
        assert ("p", "", "addons") in planned
        stalest = registry.get_sample_value("northflank_exporter_stalest_refresh_age_seconds")
        oldest = min(last_manual, max(account.reads("backups", "a")))
        assert stalest == pytest.approx(clock.now() - oldest)
        assert registry.get_sample_value("northflank_exporter_planned_refreshes_total", {"tier": "fast"})
        assert registry.get_sample_value(
            "northflank_exporter_planned_interval_seconds", {"tier": "floor"}
        ) == pytest.approx(planner.cadence.floor)
        stop.set()
        await task
        return registry

    run_virtual(main, epoch=T0)


def test_the_snapshot_is_ready_once_discovery_succeeded() -> None:
    # Not after a complete read: a large fleet takes hours (tests/unit/test_warmup.py has the rest).
    addons = [ScriptedAddon("p", f"a{i}", HOURLY_AT_0) for i in range(3)] + [ScriptedAddon("q", "b")]

    async def main(clock: VirtualClock) -> None:
        gate = RequestBudget(clock=clock, budget=500)
        ready: list[list[tuple[str, str]]] = []

        class Store(SnapshotStore):
            def update(self, change: Callable[[Snapshot], Snapshot]) -> Snapshot:
                snapshot = super().update(change)
                if snapshot.ready and not ready:  # what had been read when it turned ready
                    ready.append([(r, a) for _, r, a in account.calls])
                return snapshot

        account = Account(clock=clock, budget=gate, addons=addons, store=Store())
        planner = Planner(gate, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.sleep(60)
        stop.set()
        await task
        assert ready, "never ready"
        (calls,) = ready
        assert ("projects", "") in calls
        assert [r for r, _ in calls].count("addons") == 2
        # Ready as the last addon listing came in: no schedule read yet, and no restore.
        assert not {r for r, _ in calls} & {"schedules", "restores"}

    run_virtual(main, epoch=T0)


def test_virtual_clock_runs_hours_in_no_time() -> None:
    async def main(clock: VirtualClock) -> float:
        await asyncio.sleep(48 * HOUR)
        return clock.now()

    assert math.isclose(run_virtual(main, epoch=T0), T0 + 48 * HOUR)

"""Readiness and the first complete read (issue 8, section 11), on a virtual clock.

The planner runs against the scripted account of ``test_planner`` (a fake refresher writing into a real
snapshot store, a real request budget): hours of planning take a second of CPU and every time is exact.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from exporter.budget import RequestBudget
from exporter.northflank.errors import AuthError, NorthflankError, PermissionDeniedError, TransportError
from exporter.northflank.models import Project
from exporter.planner import WARMUP_HOLD, Planner, PlannerCollector, PlannerSettings, initial_read_ratio
from exporter.resources import Resource
from exporter.schedule import ScheduleCalendar
from exporter.snapshot import Snapshot, SnapshotStore
from exporter.virtual_time import VirtualClock, run_virtual
from tests.unit.test_planner import HOUR, T0, Account, ScriptedAddon, run_account

#: The first reads must end within this many times their floor (issue 8, section 11).
WARMUP_TARGET = 1.2


def fleet(addons: int, *, per_project: int = 10) -> list[ScriptedAddon]:
    """Schedules as in the reference fleet, roughly: mostly daily at spread times, some hourly, some
    without a schedule (their backups are in progress at some reads, which the fast tier follows)."""
    out = []
    minutes = itertools.cycle(range(0, 24 * 60, 37))
    for i in range(addons):
        project = f"p{i // per_project}"
        if i % 20 == 0:
            calendar: ScheduleCalendar | None = None
        elif i % 10 == 1:
            calendar = ScheduleCalendar(3600, ((i * 7 % 60) * 60,))
        else:
            calendar = ScheduleCalendar(86_400, (next(minutes) * 60,))
        out.append(ScriptedAddon(project, f"a{i}", calendar, delay=60, duration=300))
    return out


def floor_hours(addons: list[ScriptedAddon], budget: int) -> float:
    """What discovery (projects, each project's addons, destinations) and one backup listing per addon
    cost at ``budget`` requests an hour: the least the first read of every addon's backups can take."""
    projects = {a.project for a in addons}
    return (1 + len(projects) + 1 + len(addons)) / budget


class ReadyStore(SnapshotStore):
    """A snapshot store that says when the snapshot turns ready, to be awaited with a deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()

    def update(self, change: Callable[[Snapshot], Snapshot]) -> Snapshot:
        snapshot = super().update(change)
        if snapshot.ready:
            self.ready.set()
        return snapshot


def first_reads(account: Account, resource: str) -> dict[str, float]:
    firsts: dict[str, float] = {}
    for at, r, addon in account.calls:
        if r == resource:
            firsts.setdefault(addon, at)
    return firsts


# -- the order and the pace of the first reads -------------------------------------------------------------


def test_every_addons_backups_are_read_before_any_schedule_or_restore_and_within_the_target() -> None:
    addons = fleet(400)
    budget = 500
    account, _ = run_account(addons, hours=3, budget=budget)
    backups, schedules, restores = (first_reads(account, r) for r in ("backups", "schedules", "restores"))
    assert set(backups) == {a.addon for a in addons}
    last_first_backup = max(backups.values())
    # Not one schedule or restore before the last addon's backups were read for the first time.
    assert min(schedules.values()) >= last_first_backup
    assert min(restores.values()) >= last_first_backup
    # And schedules, all of them, before any restore.
    assert set(schedules) == {a.addon for a in addons}
    assert min(restores.values()) >= max(schedules.values())
    floor = floor_hours(addons, budget)
    warmup = (last_first_backup - T0) / HOUR
    assert warmup <= WARMUP_TARGET * floor, (warmup, floor)
    # Not by breaking the budget.
    assert max(len([t for t, *_ in account.calls if s <= t < s + HOUR]) for s in (T0, T0 + HOUR)) <= budget


def test_periodic_refreshes_wait_for_the_first_reads_but_not_forever() -> None:
    # 1500 addons at 300 requests an hour: five hours of first backup reads. The projects are re-read
    # all the same, at most WARMUP_HOLD after they were due (a project or addon that comes or goes is
    # noticed); a floor read of an addon already read does not jump ahead of one never read.
    addons = fleet(1500, per_project=100)
    budget = 300
    settings = PlannerSettings(discovery_interval=1800)
    account, planner = run_account(addons, hours=6, budget=budget, settings=settings)
    backups = first_reads(account, "backups")
    assert set(backups) == {a.addon for a in addons}
    last_first_backup = max(backups.values())
    assert (last_first_backup - T0) / HOUR <= WARMUP_TARGET * floor_hours(addons, budget)
    # Meanwhile the floor did not re-read addons already read (only the fast tier follows a backup
    # found in progress).
    rereads = sum(1 for t, r, _ in account.calls if r == "backups" and t < last_first_backup) - len(addons)
    assert rereads <= 0.05 * len(addons)
    projects = [t for t, r, _ in account.calls if r == "projects"]
    assert projects[0] == T0
    during = [t for t in projects if t < last_first_backup]
    assert len(during) >= 2, projects
    interval = planner.cadence.discovery
    assert all(b - a <= interval + WARMUP_HOLD + 120 for a, b in itertools.pairwise(during)), during


# -- readiness -------------------------------------------------------------------------------------------


def test_ready_once_discovery_succeeded_long_before_every_addon_was_read() -> None:
    addons = fleet(300)

    async def main(clock: VirtualClock) -> None:
        gate = RequestBudget(clock=clock, budget=500)
        store = ReadyStore()
        account = Account(clock=clock, budget=gate, addons=addons, store=store)
        planner = Planner(gate, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.wait_for(store.ready.wait(), 300)  # virtual seconds
        assert clock.now() - T0 < 300
        # Every project's addons were listed (once each), and a minority of the addons read.
        assert [r for _, r, _ in account.calls].count("addons") == len({a.project for a in addons})
        read = first_reads(account, "backups")
        assert 0 < len(read) < len(addons) / 2
        stop.set()
        await task

    run_virtual(main, epoch=T0)


@pytest.mark.parametrize(
    "error",
    [AuthError("refused", status_code=401), TransportError("connection refused")],
    ids=["401", "down"],
)
def test_not_ready_while_the_projects_cannot_be_listed_then_ready_once_they_are(
    error: NorthflankError,
) -> None:
    addons = fleet(30)
    healed = T0 + 2 * HOUR

    def fail(resource: str, _addon: str, now: float) -> NorthflankError | None:
        return error if now < healed else None

    async def main(clock: VirtualClock) -> None:
        gate = RequestBudget(clock=clock, budget=500)
        store = ReadyStore()
        account = Account(clock=clock, budget=gate, addons=addons, fail=fail, store=store)
        planner = Planner(gate, clock=clock)
        registry = CollectorRegistry()
        registry.register(PlannerCollector(planner, lambda: account.store.current, clock=clock))
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.sleep(healed - T0 - 1)
        # Hours of refused discovery, retried: never ready. The destinations are retried with it when
        # the API is down; while the token is refused only the projects listing goes (one request
        # says it: any other listing would be refused too).
        assert [r for _, r, _ in account.calls].count("projects") > 3
        read = {r for _, r, _ in account.calls}
        if isinstance(error, AuthError):
            assert read == {Resource.PROJECTS}
        else:
            assert Resource.BACKUP_DESTINATIONS in read
        assert not account.store.current.ready
        ratio = registry.get_sample_value("northflank_exporter_initial_read_ratio", {"resource": "backups"})
        assert ratio == 0
        # The next retry after the API healed: ready within the backed-off retry, not at a complete read.
        await asyncio.wait_for(store.ready.wait(), planner.cadence.discovery + 60)
        stop.set()
        await task

    run_virtual(main, epoch=T0)


def test_a_project_whose_addon_listing_is_refused_does_not_hold_readiness() -> None:
    addons = fleet(30)

    def fail(resource: str, _addon: str, _now: float) -> NorthflankError | None:
        return PermissionDeniedError("no access", status_code=403) if resource == "addons" else None

    account, _ = run_account(addons, hours=0.25, configure=lambda a: setattr(a, "fail", fail))
    assert account.store.current.ready
    assert not account.store.current.addons


def test_the_initial_read_ratio_follows_the_first_reads() -> None:
    addons = fleet(200)

    async def main(clock: VirtualClock) -> None:
        gate = RequestBudget(clock=clock, budget=500)
        store = ReadyStore()
        account = Account(clock=clock, budget=gate, addons=addons, store=store)
        planner = Planner(gate, clock=clock)
        registry = CollectorRegistry()
        registry.register(PlannerCollector(planner, lambda: account.store.current, clock=clock))

        def ratio(resource: str) -> float | None:
            return registry.get_sample_value("northflank_exporter_initial_read_ratio", {"resource": resource})

        assert (ratio("backups"), ratio("schedules"), ratio("restores")) == (0, 0, 0)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        await asyncio.wait_for(store.ready.wait(), 300)
        seen: list[tuple[float, float, float]] = []
        for _ in range(4 * 60):
            values = (ratio("backups"), ratio("schedules"), ratio("restores"))
            assert None not in values
            seen.append(values)  # type: ignore[arg-type]
            await asyncio.sleep(60)
        backups = [b for b, _, _ in seen]
        assert backups == sorted(backups)
        assert 0 < backups[0] < 1
        # Schedules move only once every backup listing was read; restores once every schedule was.
        assert all(s == 0 for b, s, _ in seen if b < 1)
        assert all(r == 0 for _, s, r in seen if s < 1)
        assert seen[-1] == (1, 1, 1)
        stop.set()
        await task

    run_virtual(main, epoch=T0)


def test_the_initial_read_ratio_of_an_empty_fleet_is_complete() -> None:
    family = initial_read_ratio(Snapshot().with_projects([(None, Project(id="p", name="p"))], T0))
    assert {s.labels["resource"]: s.value for s in family.samples} == {
        "backups": 1,
        "schedules": 1,
        "restores": 1,
    }


def test_the_snapshot_is_never_ready_before_the_projects_were_listed() -> None:
    # Whatever a scheduler says (the fixed timer's pass ends after a refused discovery, too).
    assert not Snapshot().with_ready().ready
    assert not Snapshot().with_discovery_failed().with_ready().ready
    listed = Snapshot().with_projects([(None, Project(id="p", name="p"))], T0).with_ready()
    assert listed.ready
    # And it stays ready through a later failed discovery: the last good data stays in service.
    assert listed.with_discovery_failed().ready

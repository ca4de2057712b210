"""--storage.path in process: a restarted exporter serves what the previous one read, with the times it
was read, before the API answers anything; it resumes the plans; and it counts the previous process's
requests against the rolling hour (real sockets to the simulator, a fixed clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from exporter.clock import FixedClock
from exporter.planner import Planner
from exporter.resources import Resource
from exporter.simulator.app import Simulator
from exporter.simulator.faults import FaultKind, FaultSpec
from exporter.simulator.server import serve
from exporter.state.store import STATE_FILE
from tests.support import MONDAY_NOON, RunningExporter, eventually, running_exporter, series

TOKEN = "nf-restart-token-7c2f"


def _planner(running: RunningExporter) -> Planner:
    scheduler = running.exporter.scheduler
    assert isinstance(scheduler, Planner)
    return scheduler


@asynccontextmanager
async def _exporter(
    api_url: str, clock: FixedClock, storage: Path, **settings: Any
) -> AsyncIterator[RunningExporter]:
    async with running_exporter(
        api_url=api_url, token=TOKEN, clock=clock, planner=True, storage_path=storage, **settings
    ) as running:
        yield running


def _all_read(running: RunningExporter) -> bool:
    snapshot = running.exporter.store.current
    return (
        snapshot.ready
        and bool(snapshot.addons)
        and all(a.backups is not None and a.schedules is not None for a in snapshot.addons.values())
    )


@asynccontextmanager
async def _simulated_api() -> AsyncIterator[tuple[Simulator, FixedClock, str]]:
    """The e2e scenario served on 127.0.0.1, under a fixed clock the exporters share."""
    clock = FixedClock(MONDAY_NOON)
    simulator = Simulator.from_scenario("e2e", clock=clock, seed=0, token=TOKEN)
    async with serve(simulator) as api_url:
        yield simulator, clock, api_url


async def _settled(running: RunningExporter) -> None:
    """Until every addon was read and the planner has nothing left to do."""
    await eventually(lambda: _all_read(running), within=10, what="every addon read")
    await eventually(lambda: _planner(running).settled.is_set(), within=10, what="the planner settled")


async def test_a_restart_serves_every_addon_at_once_with_the_old_refresh_times(tmp_path: Path) -> None:
    async with _simulated_api() as (simulator, clock, api_url):
        async with _exporter(api_url, clock, tmp_path) as first:
            await _settled(first)
            before = await first.scrape()
            plans = dict(_planner(first).plans())
        assert (tmp_path / STATE_FILE).exists()
        # From now on the API answers nothing: whatever the next exporter shows comes from the file.
        simulator.add_fault(FaultSpec(kind=FaultKind.HANG))
        clock.advance(30)
        async with _exporter(api_url, clock, tmp_path) as second:
            after = await second.scrape()
            restored = dict(_planner(second).plans())
    refreshes = series(before, "northflank_exporter_last_refresh_timestamp_seconds")
    addons = {dict(labels)["addon"] for labels in refreshes if dict(labels)["addon"]}
    assert addons == {"e2e-healthy", "e2e-failing", "e2e-stale", "e2e-unscheduled", "e2e-stuck"}
    assert series(after, "northflank_exporter_last_refresh_timestamp_seconds") == refreshes
    for family in ("northflank_addon_info", "northflank_backup_last_completed_timestamp_seconds"):
        assert series(after, family) == series(before, family), family
    # The plans resume where they were: every addon's backups are due when they were due before.
    for target, plan in plans.items():
        if target.resource is Resource.BACKUPS:
            assert restored[target].due == plan.due, target


async def test_the_restored_request_log_counts_against_the_budget(tmp_path: Path) -> None:
    """The second exporter may spend what the first one left of the hour: here nothing."""
    async with _simulated_api() as (simulator, clock, api_url):
        async with _exporter(api_url, clock, tmp_path) as first:
            await _settled(first)
            spent = len(simulator.request_log)
            # Something is due again soon (the stuck backup's follow-up, the stale addon's floor)...
            assert spent > 5
        clock.advance(60)
        # ...but the next process's budget is what the first one already spent this hour.
        async with _exporter(api_url, clock, tmp_path, request_budget=spent) as second:
            assert second.exporter.budget.spent(clock.now()) == spent
            _planner(second).read_everything()
            await eventually(lambda: _planner(second).settled.is_set(), within=10, what="the planner settled")
            served = await second.scrape()
        assert len(simulator.request_log) == spent
    assert series(served, "northflank_addon_info")

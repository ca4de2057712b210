"""The exporter as composed by the app (client, request budget, refresher, planner) against the simulator,
in-process, on a virtual clock: hours of polling in a second, every request in the simulator's log.

What the simulator's own records say is the reference: when each backup reached its final state, and
when the exporter's snapshot showed it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from exporter.app import Exporter
from exporter.config import ListenAddress, Settings
from exporter.planner import Planner
from exporter.simulator.app import DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from exporter.simulator.reference_fleet import reference
from exporter.simulator.requestlog import RequestRecord
from exporter.simulator.routes import BACKUPS
from exporter.simulator.scenarios import e2e
from exporter.snapshot import AddonKey
from exporter.virtual_time import VirtualClock, run_virtual
from tests.support import max_in_rolling_hour, parse_samples, value

#: Monday 2026-11-23 00:00 UTC.
T0 = 1_795_392_000.0
HOUR = 3600.0


@dataclass
class Run:
    simulator: Simulator
    exporter: Exporter
    #: When each addon's backup listing was read successfully (from the snapshot's refresh times).
    reads: dict[AddonKey, list[float]]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    #: The exposition at the end of the run.
    text: str

    @property
    def requests(self) -> list[RequestRecord]:
        return self.simulator.request_log.records


def run_exporter(
    simulator_factory: Callable[[VirtualClock], Simulator],
    *,
    hours: float,
    budget: int | None = None,
    during: Callable[[Simulator, VirtualClock], Coroutine[None, None, None]] | None = None,
    **settings: object,
) -> Run:
    async def main(clock: VirtualClock) -> Run:
        simulator = simulator_factory(clock)
        config = Settings(
            listen_address=ListenAddress("127.0.0.1", 0),
            api_url=IN_PROCESS_URL,
            token=SecretStr(DEFAULT_TOKEN),
            request_budget=budget,
            **settings,  # type: ignore[arg-type]
        )
        exporter = Exporter(config, clock=clock, transport=simulator.transport())
        reads: dict[AddonKey, list[float]] = {}

        async def watch() -> None:
            # The snapshot's refresh time of every addon's backups, looked at every virtual second.
            seen: dict[AddonKey, float] = {}
            while True:
                for key, addon in exporter.store.current.addons.items():
                    if addon.backups is not None and seen.get(key) != addon.backups.at:
                        seen[key] = addon.backups.at
                        reads.setdefault(key, []).append(addon.backups.at)
                await asyncio.sleep(1)

        stop = asyncio.Event()
        polling = asyncio.create_task(exporter.scheduler.run(exporter.refresher, stop))
        watching = asyncio.create_task(watch())
        meanwhile = asyncio.create_task(during(simulator, clock)) if during is not None else None
        await asyncio.sleep(hours * HOUR)
        text = exporter.render_metrics().decode()
        stop.set()
        for task in (polling, watching, meanwhile):
            if task is not None:
                task.cancel()
        await asyncio.gather(polling, watching, *([meanwhile] if meanwhile else []), return_exceptions=True)
        await exporter.client.aclose()
        return Run(simulator, exporter, reads, parse_samples(text), text)

    return run_virtual(main, epoch=T0)


def test_every_scheduled_backup_is_seen_within_minutes_of_its_end() -> None:
    run = run_exporter(lambda clock: Simulator(e2e(start=T0), clock=clock), hours=8)
    sim = run.simulator
    assert isinstance(run.exporter.scheduler, Planner)
    assert sim.request_log.count(status=429) == 0
    healthy = sim.fleet.addon("e2e-healthy")
    assert healthy is not None
    key = (healthy.project_id, healthy.id)
    reads = run.reads[key]
    ended = [
        b.completed_at
        for b in sim.backups_at(healthy, T0 + 8 * HOUR)
        if b.completed_at is not None and T0 + HOUR <= b.completed_at <= T0 + 7 * HOUR
    ]
    assert len(ended) == 6
    for end in ended:
        seen = min(t for t in reads if t >= end)
        assert seen - end <= 120, f"a backup that ended at {end - T0:.0f}s was seen {seen - end:.0f}s later"
    # About one listing per run, a few more around each run's end: not one every few minutes.
    per_hour = len([t for t in reads if T0 + HOUR <= t < T0 + 7 * HOUR]) / 6
    assert 1 <= per_hour <= 6
    # Failures are seen too (e2e-failing fails every run).
    failing = sim.fleet.addon("e2e-failing")
    assert failing is not None
    labels = {"project": failing.project_id, "addon": failing.id}
    assert value(run.samples, "northflank_addon_backup_consecutive_failures", **labels) == pytest.approx(
        sum(1 for b in sim.backups_at(failing, T0 + 8 * HOUR) if b.status == "failed"), abs=1
    )
    # The metrics of the plan and the budget.
    assert value(run.samples, "northflank_exporter_api_request_budget") == 500
    spent = value(run.samples, "northflank_exporter_api_requests_last_hour")
    assert spent == len([r for r in run.requests if r.time > T0 + 7 * HOUR])
    assert value(run.samples, "northflank_exporter_refresh_deferred_seconds") == 0
    next_read = value(
        run.samples,
        "northflank_exporter_next_refresh_timestamp_seconds",
        project=healthy.project_id,
        addon=healthy.id,
        resource="backups",
    )
    assert next_read is not None
    assert T0 + 8 * HOUR < next_read <= T0 + 9 * HOUR + 600
    stalest = value(run.samples, "northflank_exporter_stalest_refresh_age_seconds")
    assert stalest is not None
    assert 0 <= stalest <= HOUR


def test_the_exposition_with_the_planner_passes_promtool(promtool: str) -> None:
    run = run_exporter(lambda clock: Simulator(e2e(start=T0), clock=clock), hours=2)
    assert "northflank_exporter_next_refresh_timestamp_seconds{" in run.text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=run.text, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_big_fleet_stays_within_the_budget_and_every_addon_is_read() -> None:
    run = run_exporter(
        lambda clock: Simulator(reference(100, seed=3, start=T0), clock=clock, rate_limit=1000),
        hours=4,
        budget=100,
    )
    sim = run.simulator
    assert sim.request_log.count(status=429) == 0
    assert max_in_rolling_hour([r.time for r in run.requests]) <= 100
    assert {(a.project_id, a.id) for a in sim.fleet.addons} <= set(run.reads)
    assert run.exporter.store.current.ready


def test_in_the_reserve_only_backup_checks_go_out_and_a_429_is_waited_out() -> None:
    window: dict[str, float] = {}

    async def others(sim: Simulator, clock: VirtualClock) -> None:
        # Once the exporter is settled, early in a rate-limit window, the account's other users leave it
        # 15% of the window: below the 20% reserve.
        await asyncio.sleep(2 * HOUR)
        for _ in range(60):  # virtual minutes, until a window has most of its hour ahead
            if sim.rate_limiter.peek(clock.now()).reset_after >= 50 * 60:
                break
            await asyncio.sleep(60)
        state = sim.rate_limiter.peek(clock.now())
        sim.consume(state.remaining - 150)
        window["reserve"] = clock.now()
        window["reset"] = clock.now() + state.reset_after
        # Twenty minutes later they use it all: the exporter's next request is refused.
        await asyncio.sleep(1200)
        sim.consume(1000)
        window["exhausted"] = clock.now()

    run = run_exporter(
        lambda clock: Simulator(e2e(start=T0), clock=clock, rate_limit=1000),
        hours=5,
        during=others,
    )
    reserve, exhausted, reset = window["reserve"], window["exhausted"], window["reset"]
    assert reserve < exhausted < reset
    in_reserve = [r for r in run.requests if reserve < r.time < exhausted]
    assert in_reserve, "scheduled runs are still checked in the reserve"
    assert {r.route for r in in_reserve} == {BACKUPS}
    # An exhausted account: at most the one request that found out, then nothing until the reset.
    assert run.simulator.request_log.count(status=429) <= 1
    held = [r for r in run.requests if exhausted < r.time < reset and r.status != 429]
    assert held == []
    assert [r for r in run.requests if r.time >= reset], "polling resumes after the reset"


def test_a_staleness_the_budget_cannot_pay_for_is_held_to_the_budget() -> None:
    """Every addon's backups asked for every minute (300 requests an hour for the e2e fleet's five
    addons, plus discovery) on a budget of 50: the budget wins, and the API never has to say 429."""
    run = run_exporter(
        lambda clock: Simulator(e2e(start=T0), clock=clock),
        hours=3,
        budget=50,
        max_staleness=60.0,
    )
    assert isinstance(run.exporter.scheduler, Planner)
    assert run.simulator.request_log.count(status=429) == 0
    assert max_in_rolling_hour([r.time for r in run.requests]) <= 50
    # The budget was spent, not left idle: the test would pass vacuously on an exporter reading nothing.
    assert max_in_rolling_hour([r.time for r in run.requests]) >= 40

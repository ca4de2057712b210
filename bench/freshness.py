"""Freshness benchmark: how soon the exporter sees each backup end, and what it spends for it.

    .venv/bin/python bench/freshness.py                # 10, 100, 500, 1000 addons, 48 simulated hours
    .venv/bin/python bench/freshness.py --quick        # 12 simulated hours
    .venv/bin/python bench/freshness.py --sizes 100 --hours 24

For each fleet size (the reference fleet model, :func:`exporter.simulator.reference_fleet.reference`,
fixed seed), the real exporter (``Exporter``: client, request budget, refresher, planner) runs against the
in-process simulator (``Simulator.transport()``) on a virtual-time event loop
(:mod:`exporter.virtual_time`): both read the same virtual clock, so 48 hours take the CPU time of their
requests. The same fleet is then polled by two naive baselines at an even pace that spends the same
budget: ``naive`` reads every addon's three listings (backups, schedules, restores) round-robin (what the
fixed-interval scheduler, removed in issue 11, did, stretched to fit the budget: two thirds of it go to
schedules and restores); ``naive-backups`` reads only the backup listings round-robin (the whole budget on
what the delays measure: the fairer comparison).

The simulator allows 1000 requests per hour; the exporter's budget is 500. Figures per run:

- max requests in any rolling hour (whole run) and 429 answers;
- backup events per hour: backups reaching a final state (completed or failed) in the measured window;
- backup-listing requests per detected event (1.0 is the floor: one read after each backup ends);
- detection delay, p50 / p95 / max: from a backup's ``completedAt`` to the first successful read of its
  addon's listing at or after it (the snapshot shows it from then on), for scheduled backups that
  completed, scheduled backups that failed, and manual backups, each its own column; the target lines
  say which p95 they use (``scheduled`` is completed and failed together);
- ready: from the start until ``/-/ready`` answers 200 (to the minute);
- warm-up: from the start until every addon's backups were read successfully once (each addon's last
  backup known), next to its floor: what discovery (the projects, each project's addons, the
  destinations and their backups) plus one backup listing per addon cost at the budget's pace;
- settled: until every addon's schedules were read once too (the planner reads them after the warm-up;
  the backups-only baseline reads none: for it, the warm-up).

The measured window starts once settled (at least an hour in: before, no scheduled run can be planned
for) and ends two hours before the end, so that late detections are still measured; a backup not seen
by the end counts as undetected.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.app import Exporter
from exporter.budget import RequestBudget
from exporter.config import ListenAddress, Settings
from exporter.planner import Planner
from exporter.poller import Outcome, Refresher, WithoutMetrics
from exporter.resources import Resource
from exporter.simulator.app import DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from exporter.simulator.fleet import Fleet
from exporter.simulator.history import BackupRecord, addon_backups
from exporter.simulator.reference_fleet import reference
from exporter.simulator.routes import BACKUPS
from exporter.snapshot import ADDON_RESOURCES, AddonKey, AddonResource, Snapshot
from exporter.virtual_time import VirtualClock, run_virtual

HOUR = 3600.0
#: 2026-11-23 00:00 UTC, a Monday: fixed, so that every run sees the same schedules fire.
EPOCH = 1_795_392_000.0
FLEET_SEED = 7
SIMULATOR_SEED = 7
API_RATE_LIMIT = 1000
BUDGET = 500
SIZES = (10, 100, 500, 1000)
#: Backups ending this close to the end of the run are not measured (their detection may come later).
TAIL = 2 * HOUR
#: Every addon's backups read once within this many times the floor (see :func:`warmup_floor`).
WARMUP_TARGET = 1.2
#: p95 detection of scheduled backups (completed and failed), in minutes, by fleet size (issue 9).
P95_TARGETS = {100: 3.0, 500: 3.0, 1000: 12.0}
#: Before issue 9 (the fast tier held to 30% of the budget; 48 simulated hours, this machine): p95 in
#: minutes by kind, for comparison (manual: the unscheduled addons' backups, which must be no worse).
BEFORE_P95: dict[int, dict[str, float]] = {
    500: {"scheduled": 5.2, "completed": 5.1, "failed": 8.7, "manual": 73.8},
    1000: {"scheduled": 27.2, "completed": 27.2, "failed": 28.6, "manual": 145.1},
}

# -- the naive baseline -----------------------------------------------------------------------------------


class RoundRobinScheduler(WithoutMetrics):
    """The naive baseline: discovery, then every addon's backups, schedules and restores, round-robin,
    one request every ``3600 / budget`` seconds, forever. Ready after the first complete cycle."""

    def __init__(self, budget: RequestBudget, *, per_hour: int, resources: Sequence[AddonResource]) -> None:
        self._budget = budget
        self._pace = HOUR / per_hour
        self._resources = tuple(resources)

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._paced(refresher.refresh_projects())
            snapshot = refresher.store.current
            for project_id in list(snapshot.projects):
                await self._paced(refresher.refresh_project_addons(project_id))
            await self._paced(refresher.refresh_destinations())
            for key in list(refresher.store.current.addons):
                for resource in self._resources:
                    await self._paced(refresher.refresh_addon(key, resource))
            refresher.store.update(Snapshot.with_ready)

    async def _paced(self, refresh: Awaitable[Outcome]) -> None:
        with self._budget.track(essential=False) as tally:
            await refresh
        await asyncio.sleep(self._pace * max(1, tally.requests))


# -- recording what the exporter saw ----------------------------------------------------------------------


class RecordingRefresher(Refresher):
    """The exporter's refresher, noting when each addon's backup listing was read successfully, and when
    its schedules were first."""

    def __init__(self, exporter: Exporter, clock: VirtualClock) -> None:
        super().__init__(
            exporter.client,
            exporter.store,
            clock=clock,
            registry=CollectorRegistry(),
            teams=exporter.settings.teams,
            concurrency=exporter.settings.concurrency,
        )
        self.reads: dict[AddonKey, list[float]] = defaultdict(list)
        self.schedules_known: dict[AddonKey, float] = {}

    async def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Outcome:
        outcome = await super().refresh_addon(key, resource)
        if resource == "backups" and outcome.ok:
            addon = self.store.current.addons.get(key)
            if addon is not None and addon.backups is not None:
                self.reads[key].append(addon.backups.at)
        if resource == "schedules" and outcome.ok:
            self.schedules_known.setdefault(key, self._clock.now())
        return outcome


class TimedApp:
    """The simulator's ASGI app, timing the CPU it takes (nothing in it waits on real I/O)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self.seconds = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        try:
            await self._app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - began


# -- one run ----------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    poller: str
    addons: int
    hours: float
    #: From the start until every addon's backups were read once (inf: not within the run).
    warmup_hours: float
    #: What discovery plus one backup listing per addon cost at the budget's pace.
    floor_hours: float
    #: From the start until the snapshot was ready (inf: never within the run).
    ready_hours: float
    #: From the start until every addon's backups and schedules were read once (inf: not in the run).
    settled_hours: float
    max_in_hour: int
    rate_limited: int
    requests_per_hour: float
    events_per_hour: float
    backup_requests: int
    detected: int
    undetected: int
    delays: dict[str, list[float]] = field(default_factory=dict)
    #: Refreshes the planner started per hour, by tier, over the whole run.
    tiers: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    #: Of which inside the simulator's ASGI app (routing, the backup history, JSON rendering).
    simulator_seconds: float = 0.0

    @property
    def requests_per_event(self) -> float:
        return self.backup_requests / self.detected if self.detected else math.inf


def _events(fleet: Fleet, start: float, end: float) -> list[tuple[AddonKey, BackupRecord]]:
    """Every backup that reached a final state in [start, end], from the simulator's pure history."""
    seen: dict[str, tuple[AddonKey, BackupRecord]] = {}
    # Every retention is at least a day: a look every 24 hours sees every backup in its final state.
    steps = math.ceil((end + TAIL - start) / (24 * HOUR))
    checkpoints = [min(end + TAIL, start + k * 24 * HOUR) for k in range(1, steps + 1)]
    for addon in fleet.addons:
        key = (addon.project_id, addon.id)
        for at in checkpoints:
            for record in addon_backups(fleet, addon, SIMULATOR_SEED, at):
                if record.completed_at is not None and start <= record.completed_at <= end:
                    seen[record.id] = (key, record)
    return sorted(seen.values(), key=lambda item: (item[1].completed_at or 0.0, item[1].id))


# -- the modes: who polls ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """How one poller is set up on the exporter (``install``), and whether it reads schedules (the
    measured window waits for them only then)."""

    install: Callable[[Exporter, int], None]
    reads_schedules: bool = True


def _planner(exporter: Exporter, budget: int) -> None:
    """The exporter's own planner, as it runs in production."""


def _naive(exporter: Exporter, budget: int) -> None:
    exporter.scheduler = RoundRobinScheduler(exporter.budget, per_hour=budget, resources=ADDON_RESOURCES)


def _naive_backups(exporter: Exporter, budget: int) -> None:
    exporter.scheduler = RoundRobinScheduler(exporter.budget, per_hour=budget, resources=(Resource.BACKUPS,))


MODES: dict[str, Mode] = {
    "planner": Mode(_planner),
    "naive": Mode(_naive),
    "naive-backups": Mode(_naive_backups, reads_schedules=False),
}
BASELINES = ("naive", "naive-backups")


def run_one(addons: int, poller: str, hours: float, budget: int = BUDGET) -> RunResult:
    # httpx's ASGITransport tries ``import sniffio`` on every request; without sniffio installed each
    # failed import walks sys.path (~0.1 ms a request). Record it as absent once.
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]
    started_wall = time.perf_counter()
    fleet = reference(addons, seed=FLEET_SEED)

    async def main(clock: VirtualClock) -> RunResult:
        rig = Rig.build(fleet, clock, in_process_settings(budget))
        mode = MODES[poller]
        mode.install(rig.exporter, budget)
        stop = asyncio.Event()
        start = clock.now()
        polling = asyncio.create_task(rig.exporter.scheduler.run(rig.refresher, stop))
        ready_at = await watch_ready(clock, rig.exporter, start + hours * HOUR)
        # As Exporter.run stops the poller: stop, then cancel whatever is still waiting.
        stop.set()
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await rig.exporter.client.aclose()
        return measure(rig, poller, addons, hours, budget, start, ready_at, mode.reads_schedules)

    result = run_virtual(main, epoch=EPOCH)
    result.wall_seconds = time.perf_counter() - started_wall
    return result


async def watch_ready(clock: VirtualClock, exporter: Exporter, end: float) -> float | None:
    """Let the run go on until ``end``, a minute at a time; when ``/-/ready`` first answered 200."""
    ready_at: float | None = None
    while clock.now() < end:
        await asyncio.sleep(60)
        if ready_at is None and exporter.store.current.ready:
            ready_at = clock.now()
    return ready_at


def in_process_settings(budget: int, **more: Any) -> Settings:
    """The exporter's settings for the in-process simulator, at ``budget`` requests an hour (``more``:
    other settings)."""
    return Settings(
        listen_address=ListenAddress("127.0.0.1", 0),
        api_url=IN_PROCESS_URL,
        token=SecretStr(DEFAULT_TOKEN),
        request_budget=budget,
        **more,
    )


@dataclass
class Rig:
    """One run's parts: the simulator (its app timed), the exporter reading it, and the refresher that
    records what it read (shared by bench/freshness_webhook.py)."""

    simulator: Simulator
    timed: TimedApp
    exporter: Exporter
    refresher: RecordingRefresher

    @classmethod
    def build(cls, fleet: Fleet, clock: VirtualClock, settings: Settings) -> Rig:
        simulator = Simulator(fleet, clock=clock, seed=SIMULATOR_SEED, rate_limit=API_RATE_LIMIT)
        timed = TimedApp(simulator.app)
        exporter = Exporter(settings, clock=clock, transport=httpx.ASGITransport(app=timed))
        return cls(simulator, timed, exporter, RecordingRefresher(exporter, clock))


def measure(
    rig: Rig,
    poller: str,
    addons: int,
    hours: float,
    budget: int,
    start: float,
    ready_at: float | None,
    reads_schedules: bool,
) -> RunResult:
    """The figures of the run on ``rig`` that began at ``start`` and ran ``hours``: the warm-up, the
    measured window, and each backup event's detection delay by kind (shared by
    bench/freshness_webhook.py)."""
    simulator, exporter, refresher = rig.simulator, rig.exporter, rig.refresher
    end = start + hours * HOUR
    keys = [(a.project_id, a.id) for a in simulator.fleet.addons]
    # Each addon's last backup is known from its first successful backup read on.
    firsts = [refresher.reads[key][0] if refresher.reads.get(key) else math.inf for key in keys]
    warm_at = max(firsts, default=start)
    # Detection is measured once the planner knows every addon's schedules too (it reads them after
    # every addon's backups): before that no scheduled run of theirs can be planned for.
    schedules = [refresher.schedules_known.get(key, math.inf) for key in keys]
    settled_at = max([warm_at, *schedules]) if reads_schedules else warm_at
    warm_until = max(start + HOUR, min(settled_at, end))
    window_end = end - TAIL
    log = simulator.request_log
    in_window = [r for r in log if warm_until <= r.time < window_end]
    delays: dict[str, list[float]] = {"completed": [], "failed": [], "manual": []}
    detected = undetected = 0
    events = _events(simulator.fleet, warm_until, window_end) if window_end > warm_until else []
    for key, record in events:
        assert record.completed_at is not None
        reads = refresher.reads.get(key, [])
        index = bisect_left(reads, record.completed_at)
        if index == len(reads):
            undetected += 1
            continue
        detected += 1
        kind = "manual" if record.schedule_id is None else record.status
        delays[kind].append(reads[index] - record.completed_at)
    measured = max(window_end - warm_until, 1e-9) / HOUR
    tiers = (
        {tier.label: count / hours for tier, count in exporter.scheduler.started().items()}
        if isinstance(exporter.scheduler, Planner)
        else {}
    )
    return RunResult(
        poller=poller,
        addons=addons,
        hours=hours,
        warmup_hours=(warm_at - start) / HOUR,
        floor_hours=warmup_floor(simulator.fleet, budget),
        ready_hours=(ready_at - start) / HOUR if ready_at is not None else math.inf,
        settled_hours=(settled_at - start) / HOUR,
        max_in_hour=log.max_in_window(HOUR),
        rate_limited=log.count(status=429),
        requests_per_hour=len(in_window) / measured,
        events_per_hour=len(events) / measured,
        backup_requests=sum(1 for r in in_window if r.route == BACKUPS),
        detected=detected,
        undetected=undetected,
        delays=delays,
        tiers=tiers,
        simulator_seconds=rig.timed.seconds,
    )


J = TypeVar("J")
R = TypeVar("R")


def run_jobs(run: Callable[[J], R], jobs: Sequence[J], processes: int) -> list[R]:
    """``run`` of each job, in order: in ``processes`` processes, or in this one when it is 1."""
    if processes > 1:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            return list(pool.map(run, jobs))
    return [run(job) for job in jobs]


def warmup_floor(fleet: Fleet, budget: int) -> float:
    """Hours the first read of every addon's backups takes at least: discovery (the projects, each
    project's addons, the destinations and each destination's backups) and one backup listing per addon,
    one request each, at ``budget`` requests an hour."""
    requests = 1 + len(fleet.projects) + 1 + len(fleet.destinations) + len(fleet.addons)
    return requests / budget


# -- the report -------------------------------------------------------------------------------------------


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


def _minutes(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return (
        f"{_quantile(values, 0.5) / 60:.1f}/{_quantile(values, 0.95) / 60:.1f}/{max(values) / 60:.1f}"
        f" ({len(values)})"
    )


HEADER = (
    f"{'poller':<14}{'addons':>7}{'ready':>7}{'warm-up':>8}{'floor':>7}{'settled':>8}{'max/h':>7}{'429s':>6}{'req/h':>7}{'events/h':>9}"
    f"{'req/event':>10}  {'completed p50/p95/max (n)':<27}{'failed p50/p95/max (n)':<24}"
    f"{'manual p50/p95/max (n)':<26}{'undet.':>7}{'run s':>7}{'sim':>5}"
)


def format_row(r: RunResult) -> str:
    return (
        f"{r.poller:<14}{r.addons:>7}{r.ready_hours:>6.2f}h{r.warmup_hours:>7.2f}h{r.floor_hours:>6.2f}h"
        f"{r.settled_hours:>7.2f}h{r.max_in_hour:>7}{r.rate_limited:>6}"
        f"{r.requests_per_hour:>7.0f}{r.events_per_hour:>9.1f}{r.requests_per_event:>10.2f}  "
        f"{_minutes(r.delays['completed']):<27}{_minutes(r.delays['failed']):<24}"
        f"{_minutes(r.delays['manual']):<26}{r.undetected:>7}{r.wall_seconds:>7.0f}"
        f"{100 * r.simulator_seconds / r.wall_seconds:>4.0f}%"
    )


def _scheduled(r: RunResult) -> list[float]:
    return r.delays["completed"] + r.delays["failed"]


def _p95(r: RunResult, kind: str) -> float:
    """p95 in minutes of one kind of backup: ``completed``, ``failed`` (scheduled), ``manual``, or
    ``scheduled`` (completed and failed together)."""
    values = _scheduled(r) if kind == "scheduled" else r.delays[kind]
    return _quantile(values, 0.95) / 60


def check_targets(results: Sequence[RunResult], budget: int) -> list[str]:
    """The issues' targets, each line PASS or FAIL (a size the run did not include is left out), then
    how the planner compares with the baselines and with the figures before issue 9 (INFO)."""
    by = {(r.poller, r.addons): r for r in results}
    lines = []
    for r in results:
        ok = r.rate_limited == 0 and r.max_in_hour <= budget
        lines.append(
            f"{'PASS' if ok else 'FAIL'}  {r.poller} {r.addons}: {r.rate_limited} 429s, "
            f"max {r.max_in_hour} requests in a rolling hour (budget {budget})"
        )
    for r in results:
        if r.poller == "planner":
            ratio = r.warmup_hours / r.floor_hours
            lines.append(
                f"{'PASS' if ratio <= WARMUP_TARGET else 'FAIL'}  warm-up at {r.addons} addons (every "
                f"addon's backups read once): {r.warmup_hours:.2f} h, {ratio:.2f}x its floor of "
                f"{r.floor_hours:.2f} h (target <= {WARMUP_TARGET:g}x)"
            )
    for size, limit in P95_TARGETS.items():
        planner = by.get(("planner", size))
        if planner is None:
            continue
        p95 = _p95(planner, "scheduled")
        lines.append(
            f"{'PASS' if p95 <= limit else 'FAIL'}  p95 detection of scheduled backups (completed and "
            f"failed) at {size} addons: {p95:.1f} min (target <= {limit:g}; completed alone "
            f"{_p95(planner, 'completed'):.1f}, failed alone {_p95(planner, 'failed'):.1f})"
        )
    planner = by.get(("planner", 500))
    naive = by.get(("naive", 500))
    if planner is not None and naive is not None:
        ratio = _p95(naive, "scheduled") / _p95(planner, "scheduled")
        lines.append(
            f"{'PASS' if ratio >= 5 else 'FAIL'}  p95 of scheduled backups at 500 addons vs the naive "
            f"baseline: {ratio:.1f}x better (target >= 5x)"
        )
    if planner is not None:
        rpe = planner.requests_per_event
        lines.append(
            f"{'PASS' if rpe <= 3 else 'FAIL'}  backup-listing requests per detected event at 500 addons: "
            f"{rpe:.2f} (target <= 3)"
        )
    for size in sorted({r.addons for r in results}):
        planner = by.get(("planner", size))
        if planner is None:
            continue
        before = BEFORE_P95.get(size)
        if before is not None:
            manual = _p95(planner, "manual")
            lines.append(
                f"{'PASS' if manual <= 1.05 * before['manual'] else 'FAIL'}  p95 of manual backups "
                f"(unscheduled addons) at {size} addons: {manual:.1f} min, before issue 9 "
                f"{before['manual']:.1f} (target: no worse, within 5%)"
            )
            lines.append(
                f"INFO  p95 at {size} addons before issue 9 (min): scheduled {before['scheduled']:.1f}, "
                f"completed {before['completed']:.1f}, failed {before['failed']:.1f}; now "
                f"{_p95(planner, 'scheduled'):.1f}, {_p95(planner, 'completed'):.1f}, "
                f"{_p95(planner, 'failed'):.1f}"
            )
        for baseline in BASELINES:
            other = by.get((baseline, size))
            if other is None:
                continue
            lines.append(
                f"INFO  p95 of scheduled backups at {size} addons: planner {_p95(planner, 'scheduled'):.1f} "
                f"min, {baseline} {_p95(other, 'scheduled'):.1f} min: "
                f"{_p95(other, 'scheduled') / _p95(planner, 'scheduled'):.1f}x; warm-up "
                f"{planner.warmup_hours:.2f} h vs {other.warmup_hours:.2f} h"
            )
    return lines


def _run(job: tuple[int, str, float, int]) -> RunResult:
    return run_one(*job)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours per run (default 48)")
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="fleet sizes, comma-separated (default 10,100,500,1000)",
    )
    parser.add_argument("--quick", action="store_true", help="12 simulated hours instead of --hours")
    parser.add_argument("--budget", type=int, default=BUDGET, help="the exporter's request budget per hour")
    parser.add_argument(
        "--baseline",
        choices=(*BASELINES, "both", "none"),
        default="both",
        help="naive: every addon's three listings round-robin; naive-backups: backups only; both "
        "(default): the two in the same run",
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel runs")
    args = parser.parse_args(argv)
    hours = 12.0 if args.quick else args.hours
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    baselines = {"both": list(BASELINES), "none": []}.get(args.baseline, [args.baseline])
    pollers = ["planner", *baselines]
    # Biggest first, so that the parallel runs end together.
    jobs = sorted(((n, p, hours, args.budget) for n in sizes for p in pollers), key=lambda j: -j[0])
    began = time.perf_counter()
    print(
        f"freshness: {hours:g} simulated hours per run, reference fleet seed {FLEET_SEED}, API limit "
        f"{API_RATE_LIMIT}/h, budget {args.budget}/h, {len(jobs)} runs on {args.jobs} processes",
        flush=True,
    )
    results = run_jobs(_run, jobs, args.jobs)
    results.sort(key=lambda r: (r.addons, pollers.index(r.poller)))
    print("delays in minutes; req/event counts backup-listing requests per detected backup event")
    print(HEADER)
    for r in results:
        print(format_row(r))
    print()
    for r in results:
        if r.tiers:
            shares = ", ".join(f"{tier} {rate:.0f}" for tier, rate in r.tiers.items())
            print(f"planner refreshes per hour at {r.addons} addons: {shares}")
    print()
    for line in check_targets(results, args.budget):
        print(line)
    cpu = sum(r.wall_seconds for r in results)
    simulated = sum(r.simulator_seconds for r in results)
    print(
        f"\n{len(results)} runs in {time.perf_counter() - began:.0f}s wall ({cpu:.0f}s of run time, "
        f"{100 * simulated / cpu:.0f}% of it inside the simulator's app)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

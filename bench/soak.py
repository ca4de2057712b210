"""Soak: thousands of refresh cycles with random faults; memory, tasks and caches must stay flat.

    .venv/bin/python bench/soak.py [--cycles 5000] [--every 250] [--scenario reference --addons 2]
                                   [--seed 1] [--interval 300] [--warmup 0] [--json rows.json]

The exporter is wired as ``exporter.app.Exporter`` wires it (client with the request budget as its gate,
Refresher, snapshot store, renderer, registry), minus the HTTP server, and talks to the in-process
simulator through ``Simulator.transport()``: no sockets. Everything runs on a virtual-time event loop
(:mod:`exporter.virtual_time`), so retries' backoff, Retry-After waits, request deadlines and rate-limit
holds cost no wall time, and the simulator and the exporter share that clock.

One cycle: maybe start or end a fault episode (seeded), one complete refresh pass
(:func:`complete_pass`), /metrics rendered as the server renders it, then ``--interval`` virtual
seconds of quiet. Episodes last 1-4 cycles and are one of: an injected simulator fault of any kind the
simulator knows (statuses 403/404/429/5xx with JSON, HTML or empty bodies and various Retry-After values;
a hang, cut by the client's 10 s deadline in virtual time; a reset mid-body; invalid JSON; a wrong shape;
null data; a missing field; an unknown enum; a null object; a non-numeric size; a bad timestamp; a page
over the body cap; a repeating cursor; hasNextPage without a cursor), on a random route and sometimes
one addon only; a revoked token; the API unreachable (connection refused); an addon deleted.

Every ``--every`` cycles a row: resident memory (VmRSS, after a full collection and glibc's
malloc_trim), tracemalloc current and peak (the peak since the previous row), asyncio tasks,
objects tracked by the garbage collector, and the sizes of the internal caches. The verdict compares the
mean of the first quarter of the rows with the last quarter's (see ``TOLERANCES``) and exits 1 if
anything grew; it then also prints where tracemalloc saw memory grow.

The simulator's request log grows with every request by design (tests read it): it is emptied every
cycle, so that what is measured is the exporter. The simulator also caches 256 computed backup
histories, and the registry gains series as new (resource, reason) and (endpoint, code) label sets
first occur: both are bounded, so they are shown but not judged (see ``JUDGED_CACHES``). tracemalloc
makes the run about five times slower; the default fleet (2 addons, 1 destination: ~10 listings a pass)
keeps 5000 cycles to about 7 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import json
import logging
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

# The suites' complete pass (tests.support), from the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.app import Exporter
from exporter.config import Settings
from exporter.northflank import routes
from exporter.poller import Refresher, WithoutMetrics
from exporter.simulator.app import IN_PROCESS_URL, Simulator
from exporter.simulator.faults import FaultKind
from exporter.virtual_time import VirtualClock, run_virtual
from tests.support import complete_pass

EPOCH = 1_795_000_000.0 - (1_795_000_000.0 % 86400) + 12 * 3600
TOKEN = "soak-token"  # noqa: S105 - the simulator's, not a secret

#: name -> (absolute tolerance, relative tolerance): flat when last-quarter mean - first-quarter mean is
#: at most max(absolute, relative * first-quarter mean).
TOLERANCES: Mapping[str, tuple[float, float]] = {
    "rss_mib": (4.0, 0.05),
    "traced_kib": (256.0, 0.05),
    "tasks": (0.0, 0.0),
    "gc_objects": (1000.0, 0.01),
}
#: Caches that must not grow (max over the last quarter of rows within 10% + 5 of the first quarter's).
#: Shown but not judged, being bounded by construction: ``budget_log`` (the request times of the rolling
#: hour, at most the budget), ``series`` (the registry's samples: label sets seen for the first time late
#: in the run are bounded by resources x reasons and endpoints x codes), ``sim_cache`` (the simulator's
#: own cache of backup histories, at most 256).
JUDGED_CACHES = ("renderer", "faultlog", "addons")

log = logging.getLogger("soak")


# -- the API's failures --------------------------------------------------------------------------------


class Unplugged(httpx.AsyncBaseTransport):
    """The simulator's transport, with a switch that makes every request fail to connect."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Episode:
    name: str
    cycles_left: int
    end: Callable[[], None]


@dataclass
class Chaos:
    """Starts and ends fault episodes from a seeded generator."""

    simulator: Simulator
    transport: Unplugged
    rng: random.Random
    probability: float = 0.5
    current: Episode | None = None
    started: Counter[str] = field(default_factory=Counter)

    def step(self) -> None:
        if self.current is not None:
            self.current.cycles_left -= 1
            if self.current.cycles_left > 0:
                return
            self.current.end()
            self.current = None
        if self.rng.random() < self.probability:
            self.current = self._start()
            self.started[self.current.name] += 1

    def _start(self) -> Episode:
        sim, rng = self.simulator, self.rng
        cycles = rng.randint(1, 4)
        roll = rng.random()
        if roll < 0.05:
            sim.revoke_token()
            return Episode("token revoked", cycles, lambda: sim.set_token(TOKEN))
        if roll < 0.10:
            self.transport.down = True
            return Episode("connection refused", cycles, self._plug)
        if roll < 0.15:
            addon = rng.choice(sim.fleet.addons)
            sim.remove_addon(addon.id)
            return Episode("addon removed", cycles, lambda: sim.restore_addon(addon.id))
        kind = rng.choice([k for k in FaultKind])
        route: str | None = rng.choice([*routes.ROUTES, None])
        params: dict[str, str] = {}
        if route is not None and "{addonId}" in route and rng.random() < 0.5:
            params["addonId"] = rng.choice(sim.fleet.addons).id
        options: dict[str, Any] = {}
        name = kind.value
        if kind is FaultKind.STATUS:
            options["status"] = rng.choice([403, 404, 429, 500, 502, 503])
            options["body"] = rng.choice(["json", "html", "empty"])
            if options["status"] == 429:
                options["retry_after"] = rng.choice([None, 0, 1, 30, 3600])
            name = f"status {options['status']} {options['body']}"
        elif kind is FaultKind.HUGE_PAGE:
            options["size"] = 5 * 1024 * 1024  # over the client's 4 MiB cap; less churn than 10 MiB
        times = rng.choice([None, 1, 2, 3])
        fault = sim.inject(kind, route, params=params, times=times, **options)
        return Episode(name, cycles, lambda: self._remove(fault.id))

    def _plug(self) -> None:
        self.transport.down = False

    def _remove(self, fault_id: int) -> None:
        self.simulator.faults.remove(fault_id)


# -- measurements --------------------------------------------------------------------------------------


def _malloc_trim() -> Callable[[], object]:
    """glibc's malloc_trim(0): hands the heap's free pages back to the system, so that resident memory
    measures what is in use rather than the high-water mark of one large allocation (a 5 MiB page
    built by the in-process simulator raises it once for good). A no-op elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


MALLOC_TRIM = _malloc_trim()


def rss_mib() -> float:
    """Resident memory (VmRSS), after a full collection and malloc_trim."""
    gc.collect()
    MALLOC_TRIM()
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Driven(WithoutMetrics):
    """A RefreshScheduler that is never run: the soak calls the refresher itself."""

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None:
        raise AssertionError("the soak drives the refresher itself")


class CountingHandler(logging.Handler):
    """Counts the exporter's log lines by level (they are not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1


def caches(exporter: Exporter, simulator: Simulator) -> dict[str, int]:
    """Sizes of what the exporter (and the simulator) keep between cycles."""

    def size(obj: object, *path: str) -> int:
        # Private attributes, read on purpose: a cache that grows is what a soak exists to see. A renamed
        # one must stop the soak, not read as a small number that passes every bound.
        owner = type(obj).__name__
        for name in path:
            if not hasattr(obj, name):
                raise AttributeError(
                    f"soak: {owner}.{'.'.join(path)} is gone ({type(obj).__name__} has no {name!r}); "
                    "update bench/soak.py caches() to the new name"
                )
            obj = getattr(obj, name)
        if not isinstance(obj, Sized):
            raise TypeError(f"soak: {owner}.{'.'.join(path)} is a {type(obj).__name__}, not a sized cache")
        return len(obj)

    refresher, registry = exporter.refresher, exporter.registry
    return {
        "renderer": size(exporter.renderer, "_cache"),
        "faultlog": size(refresher, "_faults", "_last_logged"),
        "budget_log": size(exporter.budget, "_sent"),
        "series": sum(len(m.samples) for m in registry.collect()),
        "addons": len(exporter.store.current.addons),
        "sim_cache": size(simulator, "_backup_cache"),
    }


@dataclass(frozen=True)
class Row:
    cycle: int
    virtual_days: float
    rss_mib: float
    traced_kib: float
    peak_kib: float
    tasks: int
    gc_objects: int
    caches: Mapping[str, int]


def measure(cycle: int, days: float, exporter: Exporter, simulator: Simulator) -> Row:
    rss = rss_mib()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    return Row(
        cycle=cycle,
        virtual_days=days,
        rss_mib=rss,
        traced_kib=current / 1024,
        peak_kib=peak / 1024,
        tasks=len(asyncio.all_tasks()),
        gc_objects=len(gc.get_objects()),
        caches=caches(exporter, simulator),
    )


def print_row(row: Row, *, header: bool) -> None:
    names = list(row.caches)
    if header:
        columns = ["cycle", "days", "RSS MiB", "traced KiB", "peak KiB", "tasks", "gc objects", *names]
        print(" ".join(f"{c:>11}" for c in columns))
    values = [
        f"{row.cycle:>11}",
        f"{row.virtual_days:>11.1f}",
        f"{row.rss_mib:>11.1f}",
        f"{row.traced_kib:>11.0f}",
        f"{row.peak_kib:>11.0f}",
        f"{row.tasks:>11}",
        f"{row.gc_objects:>11}",
        *(f"{row.caches[n]:>11}" for n in names),
    ]
    print(" ".join(values), flush=True)


@dataclass(frozen=True)
class Judgement:
    name: str
    first: float
    last: float
    allowed: float

    @property
    def flat(self) -> bool:
        return self.last - self.first <= self.allowed

    def __str__(self) -> str:
        growth = self.last - self.first
        return (
            f"  {self.name:<19} {self.first:>12.1f} -> {self.last:>12.1f}  growth {growth:>+10.1f}"
            f"  (allowed {self.allowed:.1f})  {'flat' if self.flat else 'GREW'}"
        )


QUANTITIES: Mapping[str, Callable[[Row], float]] = {
    "rss_mib": lambda r: r.rss_mib,
    "traced_kib": lambda r: r.traced_kib,
    "tasks": lambda r: r.tasks,
    "gc_objects": lambda r: r.gc_objects,
}


def judge(rows: Sequence[Row]) -> list[Judgement]:
    """First quarter of the rows against the last: means of the measured quantities, maxima of the
    caches that must stay bounded."""
    quarter = max(1, len(rows) // 4)
    first, last = rows[:quarter], rows[-quarter:]
    judgements = []
    for name, read in QUANTITIES.items():
        before, after = statistics.fmean(map(read, first)), statistics.fmean(map(read, last))
        absolute, relative = TOLERANCES[name]
        judgements.append(Judgement(name, before, after, max(absolute, relative * before)))
    for name in JUDGED_CACHES:
        before_max = max(r.caches[name] for r in first)
        after_max = max(r.caches[name] for r in last)
        judgements.append(Judgement(f"cache {name} (max)", before_max, after_max, 0.1 * before_max + 5))
    return judgements


# -- the run -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    cycles: int = 5000
    every: int = 250
    scenario: str = "reference"
    addons: int | None = 2
    seed: int = 1
    interval: float = 300.0
    #: cycles before the first row (the simulator's caches and the registry's label sets fill up)
    warmup: int = 0
    #: print the table while running
    verbose: bool = False


@dataclass
class Result:
    rows: list[Row]
    judgements: list[Judgement]
    episodes: Counter[str]
    logs: Counter[str]
    #: northflank_exporter_refresh_errors_total at the end, summed by reason
    errors: Counter[str]
    requests: int
    wall_seconds: float
    #: where tracemalloc saw the most memory retained since the end of the first quarter
    growth_sites: list[str]

    @property
    def grew(self) -> list[str]:
        return [j.name for j in self.judgements if not j.flat]

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "judgements": [{**asdict(j), "flat": j.flat} for j in self.judgements],
            "episodes": dict(self.episodes),
            "logs": dict(self.logs),
            "errors": dict(self.errors),
            "requests": self.requests,
            "wall_seconds": self.wall_seconds,
        }


async def soak(clock: VirtualClock, options: Options, logs: Counter[str]) -> Result:
    simulator = Simulator.from_scenario(
        options.scenario, clock=clock, seed=options.seed, n_addons=options.addons, token=TOKEN
    )
    transport = Unplugged(simulator.transport())
    exporter = Exporter(
        Settings(api_url=IN_PROCESS_URL, token=SecretStr(TOKEN)),
        clock=clock,
        transport=transport,
        scheduler=_Driven(),
    )
    chaos = Chaos(simulator, transport, random.Random(options.seed))
    rows: list[Row] = []
    requests = 0
    started = time.perf_counter()
    quarter_mark: tracemalloc.Snapshot | None = None
    for cycle in range(1, options.cycles + 1):
        chaos.step()
        await complete_pass(exporter.refresher)
        text = exporter.render_metrics()
        if TOKEN.encode() in text:
            raise AssertionError("the token is in /metrics")
        requests += len(simulator.request_log)
        simulator.request_log.clear()
        await asyncio.sleep(options.interval)
        if cycle > options.warmup and (cycle - options.warmup) % options.every == 0:
            rows.append(measure(cycle, (clock.now() - EPOCH) / 86400, exporter, simulator))
            if options.verbose:
                print_row(rows[-1], header=len(rows) == 1)
            if len(rows) == max(1, (options.cycles - options.warmup) // options.every // 4):
                quarter_mark = tracemalloc.take_snapshot()
    await exporter.client.aclose()
    errors: Counter[str] = Counter()
    for metric in exporter.registry.collect():
        for sample in metric.samples:
            if sample.name == "northflank_exporter_refresh_errors_total":
                errors[sample.labels["reason"]] += int(sample.value)
    sites: list[str] = []
    if quarter_mark is not None:
        retained = tracemalloc.take_snapshot().compare_to(quarter_mark, "lineno")
        sites = [str(stat) for stat in retained[:8]]
    return Result(
        rows=rows,
        judgements=judge(rows) if rows else [],
        episodes=chaos.started,
        logs=logs,
        errors=errors,
        requests=requests,
        wall_seconds=time.perf_counter() - started,
        growth_sites=sites,
    )


def run(options: Options) -> Result:
    """The whole soak on a fresh virtual-time loop, with tracemalloc on and the log lines counted."""
    handler = CountingHandler()
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    tracemalloc.start()
    try:
        return run_virtual(lambda clock: soak(clock, options, handler.counts), epoch=EPOCH)
    finally:
        tracemalloc.stop()
        root.setLevel(saved_level)
        root.handlers[:] = saved_handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    defaults = Options()
    parser.add_argument("--cycles", type=int, default=defaults.cycles)
    parser.add_argument("--every", type=int, default=defaults.every, help="cycles between rows")
    parser.add_argument("--scenario", default=defaults.scenario, help="the simulator's scenario")
    parser.add_argument("--addons", type=int, default=defaults.addons, help="size of the reference one")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--interval", type=float, default=defaults.interval, help="virtual s between passes")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="cycles before the first row")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and verdict here")
    args = parser.parse_args(argv)
    options = Options(
        args.cycles,
        args.every,
        args.scenario,
        args.addons,
        args.seed,
        args.interval,
        args.warmup,
        verbose=True,
    )
    size = f" ({options.addons} addons)" if options.scenario == "reference" else ""
    print(
        f"soak: {options.cycles} refresh passes over the {options.scenario!r} scenario{size}, seed "
        f"{options.seed}, {options.interval:g} virtual seconds apart, random fault episodes\n"
    )
    result = run(options)
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_json(), indent=1), encoding="utf-8")
    if not result.rows:
        print("no rows: --cycles must be at least --warmup + --every")
        return 2
    quarter = max(1, len(result.rows) // 4)
    print(f"\nverdict: the first {quarter} rows against the last {quarter}")
    for judgement in result.judgements:
        print(judgement)
    first, last = result.rows[0], result.rows[-1]
    print(
        f"\nstart -> end: RSS {first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB, traced "
        f"{first.traced_kib:.0f} -> {last.traced_kib:.0f} KiB, tasks {first.tasks} -> {last.tasks}, "
        f"gc objects {first.gc_objects} -> {last.gc_objects}"
    )
    print(
        f"{result.requests} API requests, {last.virtual_days:.1f} virtual days, "
        f"{result.wall_seconds:.0f} s of wall time"
    )
    print("fault episodes:", ", ".join(f"{k} {v}" for k, v in sorted(result.episodes.items())))
    print("refresh errors by reason:", ", ".join(f"{k} {v}" for k, v in sorted(result.errors.items())))
    print("exporter log lines:", ", ".join(f"{k} {v}" for k, v in sorted(result.logs.items())))
    if result.grew:
        print("\nGREW:", ", ".join(result.grew))
        print("where tracemalloc saw memory retained since the end of the first quarter:")
        for site in result.growth_sites:
            print("  ", site)
        return 1
    print("\nflat: nothing grew beyond its tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())

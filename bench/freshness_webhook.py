"""Freshness with Northflank's notification webhook: bench/freshness.py's webhook mode.

    .venv/bin/python bench/freshness_webhook.py                  # 100, 500, 1000 addons, 48 simulated hours
    .venv/bin/python bench/freshness_webhook.py --quick          # 12 simulated hours
    .venv/bin/python bench/freshness_webhook.py --sizes 1000 --hours 24

The same fleets, seeds, budget (500/h), virtual-time loop and figures as ``bench/freshness.py`` (its
functions are reused: the detection delay is from a backup's ``completedAt`` to the first successful read
of its addon's listing, i.e. when ``/metrics`` shows it). The simulator delivers its backup events (start,
success, failure; :mod:`exporter.simulator.webhooks`) to the exporter's webhook app in-process, and the
exporter's planner takes them as hints. Three pollers per size:

- ``planner``: polling alone (no webhook), the baseline;
- ``webhook``: every delivery arrives once;
- ``webhook-lossy``: 20% of deliveries lost, 5% duplicated.

Targets (issue 9): p95 <= 30 s at 100/500/1000 addons with the webhook; <= 1.2 backup-listing requests
per backup event at 1000 addons; with 20% lost and 5% duplicated, p95 no worse than polling alone.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from freshness import (
    API_RATE_LIMIT,
    BUDGET,
    EPOCH,
    FLEET_SEED,
    HOUR,
    SIMULATOR_SEED,
    TAIL,
    RecordingRefresher,
    RunResult,
    TimedApp,
    _events,
    _minutes,
    _quantile,
    run_one,
    warmup_floor,
)

from exporter.app import Exporter
from exporter.config import ListenAddress, Settings
from exporter.planner import Planner
from exporter.simulator.app import DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from exporter.simulator.reference_fleet import reference
from exporter.simulator.routes import BACKUPS
from exporter.simulator.webhooks import WebhookOptions, WebhookSender
from exporter.virtual_time import VirtualClock, run_virtual
from exporter.web.webhook import WEBHOOK_PATH, WebhookSecret, create_webhook_app

SIZES = (100, 500, 1000)
SECRET = "bench-webhook-secret"  # noqa: S105 - the benchmark's own, not a secret
LOSSY = (0.20, 0.05)
WEBHOOK_P95_TARGET = 30.0
REQUESTS_PER_EVENT_TARGET = 1.2


@dataclass
class WebhookRun:
    result: RunResult
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    hinted_reads: int = 0


def run_webhook(addons: int, poller: str, hours: float, budget: int = BUDGET) -> WebhookRun:
    """One run of the exporter with its webhook fed by the simulator (``poller``: webhook or
    webhook-lossy); measured as bench/freshness.py measures its runs."""
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]
    started_wall = time.perf_counter()
    fleet = reference(addons, seed=FLEET_SEED)
    lost, duplicated = LOSSY if poller == "webhook-lossy" else (0.0, 0.0)

    async def main(clock: VirtualClock) -> WebhookRun:
        simulator = Simulator(fleet, clock=clock, seed=SIMULATOR_SEED, rate_limit=API_RATE_LIMIT)
        settings = Settings(
            listen_address=ListenAddress("127.0.0.1", 0),
            api_url=IN_PROCESS_URL,
            token=SecretStr(DEFAULT_TOKEN),
            request_budget=budget,
            webhook_listen_address=ListenAddress("127.0.0.1", 0),
            webhook_secret=WebhookSecret(SECRET.encode()),
        )
        timed = TimedApp(simulator.app)
        exporter = Exporter(settings, clock=clock, transport=httpx.ASGITransport(app=timed))
        assert exporter.webhook is not None
        assert isinstance(exporter.scheduler, Planner)
        hook = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_webhook_app(exporter.webhook)), base_url="http://webhook"
        )
        sender = WebhookSender(
            simulator,
            WebhookOptions(url=WEBHOOK_PATH, secret=SECRET, lost=lost, duplicated=duplicated),
            client=hook,
        )
        refresher = RecordingRefresher(exporter, clock)
        keys = [(a.project_id, a.id) for a in fleet.addons]
        stop = asyncio.Event()
        start = clock.now()
        polling = asyncio.create_task(exporter.scheduler.run(refresher, stop))
        pushing = asyncio.create_task(sender.run(stop))
        ready_at: float | None = None
        end = start + hours * HOUR
        while clock.now() < end:
            await asyncio.sleep(60)
            if ready_at is None and exporter.store.current.ready:
                ready_at = clock.now()
        stop.set()
        polling.cancel()
        pushing.cancel()
        await asyncio.gather(polling, pushing, return_exceptions=True)
        await exporter.client.aclose()
        await hook.aclose()

        firsts = [refresher.reads[key][0] if refresher.reads.get(key) else math.inf for key in keys]
        warm_at = max(firsts, default=start)
        schedules = [refresher.schedules_known.get(key, math.inf) for key in keys]
        settled_at = max([warm_at, *schedules])
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
        result = RunResult(
            poller=poller,
            addons=addons,
            hours=hours,
            warmup_hours=(warm_at - start) / HOUR,
            floor_hours=warmup_floor(fleet, budget),
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
            tiers={tier.label: count / hours for tier, count in exporter.scheduler.started().items()},
            simulator_seconds=timed.seconds,
        )
        return WebhookRun(
            result,
            sent=sender.log.sent,
            lost=sender.log.lost,
            duplicated=sender.log.duplicated,
            hinted_reads=exporter.scheduler.hinted_reads,
        )

    run = run_virtual(main, epoch=EPOCH)
    run.result.wall_seconds = time.perf_counter() - started_wall
    return run


def _job(job: tuple[int, str, float, int]) -> WebhookRun:
    addons, poller, hours, budget = job
    if poller == "planner":
        return WebhookRun(run_one(addons, "planner", hours, budget))
    return run_webhook(addons, poller, hours, budget)


def _all(r: RunResult) -> list[float]:
    return r.delays["completed"] + r.delays["failed"] + r.delays["manual"]


def _seconds(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{_quantile(values, 0.5):.0f}/{_quantile(values, 0.95):.0f}/{max(values):.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=48.0)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="12 simulated hours instead of --hours")
    parser.add_argument("--budget", type=int, default=BUDGET)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--pollers",
        default="planner,webhook,webhook-lossy",
        help="planner (polling alone), webhook, webhook-lossy",
    )
    args = parser.parse_args(argv)
    hours = 12.0 if args.quick else args.hours
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    pollers = ["planner", "webhook", "webhook-lossy"]
    chosen = [p for p in pollers if p in args.pollers.split(",")]
    jobs = sorted(((n, p, hours, args.budget) for n in sizes for p in chosen), key=lambda j: -j[0])
    print(
        f"freshness (webhook): {hours:g} simulated hours per run, reference fleet seed {FLEET_SEED}, API "
        f"limit {API_RATE_LIMIT}/h, budget {args.budget}/h; webhook-lossy: {LOSSY[0]:.0%} of deliveries "
        f"lost, {LOSSY[1]:.0%} duplicated",
        flush=True,
    )
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(_job, jobs))
    else:
        runs = [_job(job) for job in jobs]
    runs.sort(key=lambda w: (w.result.addons, pollers.index(w.result.poller)))
    print(
        f"{'poller':<15}{'addons':>7}{'max/h':>7}{'429s':>6}{'events/h':>9}{'req/event':>10}"
        f"{'webhook reads':>14}{'sent/lost/dup':>16}  {'all (s) p50/p95/max':<22}"
        f"{'completed (min)':<24}{'failed (min)':<22}{'manual (min)':<22}{'undet.':>7}{'run s':>7}"
    )
    for w in runs:
        r = w.result
        print(
            f"{r.poller:<15}{r.addons:>7}{r.max_in_hour:>7}{r.rate_limited:>6}{r.events_per_hour:>9.1f}"
            f"{r.requests_per_event:>10.2f}{w.hinted_reads:>14}{f'{w.sent}/{w.lost}/{w.duplicated}':>16}  "
            f"{_seconds(_all(r)):<22}{_minutes(r.delays['completed']):<24}{_minutes(r.delays['failed']):<22}"
            f"{_minutes(r.delays['manual']):<22}{r.undetected:>7}{r.wall_seconds:>7.0f}"
        )
    print()
    by = {(w.result.poller, w.result.addons): w.result for w in runs}
    for size in sizes:
        polling, hook, lossy = (by.get((p, size)) for p in pollers)
        if hook is not None:
            p95 = _quantile(_all(hook), 0.95)
            print(
                f"{'PASS' if p95 <= WEBHOOK_P95_TARGET else 'FAIL'}  webhook p95 at {size} addons (all "
                f"backups, completedAt to /metrics): {p95:.0f} s (target <= {WEBHOOK_P95_TARGET:g} s)"
            )
            ok = hook.rate_limited == 0 and hook.max_in_hour <= args.budget
            print(
                f"{'PASS' if ok else 'FAIL'}  webhook at {size} addons: {hook.rate_limited} 429s, max "
                f"{hook.max_in_hour} requests in a rolling hour (budget {args.budget})"
            )
        if hook is not None and size == 1000:
            rpe = hook.requests_per_event
            print(
                f"{'PASS' if rpe <= REQUESTS_PER_EVENT_TARGET else 'FAIL'}  backup-listing requests per "
                f"backup event at 1000 addons: {rpe:.2f} (target <= {REQUESTS_PER_EVENT_TARGET:g})"
            )
        if lossy is not None and polling is not None:
            ours, theirs = _quantile(_all(lossy), 0.95), _quantile(_all(polling), 0.95)
            print(
                f"{'PASS' if ours <= theirs else 'FAIL'}  p95 at {size} addons with {LOSSY[0]:.0%} lost and "
                f"{LOSSY[1]:.0%} duplicated deliveries: {ours / 60:.1f} min vs polling alone "
                f"{theirs / 60:.1f} min"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from freshness import (
    API_RATE_LIMIT,
    BUDGET,
    EPOCH,
    FLEET_SEED,
    HOUR,
    Rig,
    RunResult,
    _minutes,
    _quantile,
    in_process_settings,
    measure,
    run_jobs,
    run_one,
    watch_ready,
)

from exporter.config import ListenAddress
from exporter.planner import Planner
from exporter.simulator.reference_fleet import reference
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
        settings = in_process_settings(
            budget,
            webhook_listen_address=ListenAddress("127.0.0.1", 0),
            webhook_secret=WebhookSecret(SECRET.encode()),
        )
        rig = Rig.build(fleet, clock, settings)
        simulator, exporter = rig.simulator, rig.exporter
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
        stop = asyncio.Event()
        start = clock.now()
        polling = asyncio.create_task(exporter.scheduler.run(rig.refresher, stop))
        pushing = asyncio.create_task(sender.run(stop))
        ready_at = await watch_ready(clock, exporter, start + hours * HOUR)
        stop.set()
        polling.cancel()
        pushing.cancel()
        await asyncio.gather(polling, pushing, return_exceptions=True)
        await exporter.client.aclose()
        await hook.aclose()

        result = measure(rig, poller, addons, hours, budget, start, ready_at, reads_schedules=True)
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
    runs = run_jobs(_job, jobs, args.jobs)
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

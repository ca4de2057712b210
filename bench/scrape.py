"""Scrape cost as a user sees it: HTTP scrapes of /metrics with gzip, against a real uvicorn server on
127.0.0.1, for fleets of 100, 1000 and 5000 addons (100 retained backups each), in the same run:

- before: the exporter with its scrape cache switched off (render and gzip at every scrape, on the loop:
  the /metrics route before the cache);
- after: the exporter as shipped (``exporter/web/scrape_cache.py``);
- prometheus_client: the same series (the exporter's whole page, parsed once) served by prometheus_client's
  own ASGI app (``make_asgi_app``, gzip included) from a collector that yields them ready-made: the cheapest
  a prometheus_client exporter can serve them.

    .venv/bin/python bench/scrape.py [--sizes 100,1000,5000] [--concurrency 1,10,50] [--seconds 3]

Each server is a process of its own (forked from one that built the fleet once), so its resident memory is
its own; the exporters' planners know every addon (as after their first reads), so the page has the
planner's next refresh times too. The client (httpx, ``Accept-Encoding: gzip``) runs in this process, on
the same cores; it reads each body whole but inflates (and checks) one per run only: inflating a
1000-addon page (4 MB of text) costs it 5-10 ms, the scraper's work, not the server's (printed as
``inflate``; a scraper sees latency + inflate). For each server and number of concurrent scrapers: p50
and p95 latency (request sent to the body's last byte), scrapes per second, the server's RSS (median
while scraping, and the peak, reset before each run), failed scrapes (an error status, a timeout, a
broken connection). ``cold``: the first scrape after a new snapshot (one addon's backups read again, as
the poller does), median of 5. ``GET /``: the status page, when the server has one.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from pydantic import SecretStr, TypeAdapter
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from exporter.app import Exporter
from exporter.clock import SystemClock
from exporter.config import ListenAddress, Settings
from exporter.northflank.models import Addon, Backup, Project, Restore, Schedule
from exporter.snapshot import Snapshot, summarize_backups, summarize_restores, summarize_schedules
from exporter.web.server import bind_socket
from exporter.web.serving import Server, UvicornConfig

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BACKUPS_PER_ADDON = 100
ADDONS_PER_PROJECT = 20
_BACKUPS = TypeAdapter(list[Backup])
_STATUSES = ("completed",) * 18 + ("failed",)


def _backups_payload(addon: int) -> list[dict[str, Any]]:
    """What the API returns for one addon: daily backups, one in 19 failed, the newest in progress."""
    items = []
    for day in range(BACKUPS_PER_ADDON):
        created = NOW - timedelta(days=day, hours=9, minutes=addon % 60)
        status = "in-progress" if day == 0 and addon % 7 == 0 else _STATUSES[(addon + day) % len(_STATUSES)]
        item: dict[str, Any] = {
            "id": f"backup-{addon}-{day}",
            "name": f"Daily backup {day}",
            "status": status,
            "createdAt": created.isoformat(),
            "config": {"size": str(50_000_000 + addon * 1000 + day), "source": {"type": "snapshot"}},
            "uid": f"uid-{addon}-{day}",
        }
        if status != "in-progress":
            item["completedAt"] = (created + timedelta(minutes=5 + addon % 20)).isoformat()
        items.append(item)
    return items


def build_snapshot(addons: int) -> Snapshot:
    projects = [
        (None, Project(id=f"project-{p}", name=f"Project {p}"))
        for p in range((addons + ADDONS_PER_PROJECT - 1) // ADDONS_PER_PROJECT)
    ]
    at = NOW.timestamp()
    snapshot = Snapshot().with_projects(projects, at)
    for p, (_, project) in enumerate(projects):
        listed = [
            Addon.model_validate({"id": f"addon-{a}", "name": f"db-{a}", "spec": {"type": "postgresql"}})
            for a in range(p * ADDONS_PER_PROJECT, min(addons, (p + 1) * ADDONS_PER_PROJECT))
        ]
        snapshot = snapshot.with_project_addons(project.id, listed, at)
    schedule = Schedule.model_validate(
        {
            "id": "schedule",
            "backupType": "snapshot",
            "retentionTime": BACKUPS_PER_ADDON,
            "scheduling": {"interval": "daily", "hour": [2], "minute": [30]},
        }
    )
    restores = [
        Restore.model_validate(
            {"id": 1763600000000 + i, "restoreTimestamp": "2026-11-19T10:00:00Z", "status": status}
        )
        for i, status in enumerate(("completed", "failed"))
    ]
    for key in list(snapshot.addons):
        index = int(key[1].removeprefix("addon-"))
        # Parsed from JSON as the client parses it, then summarised and dropped, as the poller does.
        backups = _BACKUPS.validate_python(_backups_payload(index))
        snapshot = snapshot.with_addon_backups(key, summarize_backups(backups, now=at), at)
        snapshot = snapshot.with_addon_schedules(key, summarize_schedules([schedule]), at)
        snapshot = snapshot.with_addon_restores(key, summarize_restores(restores, now=at), at)
    return snapshot.with_ready()


SERVERS = ("before", "after", "prometheus_client")
COLD_SCRAPES = 5
#: A scrape slower than this counts as failed (Prometheus' default scrape timeout is 10 s).
TIMEOUT = 10.0


def _status(pid: int, field: str) -> float:
    """A /proc/<pid>/status memory figure (VmRSS, VmHWM) in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> None:
    """Resets VmHWM to the current RSS (Linux 4.0+), so that a run's peak is its own."""
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")


# -- the servers (forked children of the process that built the fleet) ------------------------------------


def _exporter(snapshot: Snapshot, *, cache: bool) -> Exporter:
    settings = Settings(
        listen_address=ListenAddress("127.0.0.1", 0), api_url="http://127.0.0.1:9", token=SecretStr("bench")
    )
    exporter = Exporter(settings, clock=SystemClock(), scrape_cache=cache)
    exporter.store.restore_state(snapshot)
    _plan_everything(exporter, snapshot)
    return exporter


def _plan_everything(exporter: Exporter, snapshot: Snapshot) -> None:
    """The planner's book as after its first reads (every addon's targets planned), through its internals:
    the bench runs no poller, so that nothing but the bench changes the snapshot."""
    now = time.time()
    try:
        planner: Any = exporter.scheduler
        planner._refresher = exporter.refresher
        planner._book._sync_projects(now)
        for project in snapshot.projects:
            planner._book._sync_addons(project, now)
    except Exception as error:  # the planner changed: the page lacks the next refresh times, said so
        print(f"warning: planner not filled ({type(error).__name__}: {error})", file=sys.stderr)


def _with_touch(exporter: Exporter, snapshot: Snapshot) -> Any:
    """The exporter's app plus POST /bench/touch: one addon's backups read again (a new snapshot)."""
    keys = sorted(k for k, a in snapshot.addons.items() if a.backups is not None)
    touched = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal touched
        if scope["type"] == "http" and scope["path"] == "/bench/touch":
            key = keys[touched % len(keys)]
            touched += 1

            def reread(current: Snapshot) -> Snapshot:
                fetched = current.addons[key].backups
                assert fetched is not None
                return current.with_addon_backups(key, fetched.value, time.time())

            exporter.store.update(reread)
            await PlainTextResponse("touched\n")(scope, receive, send)
            return
        await exporter.app(scope, receive, send)

    return app


class _Ready(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _baseline(snapshot: Snapshot) -> Any:
    """prometheus_client's ASGI app serving the exporter's page (all of it), parsed once."""
    text = _exporter(snapshot, cache=False).render_metrics().decode()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Ready(list(text_string_to_metric_families(text))))
    return make_asgi_app(registry)


def _serve(server: str, snapshot: Snapshot, report: int) -> None:
    async def main() -> None:
        if server == "prometheus_client":
            app = _baseline(snapshot)
        else:
            app = _with_touch(_exporter(snapshot, cache=server == "after"), snapshot)
        gc.collect()
        sock = bind_socket(ListenAddress("127.0.0.1", 0))
        uvicorn = Server(
            UvicornConfig(
                app, http="h11", log_config=None, access_log=False, lifespan="off", timeout_keep_alive=60
            )
        )
        os.write(report, b"%d" % sock.getsockname()[1])
        os.close(report)
        await uvicorn.serve(sockets=[sock])

    asyncio.run(main())


def zygote(addons: int) -> None:
    """Builds the fleet once, forks one server per kind, prints them; stops them when stdin closes."""
    snapshot = build_snapshot(addons)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # the parsed listings, dropped: as in a long-running exporter
    children = []
    for server in SERVERS:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                _serve(server, snapshot, write)
            finally:
                os._exit(0)
        os.close(write)
        port = int(os.read(read, 32))
        os.close(read)
        children.append(pid)
        print(json.dumps({"server": server, "pid": pid, "port": port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


# -- the client ---------------------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _scrape(http: httpx.AsyncClient, url: str) -> tuple[float, bytes] | None:
    """One scrape: the time from sending the request to the last byte of the body, and the body as sent;
    None when it failed."""
    began = time.perf_counter()
    try:
        async with http.stream("GET", url) as response:
            response.raise_for_status()
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            if response.headers.get("content-encoding") != "gzip" or not raw:
                return None
    except httpx.HTTPError:
        return None
    return time.perf_counter() - began, raw


def _inflate_ms(raw: bytes) -> float:
    """What inflating the body costs the client (median of 5), checking it is one whole gzip member."""
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        reader = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = reader.decompress(raw)
        timings.append(time.perf_counter() - began)
        if not (reader.eof and text.startswith(b"# HELP") and not reader.unused_data):
            raise RuntimeError("the body is not one complete gzip member of an exposition")
    return statistics.median(timings) * 1000


async def _run(url: str, pid: int, concurrency: int, seconds: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits, headers={"Accept-Encoding": "gzip"}) as http:
        # The page rendered, the connection open (a warm run), and the body checked once.
        # (A fresh server's first page of a large fleet takes a while: it is not a run's scrape.)
        async with httpx.AsyncClient(timeout=120, headers={"Accept-Encoding": "gzip"}) as patient:
            first = await _scrape(patient, url)
        if first is None:
            raise RuntimeError(f"{url} did not answer a gzip body")
        await _scrape(http, url)
        inflate_ms = _inflate_ms(first[1])
        latencies: list[float] = []
        failed = 0
        rss: list[float] = []
        _reset_peak(pid)
        deadline = time.perf_counter() + seconds

        async def scraper() -> None:
            nonlocal failed
            while time.perf_counter() < deadline:
                scraped = await _scrape(http, url)
                if scraped is None:
                    failed += 1
                else:
                    latencies.append(scraped[0])

        async def sampler() -> None:
            while True:
                rss.append(_status(pid, "VmRSS"))
                await asyncio.sleep(0.05)

        sampling = asyncio.create_task(sampler())
        began = time.perf_counter()
        await asyncio.gather(*(scraper() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        sampling.cancel()
    return {
        "p50_ms": _ms(latencies, 0.5),
        "p95_ms": _ms(latencies, 0.95),
        "per_second": len(latencies) / elapsed,
        "rss_mb": statistics.median(rss) if rss else _status(pid, "VmRSS"),
        "peak_mb": _status(pid, "VmHWM"),
        "failed": failed,
        "scrapes": len(latencies),
        "inflate_ms": inflate_ms,
    }


async def _cold(base: str) -> float:
    timings = []
    async with httpx.AsyncClient(timeout=TIMEOUT, headers={"Accept-Encoding": "gzip"}) as http:
        for _ in range(COLD_SCRAPES):
            (await http.post(f"{base}/bench/touch")).raise_for_status()
            scraped = await _scrape(http, f"{base}/metrics")
            if scraped is not None:
                timings.append(scraped[0])
    return statistics.median(timings) * 1000 if timings else float("nan")


async def _status_page(base: str) -> float | None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        if (await http.get(f"{base}/")).status_code != 200:
            return None
        timings = []
        for _ in range(10):
            began = time.perf_counter()
            (await http.get(f"{base}/")).raise_for_status()
            timings.append(time.perf_counter() - began)
    return statistics.median(timings) * 1000


def _combine(runs: list[dict[str, float]]) -> dict[str, float]:
    """Repeated runs of one configuration: the median of each figure, the highest peak, every failure."""
    combined = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    combined["peak_mb"] = max(run["peak_mb"] for run in runs)
    combined["failed"] = sum(run["failed"] for run in runs)
    return combined


def measure(addons: int, concurrency: list[int], seconds: float, repeat: int) -> dict[str, Any]:
    zygote_process = subprocess.Popen(
        [sys.executable, __file__, "--zygote", str(addons)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote_process.stdin is not None
    assert zygote_process.stdout is not None
    result: dict[str, Any] = {"addons": addons, "servers": {}}
    try:
        servers = {
            server["server"]: server
            for server in (json.loads(zygote_process.stdout.readline()) for _ in SERVERS)
        }
        for name, server in servers.items():
            result["servers"][name] = {"idle_rss_mb": _status(server["pid"], "VmRSS")}
        # The scrape runs first (what the status page or the cold runs leave in memory is not theirs);
        # before and after take turns, so that what else the machine does weighs on both alike.
        for n in concurrency:
            turns: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for attempt in range(repeat):
                for name, server in servers.items():
                    if name == "prometheus_client" and attempt > 0:
                        continue  # seconds a scrape: once is enough to see it
                    url = f"http://127.0.0.1:{server['port']}/metrics"
                    turns[name].append(asyncio.run(_run(url, server["pid"], n, seconds)))
            for name, runs in turns.items():
                result["servers"][name][str(n)] = _combine(runs)
        for name, server in servers.items():
            if name == "prometheus_client":
                continue
            base = f"http://127.0.0.1:{server['port']}"
            result["servers"][name]["cold_ms"] = asyncio.run(_cold(base))
            status = asyncio.run(_status_page(base))
            if status is not None:
                result["servers"][name]["status_page_ms"] = status
    finally:
        zygote_process.stdin.close()
        zygote_process.wait(timeout=60)
    return result


def _print(result: dict[str, Any], concurrency: list[int]) -> None:
    addons = result["addons"]
    for name, runs in result["servers"].items():
        cold = runs.get("cold_ms")
        for n in concurrency:
            run = runs[str(n)]
            print(
                f"{addons:>6} | {name:<17} | {f'{cold:.1f}' if cold is not None else '-':>7} | {n:>4} | "
                f"{run['p50_ms']:>7.1f} | {run['p95_ms']:>7.1f} | {run['per_second']:>9.1f} | "
                f"{run['rss_mb']:>6.0f} | {run['peak_mb']:>6.0f} | {run['failed']:>6} | "
                f"{run['inflate_ms']:>7.1f}"
            )
    servers = result["servers"]
    before, after = servers["before"], servers["after"]
    for n in concurrency:
        ratio = after[str(n)]["per_second"] / before[str(n)]["per_second"]
        print(f"{addons:>6} | after/before, {n} scraper(s): {ratio:.1f}x the scrapes per second")
    if "status_page_ms" in after:
        print(f"status page (GET /) at {addons} addons: {after['status_page_ms']:.1f} ms (median of 10)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=2.0, help="how long each run scrapes")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each exporter (medians printed)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--zygote", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.zygote is not None:
        zygote(args.zygote)
        return
    concurrency = [int(n) for n in args.concurrency.split(",")]
    print(
        f"{BACKUPS_PER_ADDON} retained backups per addon; each run scrapes for {args.seconds:g} s with gzip; "
        f"medians of {args.repeat} runs (prometheus_client: 1)."
    )
    header = (
        f"{'addons':>6} | {'server':<17} | {'cold ms':>7} | {'conc':>4} | {'p50 ms':>7} | {'p95 ms':>7} | "
        f"{'scrapes/s':>9} | {'RSS MB':>6} | {'peak':>6} | {'failed':>6} | {'inflate':>7}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for addons in (int(size) for size in args.sizes.split(",")):
        result = measure(addons, concurrency, args.seconds, args.repeat)
        _print(result, concurrency)
        results.append(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()

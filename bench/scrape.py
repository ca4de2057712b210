"""Scrape cost: time to render /metrics, exposition size and resident memory, for fleets of 100, 1000 and
5000 addons with 100 retained backups each, against the plain approach in the same run.

    .venv/bin/python bench/scrape.py [--sizes 100,1000,5000] [--scrapes 30]

Each measurement runs in a fresh process so that resident memory is that of one fleet only:

- exporter: API payloads for the fleet are parsed by the exporter's models, summarised into a snapshot
  (the raw listings are dropped, as in the poller), and /metrics is rendered by ``SnapshotRenderer``
  plus the instruments' registry, as the server does, with the clock moving 15 s between scrapes;
- plain: the same series registered as prometheus_client ``Gauge`` objects (values set from the
  exporter's own output, so both expose exactly the same samples) and rendered by ``generate_latest``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import TypeAdapter

from exporter.collector import SnapshotRenderer
from exporter.northflank.models import Addon, Backup, Project, Restore, Schedule
from exporter.snapshot import Snapshot, summarize_backups, summarize_restores, summarize_schedules

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


def _rss_bytes(field: str = "VmRSS") -> int:
    """Resident memory now (VmRSS) or at its peak (VmHWM), from /proc."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _median_ms(render: Any, scrapes: int) -> tuple[float, int]:
    timings, size = [], 0
    for i in range(scrapes):
        began = time.perf_counter()
        body = render(i)
        timings.append(time.perf_counter() - began)
        size = len(body)
    return statistics.median(timings) * 1000, size


def _measure_exporter(addons: int, scrapes: int) -> dict[str, float]:
    snapshot = build_snapshot(addons)
    renderer = SnapshotRenderer(schedule_grace_seconds=7200, version="bench")
    instruments = CollectorRegistry(auto_describe=False)
    now = NOW.timestamp()
    gc.collect()
    median, size = _median_ms(
        lambda i: renderer.render(snapshot, now + 15 * i, trailer=generate_latest(instruments)), scrapes
    )
    return {
        "rss_mb": _rss_bytes() / 2**20,
        "peak_mb": _rss_bytes("VmHWM") / 2**20,
        "median_ms": median,
        "bytes": size,
    }


def _plain_registry(addons: int) -> CollectorRegistry:
    """The same samples as the exporter's, as Gauges: what a straightforward exporter would register."""
    text = SnapshotRenderer(schedule_grace_seconds=7200, version="bench").render(
        build_snapshot(addons), NOW.timestamp()
    )
    registry = CollectorRegistry(auto_describe=False)
    for family in text_string_to_metric_families(text.decode()):
        label_names = sorted({name for sample in family.samples for name in sample.labels})
        gauge = Gauge(family.name, family.documentation, label_names, registry=registry)
        for sample in family.samples:
            (gauge.labels(**sample.labels) if label_names else gauge).set(sample.value)
    return registry


def _measure_plain(addons: int, scrapes: int) -> dict[str, float]:
    registry = _plain_registry(addons)
    gc.collect()
    median, size = _median_ms(lambda _: generate_latest(registry), scrapes)
    return {
        "rss_mb": _rss_bytes() / 2**20,
        "peak_mb": _rss_bytes("VmHWM") / 2**20,
        "median_ms": median,
        "bytes": size,
    }


def worker(addons: int, plain: bool, scrapes: int) -> dict[str, float]:
    return _measure_plain(addons, scrapes) if plain else _measure_exporter(addons, scrapes)


def _run_worker(addons: int, plain: bool, scrapes: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", str(addons), "--scrapes", str(scrapes)]
    if plain:
        command.append("--plain")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.plain, args.scrapes)))
        return

    print(
        f"{BACKUPS_PER_ADDON} retained backups per addon; median over {args.scrapes} scrapes (5000: fewer)."
    )
    columns = ("render ms", "exposition", "RSS MB", "peak MB")
    header = f"{'addons':>7} | {'approach':<23} | " + " | ".join(f"{c:>10}" for c in columns)
    print(header)
    print("-" * len(header))
    for addons in (int(size) for size in args.sizes.split(",")):
        scrapes = args.scrapes if addons <= 1000 else max(5, args.scrapes // 6)
        ours = _run_worker(addons, False, scrapes)
        plain = _run_worker(addons, True, max(3, scrapes // 3))
        for name, result in (("SnapshotRenderer", ours), ("Gauge + generate_latest", plain)):
            print(
                f"{addons:>7} | {name:<23} | {result['median_ms']:>10.1f} | "
                f"{result['bytes'] / 2**20:>8.2f}MB | {result['rss_mb']:>10.1f} | {result['peak_mb']:>10.1f}"
            )
        print(f"{'':>7} | {'speed-up':<23} | {plain['median_ms'] / ours['median_ms']:>9.1f}x |")


if __name__ == "__main__":
    main()

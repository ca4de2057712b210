"""Status page cost: time to build the view and render ``/`` (and ``/api/v1/addons``) for fleets of 100,
1000 and 5000 addons, from the same snapshots as bench/scrape.py (100 retained backups per addon).

    .venv/bin/python bench/status_page.py [--sizes 100,1000,5000] [--renders 20]

The target (issue 10): the page renders in at most 50 ms at 1000 addons, the first visit included
(nothing cached: every addon assessed, every schedule's runs judged). The clock moves 15 s between
renders, as between two visits, so nothing is served from a result computed for the same instant. The
machine is shared: compare figures taken in the same minute, e.g. against a copy of the tree before a
change (PYTHONPATH=<copy> .venv/bin/python <copy>/bench/status_page.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scrape import NOW, build_snapshot

from exporter.web.status_cache import RowCache
from exporter.web.status_json import view_json
from exporter.web.status_view import ExporterStatus, build_view
from exporter.web.statuspage import render_status_page

STATUS = ExporterStatus(api_up=True, requests_last_hour=120, request_budget=500, rate_limited_responses=0)


def measure(addons: int, renders: int, colds: int = 5) -> dict[str, float]:
    snapshot = build_snapshot(addons)
    start = NOW.timestamp()
    page_ms, json_ms = [], []
    size = 0
    # First visits: an empty RowCache, so every addon is assessed and every schedule judged. The first
    # one in this process is reported as it is (max), the median over a few at other instants beside it.
    cold: list[float] = []
    for i in range(colds):
        began = time.perf_counter()
        view = build_view(snapshot, now=start - 3600 * i, grace=7200.0, exporter=STATUS, cache=RowCache())
        render_status_page(view, telemetry_path="/metrics")
        cold.append((time.perf_counter() - began) * 1000)
    cache = RowCache()  # as the server keeps it between visits
    build_view(snapshot, now=start, grace=7200.0, exporter=STATUS, cache=cache)
    for i in range(1, renders + 1):
        now = start + 15 * i
        began = time.perf_counter()
        view = build_view(snapshot, now=now, grace=7200.0, exporter=STATUS, cache=cache)
        body = render_status_page(view, telemetry_path="/metrics").encode()
        page_ms.append((time.perf_counter() - began) * 1000)
        size = len(body)
        began = time.perf_counter()
        view = build_view(snapshot, now=now, grace=7200.0, exporter=STATUS, cache=cache)
        json.dumps(view_json(view), ensure_ascii=False).encode()
        json_ms.append((time.perf_counter() - began) * 1000)
    return {
        "addons": addons,
        "page_ms_median": round(statistics.median(page_ms), 1),
        "page_ms_max": round(max(page_ms), 1),
        "json_ms_median": round(statistics.median(json_ms), 1),
        "page_kib": round(size / 1024, 1),
        "cold_ms_median": round(statistics.median(cold), 1),
        "cold_ms_first": round(cold[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--renders", type=int, default=20)
    args = parser.parse_args()
    print(
        f"{'addons':>7} {'page ms (median)':>17} {'page ms (max)':>14} {'json ms':>8} {'page KiB':>9}"
        f" {'first visit ms (median)':>24} {'(first in process)':>19}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.renders)
        print(
            f"{r['addons']:>7} {r['page_ms_median']:>17} {r['page_ms_max']:>14} {r['json_ms_median']:>8} "
            f"{r['page_kib']:>9} {r['cold_ms_median']:>24} {r['cold_ms_first']:>19}"
        )


if __name__ == "__main__":
    main()

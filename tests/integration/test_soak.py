"""A short soak (bench/soak.py) as part of the suite: a few hundred refresh passes with random faults.

It runs in its own process, so that tracemalloc and the task count measure the soak alone. What is
asserted is structural, not timing: after a warm-up (the simulator's history cache and the registry's
label sets fill up), the asyncio tasks stay at their baseline and the memory tracemalloc sees retained
between two checkpoints stays under a generous bound, as do the exporter's caches.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CYCLES, WARMUP, EVERY = 250, 130, 20
#: Memory retained between the first and the last checkpoint, 100 passes apart. Steady state retains
#: ~50 KiB (label sets of the error and request counters seen for the first time); a store that kept
#: every old snapshot (structure-sharing, ~10 KiB a pass here) retained 1.4 MiB over 140 passes when
#: tried, and failed this test.
MAX_RETAINED_KIB = 512
MAX_NEW_GC_OBJECTS = 2000
CACHES = {"renderer", "faultlog", "budget_log", "series", "addons", "sim_cache"}


def test_a_short_soak_keeps_tasks_and_memory_flat(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            f"--cycles={CYCLES}",
            f"--warmup={WARMUP}",
            f"--every={EVERY}",
            f"--json={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), done.stdout + done.stderr
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = result["rows"]
    assert len(rows) == (CYCLES - WARMUP) // EVERY
    first, last = rows[0], rows[-1]

    # Every hang, timeout, retry and cancelled request left no task behind.
    assert {row["tasks"] for row in rows} == {first["tasks"]}, [row["tasks"] for row in rows]
    retained = last["traced_kib"] - first["traced_kib"]
    passes = last["cycle"] - first["cycle"]
    assert retained < MAX_RETAINED_KIB, f"{retained:.0f} KiB retained over {passes} passes"
    assert last["gc_objects"] - first["gc_objects"] < MAX_NEW_GC_OBJECTS
    # The caches hold one entry per addon or per fault class, whatever the number of passes. Each was
    # really measured: a cache the soak cannot find stops it (no JSON above), and an empty one here
    # would mean the soak watches something other than what the exporter fills.
    assert all(set(row["caches"]) == CACHES for row in rows), rows[0]["caches"]
    n_addons = max(row["caches"]["addons"] for row in rows)
    assert n_addons > 0
    assert all(0 < row["caches"]["renderer"] <= n_addons for row in rows)
    assert all(0 <= row["caches"]["faultlog"] <= 7 * 9 for row in rows)  # resources x reasons
    assert any(row["caches"]["faultlog"] > 0 for row in rows)  # faults come and go; some row saw one
    assert all(row["caches"]["series"] > 0 and row["caches"]["sim_cache"] > 0 for row in rows)
    assert all(row["caches"]["budget_log"] > 0 for row in rows)  # requests of the last window
    # The faults really happened: most kinds, each several times.
    assert len(result["episodes"]) >= 10, result["episodes"]
    assert result["logs"].get("ERROR", 0) == 0

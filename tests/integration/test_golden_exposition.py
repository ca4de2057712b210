"""The golden exposition: the whole /metrics page of a real exporter, for a fixed simulator seed and
scenario and a fixed clock, stored in ``tests/golden/exposition.prom`` so that every change to /metrics
shows as a diff a reviewer reads.

The exporter is the production one (its planner, budget, client and refresher) reading the in-process
simulator through the client's real HTTP path (``httpx`` over the simulator's ASGI app), scraped through
the app's real /metrics route. It runs on the virtual-time loop (``exporter/virtual_time.py``), so the
planner's passes, the next-refresh times it plans and every timestamp follow the simulated clock alone:
nothing is left out of the comparison. Only three kinds of value follow the machine, not the clock: the
API request durations (measured with ``time.perf_counter``, which the virtual loop does not move),
prometheus_client's ``_created`` series (read from ``time.time``) and the process's own ``process_*``
(read from /proc). Their sample lines are kept, with the
value (the histogram's bucket counts and sum, the creation time) replaced by ``<machine-timed>``, so a
change to their families, labels or buckets still shows.

To accept a change to /metrics, regenerate the file and review its diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden_exposition.py

The golden file must also pass ``promtool check metrics``.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import subprocess
from pathlib import Path

import httpx
from pydantic import SecretStr

from exporter import __version__
from exporter.app import Exporter
from exporter.buildinfo import BuildInfo
from exporter.config import Settings
from exporter.simulator.app import IN_PROCESS_URL, Simulator
from exporter.virtual_time import VirtualClock, run_virtual
from tests.exposition_checks import assert_every_family_declared

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "exposition.prom"
SCENARIO, SEED = "e2e", 7
#: 2026-11-02T09:00:00Z: any fixed instant; the simulator's history is anchored on it.
EPOCH = 1793610000.0
#: Virtual time the planner runs before the scrape: long enough for every resource to have been read.
RUN_FOR = 2 * 3600.0
TOKEN = "nfp_golden_token"
#: The build as the golden file shows it, whatever checkout and Python run the test.
BUILD = BuildInfo(
    version=__version__, revision="0123456789abcdef0123456789abcdef01234567", python_version="3.11.0"
)
#: Sample lines whose values follow the machine's speed rather than the clock (see the docstring).
_MACHINE_TIMED = re.compile(
    r"^((?:northflank_api_request_duration_seconds_(?:bucket|sum)|[a-z_]+_created|process_[a-z_]+)\b.*) \S+$"
)


async def _scrape(clock: VirtualClock) -> str:
    simulator = Simulator.from_scenario(SCENARIO, clock=clock, seed=SEED, token=TOKEN)
    exporter = Exporter(
        Settings(api_url=IN_PROCESS_URL, token=SecretStr(TOKEN)),
        clock=clock,
        transport=simulator.transport(),
        build=BUILD,
    )
    stop = asyncio.Event()
    polling = asyncio.create_task(exporter.scheduler.run(exporter.refresher, stop))
    try:
        await asyncio.sleep(RUN_FOR)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=exporter.app), base_url="http://exporter"
        ) as http:
            response = await http.get(exporter.settings.telemetry_path)
        assert response.status_code == 200, response.text
        return response.text
    finally:
        stop.set()
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await exporter.client.aclose()


def exposition() -> str:
    """The page, with the machine-timed values masked."""
    text = run_virtual(_scrape, epoch=EPOCH)
    return "".join(_MACHINE_TIMED.sub(r"\1 <machine-timed>", line) + "\n" for line in text.splitlines())


def test_metrics_page_matches_the_golden_exposition() -> None:
    actual = exposition()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(actual, encoding="utf-8")
    expected = GOLDEN.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(GOLDEN), "/metrics"
        )
    )
    assert not diff, f"/metrics changed; if intended, regenerate with UPDATE_GOLDEN=1 and review:\n{diff}"


def test_the_golden_exposition_is_deterministic_and_complete() -> None:
    """Two runs give the same page (else the golden test would flap), and the page shows the fleet."""
    first = exposition()
    assert exposition() == first
    families = assert_every_family_declared(first)
    assert "\nnorthflank_up 1\n" in first
    filled = {name for name, family in families.items() if family.samples}
    assert {"northflank_addon_backups", "northflank_exporter_next_refresh_timestamp_seconds"} <= filled


def test_the_golden_exposition_passes_promtool(promtool: str) -> None:
    # The masked values are not numbers: promtool lints the page with a number in their place.
    text = GOLDEN.read_text(encoding="utf-8").replace("<machine-timed>", "0")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

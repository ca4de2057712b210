"""The exposition passes `promtool check metrics` (Prometheus' own lint of names, units and help)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from exporter.clock import FixedClock
from exporter.simulator.app import Simulator
from exporter.simulator.server import serve
from tests.e2e.binaries import require_binary
from tests.support import running_exporter

TOKEN = "nf-exposition-token"


@pytest.mark.parametrize("scenario", ["demo", "e2e"])
async def test_promtool_check_metrics_is_silent(scenario: str) -> None:
    promtool = require_binary("promtool")
    clock = FixedClock(1_795_000_000.0)
    simulator = Simulator.from_scenario(scenario, clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(api_url=api_url, token=TOKEN, clock=clock) as exporter,
    ):
        await exporter.scheduler.refresh()
        text = await exporter.scrape_text()
    assert "northflank_addon_info{" in text
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

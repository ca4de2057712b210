"""The exposition passes `promtool check metrics` (Prometheus' own lint of names, units and help)."""

from __future__ import annotations

import asyncio

import pytest

from exporter.clock import FixedClock, SystemClock
from exporter.simulator.app import Simulator
from exporter.simulator.server import serve
from exporter.web.webhook import WebhookSecret
from tests.e2e.binaries import recorded_metric_names, used_metric_names
from tests.support import promtool_check_metrics, running_exporter

TOKEN = "nf-exposition-token"


@pytest.mark.parametrize("scenario", ["demo", "e2e"])
async def test_promtool_check_metrics_is_silent(scenario: str, promtool: str) -> None:
    clock = FixedClock(1_795_000_000.0)
    simulator = Simulator.from_scenario(scenario, clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(api_url=api_url, token=TOKEN, clock=clock) as exporter,
    ):
        await exporter.scheduler.refresh()
        text = await exporter.scrape_text()
    assert "northflank_addon_info{" in text
    assert await promtool_check_metrics(promtool, text) == (0, "", "")


async def test_every_metric_the_rules_and_dashboard_use_is_exposed() -> None:
    """Names checked against what a real exporter (with its planner) serves, not against a list."""
    clock = SystemClock()
    simulator = Simulator.from_scenario("e2e", clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(
            api_url=api_url,
            token=TOKEN,
            clock=clock,
            planner=True,
            # The webhook's families are exposed only when it is served (NorthflankExporterWebhookSilent).
            webhook_secret=WebhookSecret(b"exposition-webhook-secret"),
        ) as exporter,
    ):
        # Ready means all but the restores were read; wait until they are too (every addon's listing).
        addons = len(simulator.fleet.addons)
        async with asyncio.timeout(60):
            while True:
                samples = await exporter.scrape()
                restores = [
                    labels
                    for name, labels in samples
                    if name == "northflank_exporter_last_refresh_timestamp_seconds"
                    and ("resource", "restores") in labels
                ]
                if len(restores) == addons:
                    break
                await asyncio.sleep(0.1)
        exposed = {name for name, _ in samples}
    used = used_metric_names()
    missing = sorted(used - exposed - recorded_metric_names() - {"up"})
    assert missing == []

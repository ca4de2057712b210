"""Hostile API data against the real Go parsers: `promtool check metrics` on expositions of arbitrary
payloads, and a real Prometheus scraping an exporter whose snapshot holds the worst values at once.

Python's own parser reads ``1e400`` as inf and never sees invalid UTF-8, so only Go can say whether
Prometheus would take the page.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from exporter.clock import FixedClock
from exporter.collector import SnapshotRenderer
from tests.e2e.binaries import require_binary
from tests.hostile_inputs import FleetPayloads, build_snapshot, fleets, worst_case_snapshot
from tests.support import background_process, free_port, put_snapshot, running_exporter

pytestmark = pytest.mark.e2e

NOW = 1_795_900_000.0  # 2026-11-28
TOKEN = "nf-hostile-token"
JOB = "hostile"


def _promtool(promtool: str, body: bytes) -> tuple[int, str, str]:
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=30
    )
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(fleets())
def test_promtool_accepts_the_exposition_of_any_payload(promtool: str, fleet: FleetPayloads) -> None:
    snapshot = build_snapshot(fleet, now=NOW)
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    body = renderer.render(snapshot, NOW)
    assert _promtool(promtool, body) == (0, "", "")
    # Valid because nothing was thrown away: every addon the models let through is on the page.
    text = body.decode("utf-8", errors="strict")
    info = sum(1 for line in text.splitlines() if line.startswith("northflank_addon_info{"))
    assert info == len(snapshot.addons)


def test_promtool_accepts_the_worst_case(promtool: str) -> None:
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    body = renderer.render(worst_case_snapshot(now=NOW), NOW)
    assert b"+Inf" in body
    assert _promtool(promtool, body) == (0, "", "")


async def _query(http: httpx.AsyncClient, prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = await http.get(f"{prometheus}/api/v1/query", params={"query": expr})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


async def test_prometheus_scrapes_hostile_values_and_keeps_the_target_up(tmp_path: Path) -> None:
    prometheus_bin = require_binary("prometheus")
    clock = FixedClock(NOW)
    # The API is never asked: the snapshot is put in place as the poller would leave it.
    async with running_exporter(api_url="http://127.0.0.1:9", token=TOKEN, clock=clock) as exporter:
        put_snapshot(exporter.exporter.store, worst_case_snapshot(now=NOW))
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [exporter.url.removeprefix("http://")]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        log = tmp_path / "prometheus.log"
        prometheus = f"http://127.0.0.1:{port}"
        with background_process(
            [
                prometheus_bin,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            log,
        ):
            target: dict[str, Any] = {}
            try:
                async with asyncio.timeout(30):
                    # Another process's state: polled, as there is nothing to await.
                    while target.get("health") not in ("up", "down"):
                        await asyncio.sleep(0.2)
                        try:
                            response = await exporter.http.get(f"{prometheus}/api/v1/targets")
                        except httpx.TransportError:  # not listening yet
                            continue
                        active = response.json()["data"]["activeTargets"]
                        target = active[0] if active else {}
            except TimeoutError:
                pytest.fail(
                    f"Prometheus never scraped the exporter\n{log.read_text(errors='replace')[-3000:]}"
                )
            assert (target["health"], target["lastError"]) == ("up", "")

            async with asyncio.timeout(30):
                while not await _query(exporter.http, prometheus, "northflank_addon_info"):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            http = exporter.http
            assert len(await _query(http, prometheus, "northflank_addon_info")) == 2
            [retention] = await _query(http, prometheus, "northflank_addon_backup_schedule_retention_seconds")
            assert retention["value"][1] == "+Inf"
            assert "\ufffd" in retention["metric"]["schedule"]
            [sizes] = await _query(http, prometheus, 'northflank_addon_backups_size_bytes{addon!="plain"}')
            assert sizes["value"][1] == "+Inf"
            # What the renderer had to leave out (if anything) is on the page too, not a failed scrape.
            assert await _query(http, prometheus, "northflank_exporter_render_errors_total")

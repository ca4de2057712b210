"""End to end: simulator -> exporter -> real Prometheus (shipped rules) -> real Alertmanager -> webhook.

The simulator serves the ``e2e`` scenario (a healthy, a failing, a stale, an unscheduled and a stuck addon) on
127.0.0.1; the exporter reads it once; Prometheus scrapes the exporter every second and evaluates the
shipped rules (a copy with every ``for:`` shortened to 0s); Alertmanager runs the shipped example
configuration with its receivers pointed at a webhook served by this test. The test asserts that exactly
the expected alerts arrive, with their labels and annotations, and that the healthy addon raises none.
Then every PromQL expression of the dashboard is run against that Prometheus and must return data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from exporter.clock import SystemClock
from exporter.health import MIRRORED_ALERTS
from exporter.simulator.app import Simulator
from exporter.simulator.server import serve
from tests.e2e.binaries import (
    ALERTS_FILE,
    DASHBOARD_FILE,
    EXAMPLE_ALERTMANAGER_CONFIG,
    RULES_FILE,
    dashboard_expressions,
    require_binary,
    substitute_grafana_variables,
)
from tests.support import RunningExporter, background_process, free_port, running_exporter, serve_asgi

pytestmark = pytest.mark.e2e

TOKEN = "nf-e2e-token-0b7e"
JOB = "northflank-backup-exporter"
UNSCHEDULED_FALLBACK_SECONDS = 129_600  # the absolute threshold of NorthflankBackupTooOld


@dataclass
class Receiver:
    """The webhook Alertmanager notifies: collects every alert of every notification."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def firing(self) -> set[tuple[str, str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"].get("project", ""), a["labels"].get("addon", ""))
            for a in self.alerts
            if a["status"] == "firing"
        }


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    received = Receiver()

    async def hook(request: Request) -> Response:
        payload = await request.json()
        received.alerts.extend(payload["alerts"])
        received.arrived.set()
        return Response(status_code=200)

    app = Starlette(routes=[Route("/alerts/{receiver}", hook, methods=["POST"])])
    async with serve_asgi(app) as url:
        yield received, url


def _shortened_rules(source: Path, target: Path) -> None:
    text = re.sub(r"(?m)^(\s+for:\s*)\S+", r"\g<1>0s", source.read_text(encoding="utf-8"))
    target.write_text(text, encoding="utf-8")


def _alertmanager_config(webhook: str, target: Path) -> None:
    config = yaml.safe_load(EXAMPLE_ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = re.sub(r"^https?://[^/]+", webhook, hook["url"])
    target.write_text(yaml.safe_dump(config), encoding="utf-8")


async def _safely(condition: Any) -> bool:
    try:
        return bool(await condition())
    except httpx.TransportError:  # the server is not listening yet
        return False


async def _until(condition: Any, *, deadline: float, what: str, logs: list[Path]) -> None:
    """Await a condition with a deadline; on timeout, say what was awaited and show the logs."""
    try:
        async with asyncio.timeout(deadline):
            # Other processes' state: polled, as there is nothing to await.
            while not await _safely(condition):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    except TimeoutError:
        tails = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists()
        )
        pytest.fail(f"timed out after {deadline}s waiting for {what}\n{tails}")


@dataclass
class Stack:
    exporter: RunningExporter
    simulator: Simulator
    prometheus: str
    alertmanager: str
    receiver: Receiver
    logs: list[Path]


@pytest.fixture
async def stack(tmp_path: Path, receiver: tuple[Receiver, str]) -> AsyncIterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    alertmanager_bin = require_binary("alertmanager")
    received, webhook = receiver
    clock = SystemClock()
    simulator = Simulator.from_scenario("e2e", clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(api_url=api_url, token=TOKEN, clock=clock, planner=True) as exporter,
    ):
        # The exporter as it runs in production: its own planner reads the API, within its budget.
        async def ready() -> bool:
            return (await exporter.http.get(f"{exporter.url}/-/ready")).status_code == 200

        await _until(ready, deadline=60, what="the exporter's first refresh", logs=[])
        am_port, prom_port = free_port(), free_port()
        _shortened_rules(ALERTS_FILE, tmp_path / "alerts.yml")
        _shortened_rules(RULES_FILE, tmp_path / "rules.yml")
        _alertmanager_config(webhook, tmp_path / "alertmanager.yml")
        exporter_target = exporter.url.removeprefix("http://")
        prometheus_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml", "rules.yml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [exporter_target]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config), encoding="utf-8")
        logs = [tmp_path / "alertmanager.log", tmp_path / "prometheus.log"]
        with (
            background_process(
                [
                    alertmanager_bin,
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                logs[0],
            ),
            background_process(
                [
                    prometheus_bin,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                logs[1],
            ),
        ):
            yield Stack(
                exporter,
                simulator,
                f"http://127.0.0.1:{prom_port}",
                f"http://127.0.0.1:{am_port}",
                received,
                logs,
            )


def _expected_alerts(stack: Stack) -> set[tuple[str, str, str]]:
    """What the scenario's data implies, after the shipped Alertmanager configuration's inhibitions."""
    expected = {
        ("NorthflankBackupTooOld", "e2e-project", "e2e-failing"),
        ("NorthflankBackupFailingRepeatedly", "e2e-project", "e2e-failing"),
        ("NorthflankBackupTooOld", "e2e-other", "e2e-stale"),
        # Every run since start - 6 h was missed: the critical alert, which inhibits the warning.
        ("NorthflankBackupScheduledRunMissedRepeatedly", "e2e-other", "e2e-stale"),
        ("NorthflankBackupNoSchedule", "e2e-other", "e2e-unscheduled"),
        ("NorthflankBackupStuckInProgress", "e2e-other", "e2e-stuck"),
        ("NorthflankBackupTooOld", "e2e-other", "e2e-stuck"),
        ("NorthflankBackupScheduledRunMissedRepeatedly", "e2e-other", "e2e-stuck"),
    }
    # One manual backup a day at a pseudo-random time: whether the newest is older than the absolute
    # threshold depends on the day the test runs, so ask the simulator's own data.
    addon = next(a for a in stack.simulator.fleet.addons if a.id == "e2e-unscheduled")
    now = SystemClock().now()
    completed = [r.completed_at for r in stack.simulator.backups_at(addon, now) if r.completed_at]
    if not completed or now - max(completed) > UNSCHEDULED_FALLBACK_SECONDS:
        expected.add(("NorthflankBackupTooOld", "e2e-other", "e2e-unscheduled"))
    return expected


async def _prometheus_firing(http: httpx.AsyncClient, prometheus: str) -> set[tuple[str, str, str]]:
    response = await http.get(f"{prometheus}/api/v1/alerts")
    alerts = response.json()["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("project", ""), a["labels"].get("addon", ""))
        for a in alerts
        if a["state"] == "firing"
    }


async def test_exactly_the_expected_alerts_reach_the_receiver(stack: Stack) -> None:
    expected = _expected_alerts(stack)
    http = stack.exporter.http

    async def all_arrived() -> bool:
        return expected <= stack.receiver.firing()

    await _until(all_arrived, deadline=90, what=f"alerts {sorted(expected)}", logs=stack.logs)

    # Prometheus evaluates every rule of a group together, and each group has run by now: what fires
    # there is what the data implies, before Alertmanager's inhibitions.
    before_inhibition = expected | {
        ("NorthflankBackupLastAttemptFailed", "e2e-project", "e2e-failing"),
        ("NorthflankBackupScheduledRunMissed", "e2e-other", "e2e-stale"),
        ("NorthflankBackupScheduledRunMissed", "e2e-other", "e2e-stuck"),
    }
    firing = await _prometheus_firing(http, stack.prometheus)
    assert firing == before_inhibition

    # The status page judges by the same rules: the addons it shows as not OK are exactly those with a
    # firing backup alert (the per-addon alerts exporter.health mirrors; NorthflankExporter* alerts are
    # about the exporter, not an addon's backups), and each with the same alerts.
    document = (await http.get(f"{stack.exporter.url}/api/v1/addons")).json()
    page = {
        (alert, a["project"]["id"], a["addon"]["id"])
        for a in document["addons"]
        for problem in a["problems"]
        for alert in problem["alerts"]
    }
    backup_alerts = {f for f in firing if f[0] in MIRRORED_ALERTS}
    assert page == backup_alerts
    not_ok = {(a["project"]["id"], a["addon"]["id"]) for a in document["addons"] if not a["ok"]}
    assert not_ok == {(project, addon) for _, project, addon in backup_alerts}

    # Nothing else arrives, even a few notification intervals later; nothing at all for the healthy addon.
    stack.receiver.arrived.clear()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(4):
            await stack.receiver.arrived.wait()
    assert stack.receiver.firing() == expected
    assert not [a for a in stack.receiver.alerts if a["labels"].get("addon") == "e2e-healthy"]

    for alert in stack.receiver.alerts:
        labels, annotations = alert["labels"], alert["annotations"]
        assert labels["severity"] in ("critical", "warning", "info")
        assert labels["job"] == JOB
        assert annotations["summary"]
        assert labels["addon"] in annotations["description"]
        assert labels["project"] in annotations["description"]
        assert annotations["runbook_url"].endswith("#" + labels["alertname"].lower())
    names = {a["labels"]["alertname"]: a["labels"]["severity"] for a in stack.receiver.alerts}
    assert names["NorthflankBackupFailingRepeatedly"] == "critical"
    assert names["NorthflankBackupNoSchedule"] == "warning"


async def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    http = stack.exporter.http

    async def scraped_twice() -> bool:
        # rate() and increase() need two samples in their window.
        response = await http.get(
            f"{stack.prometheus}/api/v1/query", params={"query": "count_over_time(northflank_up[1m])"}
        )
        result = response.json()["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) >= 3

    await _until(scraped_twice, deadline=60, what="three scrapes", logs=stack.logs)
    empty = []
    for expression in dashboard_expressions():
        query = substitute_grafana_variables(expression.expr)
        response = await http.get(f"{stack.prometheus}/api/v1/query", params={"query": query})
        body = response.json()
        assert body["status"] == "success", f"{expression.source}: {body}"
        if not body["data"]["result"]:
            empty.append(expression.source)
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


async def test_dashboard_alert_annotations_mark_exactly_the_firing_alerts(stack: Stack) -> None:
    """The dashboard's ``ALERTS`` annotation query, run as Grafana would, finds what Prometheus fires."""
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    (annotation,) = [a for a in dashboard["annotations"]["list"] if "ALERTS" in str(a.get("expr", ""))]
    query = substitute_grafana_variables(str(annotation["expr"]))
    http = stack.exporter.http
    expected = _expected_alerts(stack)

    async def fired() -> bool:
        return expected <= await _prometheus_firing(http, stack.prometheus)

    await _until(fired, deadline=90, what=f"alerts {sorted(expected)}", logs=stack.logs)
    firing = await _prometheus_firing(http, stack.prometheus)
    response = await http.get(f"{stack.prometheus}/api/v1/query", params={"query": query})
    marked = {
        (s["metric"]["alertname"], s["metric"].get("project", ""), s["metric"].get("addon", ""))
        for s in response.json()["data"]["result"]
    }
    assert marked == firing

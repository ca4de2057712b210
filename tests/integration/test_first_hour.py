"""The first hour of a new user (issue 10, section 4), over real sockets: the exporter served on 127.0.0.1
reading the simulator served on 127.0.0.1.

- A refused token stays visible: /-/ready is 503 while the API refuses it (from the start, and when it is
  revoked after the exporter went Ready), one WARNING per TOKEN_REFUSED_REPEAT_SECONDS whatever the
  number of refused requests and resources, and a line when it is accepted again.
- One INFO line says when the first complete read is there, once.
- /metrics has process_* and a build_info with the revision and the Python version.
"""

from __future__ import annotations

import logging
import platform

import pytest

from exporter.clock import SystemClock
from exporter.poller import TOKEN_REFUSED_REPEAT_SECONDS
from exporter.simulator.app import Simulator
from exporter.simulator.reference_fleet import reference
from exporter.simulator.server import serve
from tests.support import MONDAY_NOON, RunningExporter, running_exporter, simulated_exporter, until, value

TOKEN = "nf-first-hour-token-3e9a"
ERRORS = "northflank_exporter_refresh_errors_total"


def token_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno == logging.WARNING and "refuses the token" in r.getMessage()
    ]


async def readiness(running: RunningExporter) -> tuple[int, str]:
    response = await running.http.get(f"{running.url}/-/ready")
    return response.status_code, response.text


async def test_a_wrong_token_from_the_start_is_one_warning_and_not_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    clock = SystemClock()
    simulator = Simulator(reference(20, seed=3), clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(api_url=api_url, token="nf-a-wrong-token-00", clock=clock, planner=True) as running,
    ):

        async def refused() -> bool:
            samples = await running.scrape()
            return (value(samples, ERRORS, resource="projects", reason="auth") or 0) >= 1

        await until(refused, deadline=20, what="the 401 of the first discovery")
        status, text = await readiness(running)
        assert status == 503
        assert "refuses the token" in text
        assert TOKEN not in text
    # One account-wide fault, whatever resources were refused: one warning, its context in fields.
    warnings = token_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert getattr(warnings[0], "reason", None) == "auth"
    assert getattr(warnings[0], "resource", None) in ("projects", "backup_destinations")


async def test_a_token_revoked_after_ready_makes_the_exporter_not_ready_until_it_is_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter")
    async with simulated_exporter("demo", token=TOKEN, start=MONDAY_NOON) as simulated:
        running, clock = simulated.exporter, simulated.clock
        await running.scheduler.refresh()
        assert (await readiness(running))[0] == 200

        simulated.simulator.revoke_token()
        caplog.clear()
        for _ in range(3):  # three passes, each refused: still one warning
            await running.scheduler.refresh()
            clock.advance(60)
        status, text = await readiness(running)
        assert status == 503
        assert "refuses the token" in text
        assert len(token_warnings(caplog)) == 1
        samples = await running.scrape()
        assert (value(samples, ERRORS, resource="projects", reason="auth") or 0) == 3

        # Still refused after the repeat interval: the warning again, once.
        clock.advance(TOKEN_REFUSED_REPEAT_SECONDS)
        await running.scheduler.refresh()
        await running.scheduler.refresh()
        assert len(token_warnings(caplog)) == 2

        simulated.simulator.set_token(TOKEN)
        await running.scheduler.refresh()
        assert await readiness(running) == (200, "Ready.\n")
        assert any("accepts the token again" in r.getMessage() for r in caplog.records)


async def test_the_first_complete_read_is_logged_once_with_the_number_of_addons(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter")
    async with simulated_exporter("demo", token=TOKEN, start=MONDAY_NOON) as simulated:
        addons = len(simulated.simulator.fleet.addons)
        assert addons > 0
        await simulated.exporter.scheduler.refresh()
        await simulated.exporter.scheduler.refresh()
    lines = [r for r in caplog.records if r.getMessage().startswith("first complete read")]
    assert len(lines) == 1
    assert lines[0].getMessage() == f"first complete read: {addons} addons in 0.0s"
    assert getattr(lines[0], "addons", None) == addons


async def test_the_start_line_names_the_port_actually_bound(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter")
    async with simulated_exporter("demo", token=TOKEN, start=MONDAY_NOON) as simulated:
        port = simulated.exporter.exporter.bound_port
        assert port != 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("listening on")]
    # --web.listen-address=127.0.0.1:0 asks for any port: the line must say which one it got.
    assert lines == [f"listening on 127.0.0.1:{port}, metrics at /metrics"]


async def test_metrics_show_process_metrics_and_the_build() -> None:
    async with simulated_exporter("demo", token=TOKEN, start=MONDAY_NOON) as simulated:
        text = await simulated.exporter.scrape_text()
    samples = {line.split(" ")[0].split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds"} <= (
        samples
    )
    build = next(line for line in text.splitlines() if line.startswith("northflank_exporter_build_info{"))
    assert f'pythonversion="{platform.python_version()}"' in build
    assert 'revision="' in build

"""/-/ready over real sockets (issue 8, section 11): the exporter and its planner against the simulator
served by uvicorn on 127.0.0.1.

Not ready while discovery has never succeeded (the token refused, the API not there), however long
that lasts and whatever else was tried; ready once the projects and their addon listings were read,
long before every addon was (a budget too small to read them all in the test's time shows it).
"""

from __future__ import annotations

import pytest

from exporter.clock import SystemClock
from exporter.simulator.app import Simulator
from exporter.simulator.reference_fleet import reference
from exporter.simulator.server import serve
from tests.support import RunningExporter, free_port, running_exporter, until, value

TOKEN = "readiness-test-token"
ERRORS = "northflank_exporter_refresh_errors_total"
RATIO = "northflank_exporter_initial_read_ratio"


async def ready(running: RunningExporter) -> bool:
    return (await running.http.get(f"{running.url}/-/ready")).status_code == 200


@pytest.mark.parametrize("fault", ["token_refused", "api_unreachable"])
async def test_not_ready_while_discovery_has_never_succeeded(fault: str) -> None:
    clock = SystemClock()
    simulator = Simulator(reference(20, seed=3), clock=clock, token=TOKEN)
    reason = {"token_refused": "auth", "api_unreachable": "connection"}[fault]
    async with serve(simulator) as api_url:
        if fault == "token_refused":
            simulator.revoke_token()
        else:
            api_url = f"http://127.0.0.1:{free_port()}"
        async with running_exporter(api_url=api_url, token=TOKEN, clock=clock, planner=True) as running:
            # While the token is refused the planner asks only for the projects: any other listing would
            # be refused too.
            tried = ("projects",) if fault == "token_refused" else ("projects", "backup_destinations")

            async def both_failed() -> bool:
                samples = await running.scrape()
                return all(
                    (value(samples, ERRORS, resource=resource, reason=reason) or 0) >= 1 for resource in tried
                )

            # Every first read the planner could try has been answered, and refused.
            await until(both_failed, deadline=20, what=f"the {reason} errors of the first reads")
            if fault == "token_refused":
                samples = await running.scrape()
                assert not value(samples, ERRORS, resource="backup_destinations", reason=reason)
            response = await running.http.get(f"{running.url}/-/ready")
            assert response.status_code == 503
            # A refused token says so (issue 10, section 4); an API not there, that discovery failed.
            expected = "refuses the token" if fault == "token_refused" else "discovery has not succeeded"
            assert expected in response.text
            assert TOKEN not in response.text
            samples = await running.scrape()
            assert value(samples, "northflank_up") == 0
            assert value(samples, RATIO, resource="backups") == 0
            assert (await running.http.get(f"{running.url}/-/healthy")).status_code == 200


async def test_ready_after_discovery_with_most_addons_not_read_yet() -> None:
    clock = SystemClock()
    # 100 addons in 8 projects. 200 requests an hour: a tenth of it at once is enough for discovery (11
    # requests) and a few backup listings; the rest comes one request every 18 s.
    simulator = Simulator(reference(100, seed=3), clock=clock, token=TOKEN)
    async with (
        serve(simulator) as api_url,
        running_exporter(
            api_url=api_url, token=TOKEN, clock=clock, planner=True, request_budget=200
        ) as running,
    ):

        async def is_ready() -> bool:
            return await ready(running)

        await until(is_ready, deadline=20, what="readiness after discovery")
        samples = await running.scrape()
        assert value(samples, "northflank_up") == 1
        addons = [k for k in samples if k[0] == "northflank_addon_info"]
        assert len(addons) == len(simulator.fleet.addons)
        backups = value(samples, RATIO, resource="backups")
        assert backups is not None
        assert 0 <= backups < 0.5
        # Backups first: not one schedule or restore has been read.
        assert value(samples, RATIO, resource="schedules") == 0
        assert value(samples, RATIO, resource="restores") == 0

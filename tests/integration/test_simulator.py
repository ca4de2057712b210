"""The simulator over a real socket (uvicorn on 127.0.0.1, a free port) and as a process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import httpx
import pytest

from exporter.clock import FixedClock
from exporter.northflank import models
from exporter.simulator import DEFAULT_TOKEN, Simulator, serve
from exporter.simulator.routes import BACKUPS, PROJECTS

T0 = 1_750_000_000.0
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
HEALTHY = "/v1/projects/e2e-project/addons/e2e-healthy"


class SignallingClock(FixedClock):
    """A fixed clock that tells when the simulator reads it (that is, when a request arrives)."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.read = asyncio.Event()

    def now(self) -> float:
        self.read.set()
        return super().now()


async def test_serves_the_api_over_a_socket() -> None:
    sim = Simulator.from_scenario("e2e", clock=FixedClock(T0), seed=3)
    async with serve(sim) as url, httpx.AsyncClient(base_url=url, headers=AUTH, timeout=5) as client:
        assert url.startswith("http://127.0.0.1:")
        response = await client.get("/v1/projects")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == "999"
        projects = [models.Project.model_validate(p) for p in response.json()["data"]["projects"]]
        assert {p.id for p in projects} == {"e2e-project", "e2e-other"}
        backups = (await client.get(HEALTHY + "/backups", params={"per_page": 100})).json()["data"]["backups"]
        assert len(backups) == 72
        assert all(models.Backup.model_validate(b) for b in backups)
        assert (await client.get("/v1/projects", headers={"Authorization": "Bearer no"})).status_code == 401

        # Faults over the admin endpoint, as an out-of-process test would set them.
        created = await client.post(
            "/_simulator/faults", json={"kind": "status", "route": BACKUPS, "status": 503, "times": 1}
        )
        assert created.status_code == 201
        assert (await client.get(HEALTHY + "/backups")).status_code == 503
        assert (await client.get(HEALTHY + "/backups")).status_code == 200


async def test_reset_fault_over_a_socket_is_an_incomplete_read(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator.from_scenario("e2e", clock=FixedClock(T0))
    sim.inject("reset", BACKUPS, times=1)
    async with serve(sim) as url, httpx.AsyncClient(base_url=url, headers=AUTH, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|peer closed"):
            await client.get(HEALTHY + "/backups")
        assert (await client.get(HEALTHY + "/backups")).status_code == 200
    # The deliberate disconnection is not logged as a server error.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_hang_fault_over_a_socket_times_out_and_does_not_block_shutdown() -> None:
    clock = SignallingClock(T0)
    sim = Simulator.from_scenario("e2e", clock=clock)
    sim.inject("hang", PROJECTS)
    async with asyncio.timeout(10), httpx.AsyncClient(headers=AUTH) as client:
        async with serve(sim) as url:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(url + "/v1/projects", timeout=0.2)
            clock.read.clear()
            pending = asyncio.create_task(client.get(url + "/v1/projects", timeout=30))
            await clock.read.wait()  # the request has arrived and is being held
        # Stopping the server ended the held request with a 503 instead of holding it for 30 s.
        response = await pending
        assert response.status_code == 503
    assert not sim.hanging


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_runs_as_a_process(sig: signal.Signals) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter.simulator",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        "e2e",
        "--seed",
        "3",
        "--token",
        "process-token",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode().strip()  # type: ignore[union-attr]
        assert line.startswith("http://127.0.0.1:"), line
        async with httpx.AsyncClient(base_url=line, timeout=5) as client:
            response = await client.get("/v1/projects", headers={"Authorization": "Bearer process-token"})
            assert response.status_code == 200
            assert {p["id"] for p in response.json()["data"]["projects"]} == {"e2e-project", "e2e-other"}
            assert (await client.get("/v1/projects")).status_code == 401
        process.send_signal(sig)
        async with asyncio.timeout(10):
            _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

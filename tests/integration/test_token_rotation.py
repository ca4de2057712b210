"""Token rotation without a restart, over real sockets: a stand-in API that accepts only token B, an exporter
started with a file holding A, the file swapped to B the way the kubelet updates a mounted Secret.

Two ways the exporter notices: the file's stat, looked at before a request; or, when the old token is
refused before that look comes round, the 401 itself (the file is read again at once and the request
retried with the new token, in the same pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from exporter.apitoken import TokenFile
from exporter.app import Exporter
from exporter.clock import FixedClock
from exporter.config import ListenAddress, Settings
from exporter.simulator.app import Simulator
from exporter.simulator.server import serve
from tests.support import MONDAY_NOON, ManualScheduler, parse_samples, series, value
from tests.unit.test_token_file import KubeletVolume

START = MONDAY_NOON
TOKEN_A = "nf-rotation-old-token-8d2f41"
TOKEN_B = "nf-rotation-new-token-3c9a07"


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    simulator: Simulator
    volume: KubeletVolume
    scheduler: ManualScheduler
    url: str
    http: httpx.AsyncClient

    async def scrape(self) -> str:
        response = await self.http.get(f"{self.url}/metrics")
        response.raise_for_status()
        return response.text

    def statuses(self) -> list[int | None]:
        return [record.status for record in self.simulator.request_log.records]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """All the log, debug included, swept for either token at the end."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        text = record.getMessage()
        for secret in (TOKEN_A, TOKEN_B):
            assert secret.lower() not in text.lower(), text


@contextlib.asynccontextmanager
async def harness(tmp_path: Path, check_interval: float) -> AsyncIterator[Harness]:
    clock = FixedClock(START)
    simulator = Simulator.from_scenario("demo", clock=clock, token=TOKEN_B)
    volume = KubeletVolume(tmp_path / "secret", TOKEN_A)
    token = TokenFile(volume.path, check_interval=check_interval, monotonic=Monotonic())
    scheduler = ManualScheduler()
    async with serve(simulator) as api_url:
        settings = Settings(listen_address=ListenAddress("127.0.0.1", 0), api_url=api_url, token=token)
        exporter = Exporter(settings, clock=clock, scheduler=scheduler)
        stop = asyncio.Event()
        task = asyncio.create_task(exporter.run(stop))
        async with asyncio.timeout(10):
            await exporter.started.wait()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                yield Harness(simulator, volume, scheduler, f"http://127.0.0.1:{exporter.bound_port}", http)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def refused_then_rotated(h: Harness) -> None:
    await h.scheduler.refresh()
    text = await h.scrape()
    assert value(parse_samples(text), "northflank_up") == 0
    assert set(h.statuses()) == {401}
    h.simulator.request_log.clear()
    h.volume.update(TOKEN_B)


async def test_the_stat_check_picks_up_a_kubelet_swap_before_the_next_request(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path, check_interval=0.0) as h:
        await refused_then_rotated(h)
        await h.scheduler.refresh()
        text = await h.scrape()
        samples = parse_samples(text)
        assert value(samples, "northflank_up") == 1
        assert len(series(samples, "northflank_addon_info")) == len(h.simulator.fleet.addons)
        assert h.statuses()
        assert 401 not in h.statuses()  # the new token from the first request on
        for secret in (TOKEN_A, TOKEN_B):
            assert secret not in text
    assert sum("changed: using the new API token" in r.getMessage() for r in logs.records) == 1


async def test_a_401_reads_the_swapped_file_at_once_and_the_same_pass_succeeds(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    async with harness(tmp_path, check_interval=1e9) as h:  # only a 401 makes it look at the file
        await refused_then_rotated(h)
        await h.scheduler.refresh()
        samples = parse_samples(await h.scrape())
        assert value(samples, "northflank_up") == 1
        assert len(series(samples, "northflank_addon_info")) == len(h.simulator.fleet.addons)
        statuses = h.statuses()
        assert statuses[0] == 401  # the old token, once
        assert statuses[1:]
        assert set(statuses[1:]) == {200}

"""Test helpers shared by the integration and end-to-end suites: running exporters, scraping them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from pydantic import SecretStr

from exporter.app import Exporter
from exporter.cli import main
from exporter.clock import Clock, FixedClock
from exporter.config import ListenAddress, Settings
from exporter.northflank.errors import AuthError
from exporter.planner import Planner
from exporter.poller import Refresher, WithoutMetrics
from exporter.resources import ADDON_RESOURCES
from exporter.simulator.app import Simulator
from exporter.simulator.server import serve
from exporter.snapshot import Snapshot, SnapshotStore
from exporter.web.webhook import WEBHOOK_PATH, WebhookSecret

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: A Monday, 12:00 UTC: the fixed start of the suites that read a simulated fleet, so that every run of
#: the suite sees the same data.
MONDAY_NOON = 1_795_000_000.0 - (1_795_000_000.0 % 86400) + 12 * 3600


async def refresh_everything(refresher: Refresher) -> None:
    """One complete pass over everything (:func:`complete_pass`), then the snapshot is marked ready."""
    await complete_pass(refresher)
    refresher.store.update(Snapshot.with_ready)


async def complete_pass(refresher: Refresher) -> None:
    """Every listing once: the projects first (a refused token ends the pass there), then each project's
    addons (when discovery worked), then every other listing (bench/soak.py's pass too)."""
    discovery = await refresher.refresh_projects()
    if isinstance(discovery.error, AuthError):
        return
    if discovery.ok:
        await asyncio.gather(*(refresher.refresh_project_addons(p) for p in refresher.store.current.projects))
    await asyncio.gather(
        refresher.refresh_destinations(),
        *(
            refresher.refresh_addon(key, resource)
            for key in refresher.store.current.addons
            for resource in ADDON_RESOURCES
        ),
    )


class ManualScheduler(WithoutMetrics):
    """A RefreshScheduler that runs a complete pass (:func:`refresh_everything`) when the test asks, and
    says when it is done."""

    def __init__(self) -> None:
        self._requests: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
        self.passes = 0

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = await self._requests.get()
            try:
                await refresh_everything(refresher)
            except Exception as error:  # surfaced in the test that asked for the pass
                done.set_exception(error)
            else:
                self.passes += 1
                done.set_result(None)

    async def refresh(self, deadline: float = 30.0) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put_nowait(done)
        async with asyncio.timeout(deadline):
            await done

    def start_refresh(self) -> asyncio.Future[None]:
        """Ask for a pass without waiting for it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put_nowait(done)
        return done


class PlannedPasses:
    """The exporter's own planner, driven pass by pass: it reads nothing until the test asks for the first
    pass; a pass (:meth:`Planner.read_everything` after the first) reads every listing, the projects
    first, and has ended when the planner has nothing in flight and nothing it may start now."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self._go = asyncio.Event()

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None:
        go = asyncio.create_task(self._go.wait())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({go, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            go.cancel()
            stopped.cancel()
        if not stop.is_set():
            await self.planner.run(refresher, stop)

    def collector(self, snapshot: Callable[[], Snapshot]) -> Collector | None:
        return self.planner.collector(snapshot)

    def render_extra(self) -> bytes:
        return self.planner.render_extra()

    async def refresh(self, deadline: float = 30.0) -> None:
        async with asyncio.timeout(deadline):
            await self.start_refresh()

    def start_refresh(self) -> asyncio.Future[None]:
        """Ask for a pass; the future is done once the planner has settled after it."""
        if self._go.is_set():
            # A pass asked while reads are under way (there are none between a test's passes) would
            # take them as its own: this is for a planner at rest.
            if not self.planner.settled.is_set():
                raise RuntimeError("a pass was asked while the planner was still busy")
            self.planner.read_everything()
        else:
            self._go.set()
        return asyncio.ensure_future(self._settled())

    async def _settled(self) -> None:
        await self.planner.settled.wait()


@dataclass
class RunningExporter:
    exporter: Exporter
    url: str
    scheduler: ManualScheduler | PlannedPasses
    http: httpx.AsyncClient

    async def scrape(self) -> Samples:
        response = await self.http.get(f"{self.url}/metrics")
        response.raise_for_status()
        return parse_samples(response.text)

    async def scrape_text(self) -> str:
        response = await self.http.get(f"{self.url}/metrics")
        response.raise_for_status()
        return response.text

    @property
    def webhook_url(self) -> str:
        """The webhook's URL on its own listener (started with ``webhook_secret``)."""
        listener = self.exporter.webhook_listener
        if listener is None:
            raise RuntimeError("the exporter serves no webhook: start it with webhook_secret")
        return f"http://127.0.0.1:{listener.port}{WEBHOOK_PATH}"


def parse_samples(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def put_snapshot(store: SnapshotStore, snapshot: Snapshot) -> None:
    """Put ``snapshot`` in place as the refresher would leave it, through the store's one way in."""
    store.update(lambda _: snapshot)


@contextlib.asynccontextmanager
async def running_exporter(
    *,
    api_url: str,
    token: str,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
    planner: bool = False,
    passes: bool = False,
    webhook_secret: WebhookSecret | None = None,
    **settings: Any,
) -> AsyncIterator[RunningExporter]:
    """An Exporter serving on 127.0.0.1 (a free port), refreshed only when the test asks: by complete
    passes of the refresher (:class:`ManualScheduler`), or with ``passes=True`` by forced passes of its
    own planner (:class:`PlannedPasses`); or left to its own planner with ``planner=True`` (then
    ``scheduler.refresh`` is not available). With ``webhook_secret`` it serves the notification webhook
    too, on a free port of its own (:attr:`RunningExporter.webhook_url`)."""
    if webhook_secret is not None:
        settings |= {
            "webhook_listen_address": ListenAddress("127.0.0.1", 0),
            "webhook_secret": webhook_secret,
        }
    config = dataclasses.replace(
        Settings(listen_address=ListenAddress("127.0.0.1", 0), api_url=api_url, token=SecretStr(token)),
        **settings,
    )
    scheduler: ManualScheduler | PlannedPasses = ManualScheduler()
    own = planner or passes
    exporter = Exporter(config, clock=clock, transport=transport, scheduler=None if own else scheduler)
    if passes:
        if not isinstance(exporter.scheduler, Planner):
            raise TypeError("the exporter was expected to plan its refreshes")
        scheduler = PlannedPasses(exporter.scheduler)
        exporter.scheduler = scheduler
    stop = asyncio.Event()
    task = asyncio.create_task(exporter.run(stop))
    started = asyncio.create_task(exporter.started.wait())
    await asyncio.wait({task, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert exporter.started.is_set(), "the exporter did not start"
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            yield RunningExporter(exporter, f"http://127.0.0.1:{exporter.bound_port}", scheduler, http)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@dataclass
class SimulatedExporter:
    """A running exporter reading an in-process simulator over a real socket, under a fixed clock."""

    simulator: Simulator
    clock: FixedClock
    exporter: RunningExporter


@contextlib.asynccontextmanager
async def simulated_exporter(
    scenario: str = "demo", *, token: str, start: float = MONDAY_NOON, seed: int = 0, **settings: Any
) -> AsyncIterator[SimulatedExporter]:
    """The simulator of ``scenario`` (``seed``) served on 127.0.0.1, and an exporter reading it with
    ``token``, both on a :class:`FixedClock` at ``start``; ``settings`` go to :func:`running_exporter`."""
    clock = FixedClock(start)
    simulator = Simulator.from_scenario(scenario, clock=clock, seed=seed, token=token)
    async with (
        serve(simulator) as api_url,
        running_exporter(api_url=api_url, token=token, clock=clock, **settings) as running,
    ):
        yield SimulatedExporter(simulator, clock, running)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a condition with a deadline (for other processes, which we cannot await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def eventually(condition: Callable[[], bool], *, within: float, what: str) -> None:
    """Wait until ``condition()`` holds, checking between the event loop's other work; fail after
    ``within`` seconds, naming ``what`` was awaited."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], Awaitable[bool]], *, deadline: float, what: str) -> None:
    """Wait until ``await condition()`` holds (the exporter's state as its HTTP side shows it: polled,
    there is nothing to await); fail after ``deadline`` seconds, naming ``what`` was awaited."""
    try:
        async with asyncio.timeout(deadline):
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline}s waiting for {what}") from None


async def promtool_check_metrics(promtool: str, text: str) -> tuple[int, str, str]:
    """``promtool check metrics`` of ``text`` (in a thread, the event loop serving on): its exit code,
    stdout and stderr, ``(0, "", "")`` when the exposition is clean."""
    lint = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return lint.returncode, lint.stdout, lint.stderr


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of ``cli.main(argv)`` in this process (argparse exits itself)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def simulator_process(*args: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``python -m exporter.simulator`` on 127.0.0.1; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the simulator did not start: {err}")
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def max_in_rolling_hour(times: list[float]) -> int:
    """The most requests in any window [t, t + 1h) (as the simulator's request log counts them)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - 3600.0:
            first += 1
        best = max(best, last - first + 1)
    return best


@contextlib.contextmanager
def background_process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A program (Prometheus, Alertmanager...) running for the block, its output in ``log_path``."""
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 10 s: a test's background program never outlives the test."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app written in a test with uvicorn on 127.0.0.1 (a free port); yields its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, lifespan="off")
    )
    server.config.load()
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event for it
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task

"""The HTTP side cannot starve the exporter: idle, slow and surplus connections, and the fd limit.

Over real sockets on 127.0.0.1: the exporter process under a lowered RLIMIT_NOFILE, and an in-process
exporter for the per-connection timeouts and the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.web.connections import ThrottledLog, connection_limit, fd_reserve
from tests.support import (
    RunningExporter,
    eventually,
    free_port,
    http_ok,
    parse_samples,
    simulated_exporter,
    simulator_process,
    stop_process,
    value,
    wait_until,
)

TOKEN = "nf-starvation-token-7e2a"
READ_TIMEOUT = 4.0
#: Descriptors the exporter process may open: well below what the idle clients below would take.
NOFILE = 128
#: Idle clients beyond the bound.
SURPLUS = 24


# --- the exporter process -------------------------------------------------------------------------


@pytest.fixture
def simulator_url() -> Iterator[str]:
    # A fleet whose first complete read outlasts the test: the planner reads 200 addons' three listings
    # at full speed out of the budget's burst, then paced by it (5000 an hour of an announced 10000), so
    # the poller needs descriptors all through the test.
    with simulator_process(
        "--scenario", "reference", "--addons", "200", "--rate-limit", "10000", "--token", TOKEN
    ) as url:
        yield url


@contextlib.contextmanager
def exporter_process(
    simulator_url: str,
    log_path: Path,
    *flags: str,
    nofile: int | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN")}

    def lower_nofile() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.read-timeout={read_timeout:g}s",
                *flags,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**env, "NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN},
            preexec_fn=lower_nofile,
        )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=20, what="readiness")
        yield proc, port
    finally:
        stop_process(proc)


def api_requests(simulator_url: str) -> int:
    """How many requests the simulator has served the exporter."""
    response = httpx.get(
        f"{simulator_url}/_simulator/requests", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    return len(response.json()["data"]["requests"])


def try_scrape(port: int, timeout: float = 1.0) -> int | str:
    """The status of one scrape on a new connection, or the name of the error it ran into."""
    try:
        with httpx.Client(timeout=timeout) as client:
            return client.get(f"http://127.0.0.1:{port}/metrics").status_code
    except httpx.HTTPError as error:
        return type(error).__name__


def scrape_samples(port: int) -> Any:
    return parse_samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)


class IdleClients:
    """Connections that never send a byte; records what each got back (a 503, or the connection closed)."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        self.answers: dict[int, bytes] = {}
        self.ended: dict[int, float] = {}
        self._selector = selectors.DefaultSelector()
        for index, sock in enumerate(self.sockets):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, index)

    def poll(self) -> None:
        for key, _ in self._selector.select(timeout=0.05):
            index: int = key.data
            sock = self.sockets[index]
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self.answers[index] = self.answers.get(index, b"") + data
            if not data:
                self.ended[index] = time.monotonic()
                self._selector.unregister(sock)

    def refused(self) -> int:
        return sum(answer.startswith(b"HTTP/1.1 503 ") for answer in self.answers.values())

    def close(self) -> None:
        self._selector.close()
        for sock in self.sockets:
            sock.close()


def wait_polling(clients: IdleClients, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        clients.poll()


def test_idle_connections_at_a_lowered_fd_limit_starve_neither_scrapes_nor_the_poller(
    simulator_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "exporter.log"
    limit = NOFILE - fd_reserve(4)
    with exporter_process(simulator_url, log_path, "--web.max-connections=1000", nofile=NOFILE) as (_, port):
        # The configured bound would let idle clients take every descriptor: it was lowered at start.
        assert value(scrape_samples(port), "northflank_exporter_http_connections_max") == limit
        began = time.monotonic()
        clients = IdleClients(port, limit + SURPLUS)
        try:
            # The surplus is answered 503 at once (the scrapes above may still hold a place or two).
            wait_polling(clients, lambda: clients.refused() >= SURPLUS, timeout=3, what="the surplus refused")
            refused_after = time.monotonic() - began
            assert SURPLUS <= clients.refused() <= SURPLUS + 2
            # Saturated, the poller still reads the API (it has its own descriptors) ...
            before = api_requests(simulator_url)
            wait_polling(
                clients, lambda: api_requests(simulator_url) > before, timeout=3, what="an API request"
            )
            # ... and a scrape is refused fast rather than queued.
            scrape_began = time.monotonic()
            refused_scrape = try_scrape(port)
            refusal_seconds = time.monotonic() - scrape_began
            assert time.monotonic() - began < READ_TIMEOUT, "the test was too slow to see the saturation"
            assert refused_scrape in (503, "RemoteProtocolError", "ReadError"), refused_scrape
            assert refusal_seconds < 0.5
            # The idle connections are closed at the read timeout, and scrapes recover.
            wait_polling(
                clients,
                lambda: len(clients.ended) == len(clients.sockets),
                timeout=READ_TIMEOUT + 5,
                what="every idle connection closed",
            )
            held_for = max(clients.ended.values()) - began
            wait_until(lambda: try_scrape(port) == 200, timeout=5, what="a scrape answered")
            recovered_after = time.monotonic() - began
        finally:
            clients.close()
        samples = scrape_samples(port)
    assert READ_TIMEOUT <= held_for < READ_TIMEOUT + 3
    assert (value(samples, "northflank_exporter_http_read_timeouts_total") or 0) >= limit - 2
    assert (value(samples, "northflank_exporter_http_connections_refused_total") or 0) >= SURPLUS + 1
    assert value(samples, "northflank_exporter_http_accept_errors_total") == 0
    lines = log_path.read_text(encoding="utf-8").splitlines()
    # One line per kind of problem per minute, whatever the number of connections.
    assert sum("refused an HTTP connection" in line for line in lines) == 1, lines
    assert sum("did not send a complete request" in line for line in lines) == 1, lines
    assert sum("logger=exporter.web.connections" in line for line in lines) == 2, lines
    assert len(lines) <= 20, lines
    assert not any("Traceback" in line or "level=error" in line for line in lines), lines
    print(
        f"\nfigures: bound {limit} at RLIMIT_NOFILE {NOFILE}; surplus refused within {refused_after:.2f}s; "
        f"a scrape refused in {refusal_seconds * 1000:.0f} ms; idle connections held {held_for:.2f}s "
        f"(read timeout {READ_TIMEOUT:g}s); scrapes back after {recovered_after:.2f}s; {len(lines)} log lines"
    )


def test_accept_failures_at_the_fd_limit_are_logged_once_and_the_server_recovers(
    simulator_url: str, tmp_path: Path
) -> None:
    """Descriptors used up by something else (here: the limit lowered under the running process): the
    accept loop fails with EMFILE. asyncio alone logs ~2000 tracebacks a second then."""
    log_path = tmp_path / "exporter.log"
    read_timeout = 1.5
    with exporter_process(
        simulator_url, log_path, "--web.max-connections=1000", read_timeout=read_timeout
    ) as (proc, port):
        in_use = len(os.listdir(f"/proc/{proc.pid}/fd"))
        hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)[1]
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (in_use + 16, hard))
        clients = IdleClients(port, 32)
        try:
            # Some are accepted and held to the read timeout, the rest wait in the backlog: accept fails.
            wait_polling(
                clients,
                lambda: "cannot accept" in log_path.read_text(encoding="utf-8"),
                timeout=5,
                what="the accept failure logged",
            )
            failing = time.monotonic()
            wait_polling(
                clients,
                lambda: len(clients.ended) == len(clients.sockets),
                timeout=4 * read_timeout + 5,
                what="every idle connection closed",
            )
        finally:
            clients.close()
        wait_until(lambda: try_scrape(port) == 200, timeout=read_timeout + 5, what="a scrape answered")
        recovered_after = time.monotonic() - failing
        samples = scrape_samples(port)
    lines = log_path.read_text(encoding="utf-8").splitlines()
    accept_lines = [line for line in lines if "cannot accept" in line or "logger=asyncio" in line]
    assert len(accept_lines) == 1, accept_lines[:5]
    assert "Too many open files" in accept_lines[0]
    assert not any("Traceback" in line or "out of system resource" in line for line in lines)
    # The poller fails too (no descriptors): a line or two per pass, not thousands.
    # (Before the guard: ~67,000 lines in 5 s here, asyncio's "socket.accept() out of system resource".)
    assert len(lines) < 100, lines[:20]
    errors = value(samples, "northflank_exporter_http_accept_errors_total") or 0
    # At most one failure per asyncio retry (one a second), not one per queued connection.
    assert 1 <= errors <= recovered_after + 4 * read_timeout + 5
    print(
        f"\nfigures: accept failures {errors:g}, {len(accept_lines)} line(s) about them; recovered after "
        f"{recovered_after:.2f}s"
    )


# --- in-process: per-connection timeouts and the bound ---------------------------------------------


@contextlib.asynccontextmanager
async def exporter(**settings: Any) -> AsyncIterator[RunningExporter]:
    async with simulated_exporter("demo", token=TOKEN, start=1_800_000_000.0, **settings) as simulated:
        yield simulated.exporter


async def read_to_close(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the server sent until it closed the connection (a reset counts as a close)."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        return b""


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head


async def trickle(writer: asyncio.StreamWriter, data: bytes, sent: list[int]) -> None:
    """A slowloris: one byte every quarter second (the pace is the attack, not a synchronisation)."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            sent.append(byte)
            await asyncio.sleep(0.25)


REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n\r\n"


async def test_a_slow_header_client_cannot_hold_a_connection_past_the_read_timeout() -> None:
    async with exporter(read_timeout=1.0, idle_timeout=30) as running:
        port = running.exporter.bound_port
        # A new connection, its head sent a byte at a time.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began, sent = time.monotonic(), list[int]()
        slow = asyncio.create_task(trickle(writer, REQUEST, sent))
        answer = await read_to_close(reader, 5)
        cut_after = time.monotonic() - began
        slow.cancel()
        writer.close()
        assert answer == b""
        assert 1.0 <= cut_after < 1.8
        assert 0 < len(sent) < len(REQUEST)
        # A kept-alive connection: a request answered, then the next one trickled (uvicorn's keep-alive
        # timer stops at its first byte and is not started again).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
        began, sent = time.monotonic(), list[int]()
        slow = asyncio.create_task(trickle(writer, REQUEST, sent))
        answer = await read_to_close(reader, 5)
        cut_after = time.monotonic() - began
        slow.cancel()
        writer.close()
        assert answer == b""
        assert 1.0 <= cut_after < 1.8
        assert running.exporter.connections.read_timeouts == 2
        # Complete requests in time are served as before.
        assert (await running.http.get(f"{running.url}/metrics")).status_code == 200


async def test_an_idle_kept_alive_connection_is_closed_at_the_idle_timeout() -> None:
    async with exporter(read_timeout=30.0, idle_timeout=1) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.exporter.bound_port)
        writer.write(REQUEST)
        await read_response(reader)
        began = time.monotonic()
        assert await read_to_close(reader, 5) == b""
        writer.close()
        assert 1.0 <= time.monotonic() - began < 1.8


async def test_connections_beyond_the_bound_are_refused_fast() -> None:
    async with exporter(max_connections=3, read_timeout=30.0) as running:
        guard = running.exporter.connections
        port = running.exporter.bound_port
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await eventually(lambda: guard.open == 3, within=5, what="three connections accepted")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        began = time.monotonic()
        answer = await read_to_close(reader, 5)
        refused_in = time.monotonic() - began
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nConnection: close\r\n" in answer
        assert refused_in < 0.5
        assert guard.refused == 1
        # The refusal frees its descriptor at once; the held connections were left alone.
        assert guard.open == 3
        assert not any(reader.at_eof() for reader, _ in held)
        # A place given back is a place for the next scrape.
        held[0][1].close()
        await eventually(lambda: guard.open == 2, within=5, what="a place given back")
        response = await running.http.get(f"{running.url}/metrics")
        assert response.status_code == 200
        assert value(parse_samples(response.text), "northflank_exporter_http_connections_refused_total") == 1
        for _, held_writer in held[1:]:
            held_writer.close()


# --- the pieces, without sockets -----------------------------------------------------------------


def test_the_bound_leaves_a_reserve_below_the_open_files_limit() -> None:
    assert connection_limit(128, reserve=40, soft_nofile=1024) == (128, None)
    limit, note = connection_limit(1000, reserve=40, soft_nofile=128)
    assert limit == 88
    assert note is not None
    assert (
        "--web.max-connections=1000 lowered to 88: the open files limit (RLIMIT_NOFILE, ulimit -n) is 128"
        in note
    )
    assert connection_limit(128, reserve=40, soft_nofile=20)[0] == 1
    assert connection_limit(5000, reserve=40, soft_nofile=resource.RLIM_INFINITY) == (5000, None)


def test_a_throttled_log_writes_one_line_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    logger = logging.getLogger("tests.throttled")
    throttled = ThrottledLog(logger, logging.WARNING, interval=60, monotonic=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tests.throttled"):
        for _ in range(1000):
            throttled("accept failed: %s", "EMFILE")
            now[0] += 0.01
        now[0] = 161.0
        throttled("accept failed: %s", "EMFILE")
    assert [record.getMessage() for record in caplog.records] == [
        "accept failed: EMFILE",
        "accept failed: EMFILE (999 more like it in the last 60s not logged)",
    ]

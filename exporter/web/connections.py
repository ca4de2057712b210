"""Keeps the HTTP side from starving the process of file descriptors.

Three guards, all per server (no module state):

- ``GuardedListener``, the listening socket: counts every accepted connection until its socket is closed
  (TLS handshakes included, which no protocol sees), refuses the ones beyond the bound at once (accept,
  answer 503 on plain HTTP, close), and turns the accept loop's EMFILE/ENFILE storm into one failure per
  asyncio retry (1 s) and one log line per interval.
- ``with_read_timeout``, a uvicorn h11 protocol class closing a connection whose client has not sent a
  complete request within the read timeout, counted from the connection or, on a kept-alive connection,
  from the first byte of the next request. uvicorn has no such timeout: a client that never sends, or
  sends a byte a second, holds its connection (and its fd) for ever.
- ``connection_limit``: the bound, lowered below RLIMIT_NOFILE by a reserve so that the API poller
  always has descriptors left when the HTTP side is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import h11
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from uvicorn.protocols.http.h11_impl import H11Protocol

from exporter.metrics import (
    HTTP_ACCEPT_ERRORS,
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_MAX,
    HTTP_CONNECTIONS_REFUSED,
    HTTP_READ_TIMEOUTS,
)

log = logging.getLogger(__name__)

#: accept() failures meaning "no descriptor or memory left": asyncio retries them after 1 s.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: Descriptors kept out of the connection bound whatever the concurrency: the interpreter, the
#: listening socket, the event loop's selector and self-pipe, stdio, the API client's DNS and TLS files.
FD_RESERVE_BASE = 32

#: How often, at most, each kind of connection problem is logged.
LOG_INTERVAL_SECONDS = 60.0

#: Refused connections drained in one accept() call before the loop gets a turn again.
_REFUSALS_PER_CALL = 64

_REFUSAL_BODY = b"Too many open connections to the exporter; retry in a moment.\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"Retry-After: 1\r\n"
    b"\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


def fd_reserve(concurrency: int) -> int:
    """Descriptors left to the rest of the process: the base, plus two per API request in flight (its
    connection and, while it is replaced, the next one)."""
    return FD_RESERVE_BASE + 2 * concurrency


def connection_limit(
    configured: int, *, reserve: int, soft_nofile: int | None = None
) -> tuple[int, str | None]:
    """The bound on open HTTP connections: ``configured``, lowered to RLIMIT_NOFILE's soft limit minus
    ``reserve`` (at least 1); with the reason for lowering it, to log, or None."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if soft_nofile is None else soft_nofile
    if soft == resource.RLIM_INFINITY or configured <= soft - reserve:
        return configured, None
    limit = max(1, soft - reserve)
    return limit, (
        f"--web.max-connections={configured} lowered to {limit}: the open files limit (RLIMIT_NOFILE, "
        f"ulimit -n) is {soft} and {reserve} descriptors are kept for the API client and the process"
    )


class ThrottledLog:
    """One line per interval at most; the next line says how many were held back since the last one."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        *,
        interval: float = LOG_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._monotonic = monotonic
        self._last: float | None = None
        self._held_back = 0

    def __call__(self, message: str, *args: object) -> None:
        now = self._monotonic()
        if self._last is not None and now - self._last < self._interval:
            self._held_back += 1
            return
        if self._held_back:
            message += f" ({self._held_back} more like it in the last {self._interval:g}s not logged)"
        self._last, self._held_back = now, 0
        self._logger.log(self._level, message, *args)


class ConnectionGuard:
    """The open-connection count, its bound, and what was refused, timed out or failed."""

    def __init__(
        self,
        limit: int,
        *,
        log_interval: float = LOG_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.read_timeouts = 0
        self.accept_errors = 0
        self._log_refused = ThrottledLog(log, logging.WARNING, interval=log_interval, monotonic=monotonic)
        self._log_timeout = ThrottledLog(log, logging.INFO, interval=log_interval, monotonic=monotonic)
        self._log_accept = ThrottledLog(log, logging.ERROR, interval=log_interval, monotonic=monotonic)

    def admit(self) -> bool:
        if self.open >= self.limit:
            self.refused += 1
            self._log_refused(
                "refused an HTTP connection: %d open, the most allowed (--web.max-connections)", self.open
            )
            return False
        self.open += 1
        return True

    def released(self) -> None:
        self.open -= 1

    def read_timed_out(self) -> None:
        self.read_timeouts += 1
        self._log_timeout("closed an HTTP connection whose client did not send a complete request in time")

    def accept_failed(self, error: OSError) -> None:
        self.accept_errors += 1
        self._log_accept(
            "cannot accept HTTP connections: %s (the open files limit, ulimit -n, is reached); "
            "retrying every second",
            error.strerror or errno.errorcode.get(error.errno or 0, "resource error"),
        )


class AcceptResourceError(OSError):
    """An accept() failure already counted and logged by the guard: the loop's handler stays quiet."""


class _CountedSocket(socket.socket):
    """An accepted connection that gives its place back once closed (or collected without a close)."""

    _guard: ConnectionGuard | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()

    def __del__(self) -> None:
        self._give_back()
        super().__del__()  # type: ignore[misc]  # _socket.socket closes the descriptor here

    def _give_back(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.released()


class GuardedListener(socket.socket):
    """A listening socket whose accept() admits connections within the guard's bound only."""

    def __init__(self, family: int, type: int, proto: int, *, guard: ConnectionGuard, tls: bool) -> None:
        super().__init__(family, type, proto)
        self._guard = guard
        # Plaintext is no answer to a TLS client: it only sees the connection closed.
        self._refusal = b"" if tls else _REFUSAL
        self._failing = False

    def accept(self) -> tuple[socket.socket, Any]:
        for _ in range(_REFUSALS_PER_CALL):
            try:
                conn, address = super().accept()
            except OSError as error:
                if error.errno not in RESOURCE_ERRNOS:
                    raise
                raise self._out_of_resources(error) from None
            if self._guard.admit():
                counted = _CountedSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
                counted._guard = self._guard
                return counted, address
            _refuse(conn, self._refusal)
        # Let the loop run; the listening socket is still readable if more are waiting.
        raise BlockingIOError(errno.EAGAIN, "refused connections, more may be waiting")

    def _out_of_resources(self, error: OSError) -> OSError:
        # asyncio's accept loop retries up to `backlog` (2048) times per wake-up and reports every
        # failure to the loop's exception handler: the first failure is passed on (asyncio then stops
        # reading the socket for a second), the rest of this wake-up ends the loop early.
        if self._failing:
            return BlockingIOError(errno.EAGAIN, "accept paused")
        with contextlib.suppress(RuntimeError):  # outside a loop there are no rounds to end
            asyncio.get_running_loop().call_soon(self._end_failing_round)
            self._failing = True
        self._guard.accept_failed(error)
        return AcceptResourceError(error.errno, error.strerror)

    def _end_failing_round(self) -> None:
        self._failing = False


def _refuse(conn: socket.socket, answer: bytes) -> None:
    with conn:
        conn.setblocking(False)
        # Read what already came, so that closing with unread data does not reset the connection
        # before the client has read the 503.
        with contextlib.suppress(OSError):
            conn.recv(65536)
        if answer:
            with contextlib.suppress(OSError):
                conn.send(answer)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Keep the guard's accept failures out of the loop's exception handler (they are logged once per
    interval by the guard); other reports go where they went before. Returns the undo."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), AcceptResourceError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return lambda: loop.set_exception_handler(previous)


def with_read_timeout(
    base: type[asyncio.Protocol], seconds: float, guard: ConnectionGuard | None = None
) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's h11 protocol or a subclass) closing connections whose client owes a request
    for longer than ``seconds``: from the connection, or from the first byte after a kept-alive idle
    period (uvicorn's keep-alive timer covers the idle period itself, and stops at that byte)."""
    if not issubclass(base, H11Protocol):
        raise TypeError(f"the read timeout needs uvicorn's h11 protocol, not {base.__name__}")

    class ReadTimeout(base):  # type: ignore[valid-type,misc]
        _read_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._follow_request()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_request()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow_request()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_deadline()
            super().connection_lost(exc)

        def _follow_request(self) -> None:
            owed = (
                self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
                and self.timeout_keep_alive_task is None
                and not self.transport.is_closing()
            )
            if not owed:
                self._stop_deadline()
            elif self._read_deadline is None:
                # Armed once per request, never pushed back by a byte: a trickle cannot keep it alive.
                self._read_deadline = self.loop.call_later(seconds, self._read_timed_out)

        def _stop_deadline(self) -> None:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None

        def _read_timed_out(self) -> None:
            self._read_deadline = None
            if guard is not None:
                guard.read_timed_out()
            # abort, not close: close would wait for buffered output a stalled client never reads.
            self.transport.abort()

    ReadTimeout.__name__ = f"ReadTimeout{base.__name__}"
    return ReadTimeout


class ConnectionCollector(Collector):
    """The guard's figures, read at scrape time."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        guard = self._guard
        yield GaugeMetricFamily(HTTP_CONNECTIONS.name, HTTP_CONNECTIONS.help, value=guard.open)
        yield GaugeMetricFamily(HTTP_CONNECTIONS_MAX.name, HTTP_CONNECTIONS_MAX.help, value=guard.limit)
        for family, value in (
            (HTTP_CONNECTIONS_REFUSED, guard.refused),
            (HTTP_READ_TIMEOUTS, guard.read_timeouts),
            (HTTP_ACCEPT_ERRORS, guard.accept_errors),
        ):
            yield CounterMetricFamily(family.name, family.help, value=value)

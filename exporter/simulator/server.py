"""Serving a :class:`~exporter.simulator.app.Simulator` over a real socket with uvicorn.

For tests and the exporter's demo mode, in the running event loop::

    async with serve(simulator) as url:        # 127.0.0.1 on a free port
        ...                                    # url is e.g. "http://127.0.0.1:40123"

The server never installs signal handlers (the program that runs it keeps its own) and does not
touch the logging configuration (beyond a filter on ``uvicorn.error`` that drops the tracebacks of
the ``reset`` fault's deliberate disconnections). Stopping it ends any request a ``hang`` fault holds
(with a 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn

from exporter.web.serving import Server

from .app import Simulator
from .faults import SimulatedConnectionReset

#: How long a stopping server waits for requests in flight before dropping them.
GRACEFUL_SHUTDOWN_SECONDS = 2


def _not_a_simulated_reset(record: logging.LogRecord) -> bool:
    """Drop uvicorn's traceback for a ``reset`` fault: the connection was dropped on purpose."""
    return not (record.exc_info and isinstance(record.exc_info[1], SimulatedConnectionReset))


def format_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimulatorServer:
    """A uvicorn server for a simulator, started and stopped in the current event loop."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the server is not started")
        return format_url(self.host, self._socket.getsockname()[1])

    async def start(self) -> str:
        """Bind (port 0: a free port), start serving, and return the base URL once it accepts requests."""
        error_log = logging.getLogger("uvicorn.error")
        if _not_a_simulated_reset not in error_log.filters:
            error_log.addFilter(_not_a_simulated_reset)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self.port), family=family)
        sock.setblocking(False)
        config = uvicorn.Config(
            self.simulator.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        server = Server(config)
        self._socket, self._server = sock, server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="simulator-server")
        ready = asyncio.create_task(server.ready.wait())
        try:
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._task.done():
            sock.close()
            self._task.result()  # raise what stopped it
            raise RuntimeError("the simulator server stopped while starting")
        return self.url

    async def stop(self) -> None:
        server, task, sock = self._server, self._task, self._socket
        if server is None or task is None:
            return
        self.simulator.release_hangs()
        server.should_exit = True
        try:
            await task
        finally:
            if sock is not None:
                sock.close()
            self._server = self._task = None

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then stop (for ``python -m exporter.simulator``)."""
        if self._task is None:
            raise RuntimeError("start() first")
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            await self.stop()


@contextlib.asynccontextmanager
async def serve(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve the simulator on ``host:port`` (port 0: a free one) for the block; yields the base URL."""
    server = SimulatorServer(simulator, host, port)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


__all__ = ["SimulatorServer", "format_url", "serve"]

"""The uvicorn pieces both servers use: the Config that serves TLS the way a web config says and
guards connections, and the Server that leaves signals to whoever runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from exporter.web.config import WebConfig
from exporter.web.connections import ConnectionGuard, with_read_timeout
from exporter.web.tls import build_ssl_context, san_checking


class UvicornConfig(uvicorn.Config):
    """uvicorn's Config serving TLS the way a web config says (context built here, at construction)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        web_config: WebConfig | None = None,
        read_timeout: float | None = None,
        connections: ConnectionGuard | None = None,
        **kwargs: Any,
    ) -> None:
        """``read_timeout``: seconds a client has to send a complete request (see connections.py);
        ``connections`` counts the connections that run out of it."""
        super().__init__(app, **kwargs)
        self._read_timeout = read_timeout
        self._connections = connections
        tls = web_config.tls if web_config is not None else None
        self._ssl_context = build_ssl_context(web_config) if web_config is not None and tls else None
        self._allowed_sans = tls.client_allowed_sans if tls is not None else None

    def load(self) -> None:
        super().load()
        if self._ssl_context is not None:
            self.ssl = self._ssl_context
        if self._allowed_sans is not None:
            self.http_protocol_class = san_checking(self.http_protocol_class, self._allowed_sans)
        if self._read_timeout is not None:
            self.http_protocol_class = with_read_timeout(
                self.http_protocol_class, self._read_timeout, self._connections
            )


class Server(uvicorn.Server):
    """uvicorn without its own signal handling (the exporter, the simulator's ``__main__`` or pytest owns
    SIGTERM/SIGINT and stops everything), saying when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

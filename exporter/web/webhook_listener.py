"""The webhook's own listener (``--webhook.listen-address``): a second uvicorn server on the exporter's event
loop serving only :func:`~exporter.web.webhook.create_webhook_app`, so that the port exposed to Northflank
(the internet) serves nothing but ``POST /webhook`` while ``/metrics`` stays on a private one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from exporter.config import ListenAddress
from exporter.web.connections import ConnectionGuard
from exporter.web.server import bind_socket
from exporter.web.serving import Server, UvicornConfig
from exporter.web.webhook import WEBHOOK_PATH, WebhookReceiver, create_webhook_app

log = logging.getLogger(__name__)


class WebhookListener:
    """Binds, serves and stops the webhook's server. Its connections count against the exporter's bound
    (``connections``): one budget of descriptors for both listeners."""

    def __init__(
        self,
        receiver: WebhookReceiver,
        address: ListenAddress,
        *,
        connections: ConnectionGuard,
        read_timeout: float,
        idle_timeout: int,
    ) -> None:
        self.address = address
        self._connections = connections
        self._server = Server(
            UvicornConfig(
                create_webhook_app(receiver),
                http="h11",
                read_timeout=read_timeout,
                timeout_keep_alive=idle_timeout,
                connections=connections,
                host=address.host,
                port=address.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def start(self) -> int:
        """Bind (OSError, worded, when the address is taken) and serve; the bound port."""
        sock = bind_socket(self.address, guard=self._connections)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="webhook")
        bound = ListenAddress(self.address.host, self.port)
        log.info("webhook listening on %s, at POST %s", bound, WEBHOOK_PATH)
        return self.port

    async def stop(self, grace: float) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), grace)
        if self._socket is not None:
            self._socket.close()


__all__ = ["WebhookListener"]

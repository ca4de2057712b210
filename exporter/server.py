"""The exporter's HTTP surface: /metrics (or --web.telemetry-path), a landing page and health probes.

Handlers only read: /metrics renders the current snapshot, /-/ready reads a flag of it. Nothing here
waits on the Northflank API.
"""

from __future__ import annotations

import gzip
import html
import socket
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from exporter.config import ListenAddress
from exporter.exposition import CONTENT_TYPE
from exporter.snapshot import Snapshot
from exporter.webconfig import WebConfig, WebSecurityMiddleware

_LANDING = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Northflank backup exporter</title></head>
<body>
<h1>Northflank backup exporter</h1>
<p>Version {version}. Metrics about the backups of Northflank database addons, read from the Northflank API
by a background poll.</p>
{banner}
<ul>
<li><a href="{metrics}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"""


_NOT_READY = "Not ready: the first refresh from the Northflank API has not finished.\n"


def create_app(
    *,
    render_metrics: Callable[[], bytes],
    snapshot: Callable[[], Snapshot],
    telemetry_path: str,
    version: str,
    demo: bool = False,
    web_config: WebConfig | None = None,
) -> Starlette:
    """The app; with ``web_config``, its basic auth, headers and rate limit cover every path."""
    banner = (
        "<p><strong>DEMO MODE: every value here comes from a built-in simulator, not from Northflank."
        "</strong></p>"
        if demo
        else ""
    )
    landing = _LANDING.format(
        version=html.escape(version), metrics=html.escape(telemetry_path), banner=banner
    )

    async def index(_: Request) -> Response:
        return HTMLResponse(landing)

    async def metrics(request: Request) -> Response:
        # Always the text format 0.0.4: every Prometheus reads it, whatever it prefers in Accept.
        body = render_metrics()
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=CONTENT_TYPE, headers=headers)

    async def healthy(_: Request) -> Response:
        return PlainTextResponse("Healthy.\n")

    async def ready(_: Request) -> Response:
        if snapshot().ready:
            return PlainTextResponse("Ready.\n")
        return PlainTextResponse(_NOT_READY, 503)

    return Starlette(
        routes=[
            Route("/", index),
            Route(telemetry_path, metrics),
            Route("/-/healthy", healthy),
            Route("/-/ready", ready),
        ],
        middleware=[Middleware(WebSecurityMiddleware, config=web_config)] if web_config else None,
    )


def bind_socket(address: ListenAddress) -> socket.socket:
    """Bind the listening socket up front so that a taken port is an error we can word, not an exit."""
    try:
        if address.host in ("", "::") and socket.has_dualstack_ipv6():
            family, sockaddr, dualstack = socket.AF_INET6, ("", address.port), True
        else:
            infos = socket.getaddrinfo(
                address.host or "0.0.0.0", address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, resolved = infos[0]
            sockaddr, dualstack = (str(resolved[0]), int(resolved[1])), False
        # Built by hand rather than by socket.create_server: asyncio sets TCP_NODELAY on accepted
        # connections only when the listening socket says IPPROTO_TCP, and without it every response
        # after the first on a kept-alive scrape connection waits ~40 ms for delayed ACKs.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dualstack else 1)
            sock.bind(sockaddr)
            sock.listen(socket.SOMAXCONN)
        except OSError:
            sock.close()
            raise
    except OSError as error:
        raise OSError(f"cannot listen on {address}: {error.strerror or error}") from None
    sock.setblocking(False)
    return sock

"""The exporter's HTTP surface: /metrics (or --web.telemetry-path), a landing page and health probes.

Handlers only read: /metrics renders the current snapshot, /-/ready reads a flag of it. Nothing here
waits on the Northflank API.
"""

from __future__ import annotations

import gzip
import html
import re
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
from exporter.web.config import WebConfig
from exporter.web.connections import ConnectionGuard, GuardedListener
from exporter.web.middleware import WebSecurityMiddleware
from exporter.web.scrape_cache import BodyResponse, ScrapeCache
from exporter.web.status_view import StatusSource
from exporter.web.statuspage import addons_json, status_page

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


#: Ready once discovery has succeeded (the projects listed, every project's addon listing answered),
#: then for good; not while it never has. What follows (each addon's backups, then its schedules and
#: restores) is served as it comes: northflank_exporter_initial_read_ratio shows how far it is.
_NOT_READY = (
    "Not ready: the exporter has not yet listed the Northflank projects and their addons (discovery has "
    "not succeeded: the API refuses the token or cannot be reached, or the first listings are still "
    "running). northflank_up and northflank_exporter_refresh_errors_total on /metrics say why.\n"
)


#: Not ready while the API refuses the token, even after discovery once succeeded: a revoked or mistyped
#: token is a configuration to fix (a rollout with it must not go Ready), not an outage to ride out.
_REFUSED_NOT_READY = (
    "Not ready: the Northflank API refuses the token (HTTP 401 on its latest answer). Check the token "
    "(--config.check says what the API answers); the last good data is still served on /metrics, with "
    'northflank_exporter_refresh_errors_total{reason="auth"} counting the refusals.\n'
)


_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def wants_gzip(accept_encoding: str | None) -> bool:
    """Whether to gzip, by an Accept-Encoding header (RFC 9110, 12.5.3): codings compared without case,
    ``x-gzip`` as ``gzip``, ``*`` for any coding not named, ``q=0`` as "not this one"; gzip when it is
    acceptable and the client does not prefer identity. An element that cannot be parsed is ignored."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, *params = (part.strip() for part in element.split(";"))
        coding = coding.lower()
        if not coding:
            continue
        weight: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else None
        if weight is not None:
            coding = "gzip" if coding == "x-gzip" else coding
            weights[coding] = max(weight, weights.get(coding, weight))
    star = weights.get("*")
    gzip_weight = weights.get("gzip", star if star is not None else 0.0)
    # identity is acceptable unless excluded, but preferred over gzip only when the client says so.
    identity_weight = weights.get("identity", star if star is not None else 0.0)
    return gzip_weight > 0 and gzip_weight >= identity_weight


def create_app(
    *,
    render_metrics: Callable[[], bytes],
    snapshot: Callable[[], Snapshot],
    telemetry_path: str,
    version: str,
    demo: bool = False,
    web_config: WebConfig | None = None,
    status: StatusSource | None = None,
    scrapes: ScrapeCache | None = None,
) -> Starlette:
    """The app; with ``web_config``, its basic auth, headers and rate limit cover every path. With
    ``status``, ``/`` is the status page and ``/api/v1/addons`` its JSON (else ``/`` is a landing page)."""
    banner = (
        "<p><strong>DEMO MODE: every value here comes from a built-in simulator, not from Northflank."
        "</strong></p>"
        if demo
        else ""
    )
    landing = _LANDING.format(
        version=html.escape(version), metrics=html.escape(telemetry_path), banner=banner
    )

    async def index(request: Request) -> Response:
        if status is not None:
            return status_page(status, request, telemetry_path=telemetry_path)
        return HTMLResponse(landing)

    async def addons(request: Request) -> Response:
        if status is None:
            return PlainTextResponse("Not Found\n", 404)
        return addons_json(status, request)

    async def metrics(request: Request) -> Response:
        # Always the text format 0.0.4: every Prometheus reads it, whatever it prefers in Accept.
        # Caches between us and the scraper must not hand a gzip body to a client that did not ask.
        headers = {"Vary": "Accept-Encoding"}
        if scrapes is not None:  # the exporter's: one rendering per change for every scraper
            try:
                shared = await scrapes.body(gzip=wants_gzip(request.headers.get("accept-encoding")))
            except Exception as error:
                scrapes.failed("render", error)
                return PlainTextResponse("The metrics could not be rendered; see the exporter's log.\n", 500)
            return BodyResponse(shared, scrapes, headers)
        body = render_metrics()
        if wants_gzip(request.headers.get("accept-encoding")):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=CONTENT_TYPE, headers=headers)

    async def healthy(_: Request) -> Response:
        return PlainTextResponse("Healthy.\n")

    async def ready(_: Request) -> Response:
        current = snapshot()
        if current.token_refused:
            return PlainTextResponse(_REFUSED_NOT_READY, 503)
        if current.ready:
            return PlainTextResponse("Ready.\n")
        return PlainTextResponse(_NOT_READY, 503)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/v1/addons", addons),
            Route(telemetry_path, metrics),
            Route("/-/healthy", healthy),
            Route("/-/ready", ready),
        ],
        middleware=[Middleware(WebSecurityMiddleware, config=web_config)] if web_config else None,
    )


def bind_socket(
    address: ListenAddress, *, guard: ConnectionGuard | None = None, tls: bool = False
) -> socket.socket:
    """Bind the listening socket up front so that a taken port is an error we can word, not an exit.
    With ``guard``, a ``GuardedListener``: connections beyond its bound are refused as they are accepted
    (with a plain-text 503 unless ``tls``)."""
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
        sock = (
            socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            if guard is None
            else GuardedListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, guard=guard, tls=tls)
        )
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

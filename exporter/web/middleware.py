"""The ASGI middleware that puts the web config's rate limit, headers and basic auth around every path,
and swaps to a config read again on SIGHUP.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.buckets import TokenBucket
from exporter.web.auth import BasicAuth
from exporter.web.config import RateLimit, WebConfig


async def _plain_response(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def rate_bucket(limit: RateLimit, now: float) -> TokenBucket:
    """The toolkit's limiter (Go's rate.Limiter): ``burst`` requests at once, one more every ``interval``."""
    return TokenBucket.full(rate=1.0 / limit.interval, capacity=float(limit.burst), now=now)


def _header_pairs(config: WebConfig) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in config.headers.items()]


class WebSecurityMiddleware:
    """Pure ASGI middleware, in the toolkit's order: rate limit (429), configured headers, basic auth (401).

    It covers every path (/metrics, /, the health probes), as the toolkit's handler does. :meth:`use`
    swaps in a config read again (SIGHUP); a request sees one config from its start to its end.
    """

    def __init__(
        self, app: ASGIApp, config: WebConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.config = config
        self._clock = clock
        self.auth = BasicAuth(config.users) if config.users else None
        self.limiter = rate_bucket(config.rate_limit, clock()) if config.rate_limit else None
        self._headers = _header_pairs(config)

    def use(self, config: WebConfig) -> None:
        """Serve the requests that come next by ``config``. Users and a rate limit that did not change keep
        their state (the verified-password cache, the bucket's level)."""
        if dict(config.users) != dict(self.config.users):
            self.auth = BasicAuth(config.users) if config.users else None
        if config.rate_limit != self.config.rate_limit:
            self.limiter = rate_bucket(config.rate_limit, self._clock()) if config.rate_limit else None
        self._headers = _header_pairs(config)
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth, limiter, headers = self.auth, self.limiter, self._headers
        if limiter is not None and not limiter.allow(self._clock()):
            await _plain_response(send, 429, "Too Many Requests\n", [])
            return
        if headers:
            send = self._with_headers(send, headers)
        if auth is not None:
            authorization = next(
                (value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"),
                None,
            )
            if not await auth.check(authorization):
                await _plain_response(
                    send,
                    401,
                    "Unauthorized\n",
                    [(b"www-authenticate", b"Basic"), (b"x-content-type-options", b"nosniff")],
                )
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), *((k, v) for k, v in extra if k not in present)],
                }
            await send(message)

        return sending

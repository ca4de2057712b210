"""What every request to the simulator passes before its route: the token, the rate limit, the request
log and the injected faults, in that order.

A fault that is an HTTP answer with a body (a bad page, invalid JSON...) is only chosen here and applied
by the route (see :mod:`.routes`); the transport faults (a status without the route, a hang, a reset
connection) are applied here, since no route runs for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .faults import TRANSPORT_KINDS, FaultKind, FaultSpec, SimulatedConnectionReset, status_body
from .protocols import Guarded
from .requestlog import RequestRecord
from .routes import ADMIN_PREFIX, SCOPE_FAULT, SCOPE_NOW


class Gate:
    """Token, rate limit, request log, faults; then the app (the routes)."""

    def __init__(self, simulator: Guarded, api_routes: Sequence[tuple[Route, str]]) -> None:
        self.simulator = simulator
        self._api_routes = api_routes
        self._hangs: set[anyio.Event] = set()

    @property
    def hanging(self) -> int:
        """How many requests a ``hang`` fault holds now."""
        return len(self._hangs)

    def release_hangs(self) -> None:
        """End every hanging request (before a server stops). Call from the event loop serving them."""
        for event in list(self._hangs):
            event.set()

    def _match(self, scope: Scope) -> tuple[str | None, dict[str, str]]:
        for route, template in self._api_routes:
            match, child = route.matches(scope)
            if match is not Match.NONE:
                return template, {k: str(v) for k, v in child.get("path_params", {}).items()}
        return None, {}

    @staticmethod
    def _authorized(scope: Scope, token: str | None) -> bool:
        if token is None:
            return False
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        for name, value in headers:
            if name.lower() == b"authorization":
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and credentials.strip() == token
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        path: str = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if not self._authorized(scope, self.simulator.admin_token):
                await self.simulator.error_response(401, "Unauthorized", path)(scope, receive, send)
                return
            await app(scope, receive, send)
            return

        now = self.simulator.clock.now()
        route, params = self._match(scope)
        record = self.simulator.request_log.add(
            RequestRecord(time=now, method=scope["method"], route=route, path=path)
        )
        scope[SCOPE_NOW] = now
        rate_headers: dict[str, str] = {}

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in rate_headers.items():
                    headers[name] = value
            await send(message)

        if not self._authorized(scope, self.simulator.token):
            await self.simulator.error_response(401, "Unauthorized", path)(scope, receive, logged_send)
            return
        state = self.simulator.rate_limiter.hit(now)
        rate_headers.update(state.headers())
        if not state.allowed:
            extra = {"Retry-After": str(state.reset_after)} if self.simulator.retry_after else {}
            response = self.simulator.error_response(429, "Rate limit exceeded", path, extra)
            await response(scope, receive, logged_send)
            return

        fault = self.simulator.faults.take(route, params) if route is not None else None
        if fault is not None:
            record.fault = fault.spec.kind.value
        if fault is None or fault.spec.kind not in TRANSPORT_KINDS:
            scope[SCOPE_FAULT] = fault
            await app(scope, receive, logged_send)
            return

        spec = fault.spec
        if spec.kind is FaultKind.STATUS:
            body, content_type = status_body(spec, self.simulator.error_id(path))
            headers = {} if spec.retry_after is None else {"Retry-After": str(spec.retry_after)}
            await Response(body, status_code=spec.status, headers=headers, media_type=content_type)(
                scope, receive, logged_send
            )
        elif spec.kind is FaultKind.HANG:
            if await self._hang(receive):
                # Released because the server is stopping: answer as a server going away would.
                response = self.simulator.error_response(503, "Service Unavailable", path)
                await response(scope, receive, logged_send)
        else:
            await self._reset(spec, scope, receive, logged_send, app)

    async def _hang(self, receive: Receive) -> bool:
        """Hold the request until the client leaves (False) or :meth:`release_hangs` (True)."""
        release = anyio.Event()
        self._hangs.add(release)
        try:
            async with anyio.create_task_group() as group:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(until_disconnect)
                await release.wait()
                group.cancel_scope.cancel()
        finally:
            self._hangs.discard(release)
        return release.is_set()

    async def _reset(self, spec: FaultSpec, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await app(scope, receive, capture)
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        cut = len(body) // 2 if spec.size is None else spec.size
        cut = max(0, min(cut, len(body) - 1))
        await send(start)
        await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
        raise SimulatedConnectionReset(
            f"connection reset by the simulator after {cut} of {len(body)} body bytes"
        )


class GateMiddleware:
    """ASGI middleware putting the :class:`Gate` before the routes (HTTP only)."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.gate(scope, receive, send, self.app)


__all__ = ["Gate", "GateMiddleware"]

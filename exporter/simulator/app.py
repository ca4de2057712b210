"""The simulated Northflank API: a starlette app around a :class:`Simulator` (fleet, clock, rate
limiter, faults, request log).

In-process::

    sim = Simulator.from_scenario("demo", clock=FixedClock(t0), seed=1)
    async with sim.client() as client:          # httpx.AsyncClient over httpx.ASGITransport
        projects = (await client.get("/v1/projects")).json()

Over a socket, see :mod:`.server`; as a process, ``python -m exporter.simulator``.

Every request is checked in this order: bearer token (401, not counted against the rate limit),
rate limit (429), injected faults, then the route (404 for an unknown project, addon, backup,
destination or team). Every response past the token check carries ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset``. The admin endpoints under ``/_simulator/`` need
the admin token (by default the initial API token, so that it survives :meth:`Simulator.revoke_token`)
and are neither rate-limited nor logged.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import JsonValue, ValidationError
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.clock import Clock

from . import payloads
from .faults import (
    TRANSPORT_KINDS,
    ActiveFault,
    FaultKind,
    FaultSet,
    FaultSpec,
    SimulatedConnectionReset,
    apply_to_envelope,
    status_body,
    truncate,
)
from .fleet import AddonSpec, Fleet, ProjectSpec, scenario
from .history import BackupRecord, addon_backups, addon_restores, destination_backups, hex_id
from .pagination import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    PaginationError,
    paginate,
    parse_page_request,
)
from .ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW, RateLimiter, RateState
from .requestlog import RequestLog, RequestRecord

DEFAULT_TOKEN = "sim-api-token"  # noqa: S105 - the simulator's default, not a secret
DEFAULT_TEAM_ID = "sim-team"
#: The base URL of the in-process client (any host works with ASGITransport).
IN_PROCESS_URL = "http://northflank.simulator"

PROJECTS = "/v1/projects"
ADDONS = "/v1/projects/{projectId}/addons"
BACKUPS = "/v1/projects/{projectId}/addons/{addonId}/backups"
SCHEDULES = "/v1/projects/{projectId}/addons/{addonId}/backup-schedules"
ADDON_RESTORES = "/v1/projects/{projectId}/addons/{addonId}/restores"
BACKUP_RESTORES = "/v1/projects/{projectId}/addons/{addonId}/backups/{backupId}/restores"
DESTINATIONS = "/v1/backup-destinations"
DESTINATION_BACKUPS = "/v1/backup-destinations/{backupDestinationId}/backups"
#: Every API route template (the team-scoped form is ``TEAM_PREFIX`` + the part after ``/v1``).
API_ROUTES: tuple[str, ...] = (
    PROJECTS,
    ADDONS,
    BACKUPS,
    SCHEDULES,
    ADDON_RESTORES,
    BACKUP_RESTORES,
    DESTINATIONS,
    DESTINATION_BACKUPS,
)
TEAM_PREFIX = "/v1/teams/{teamId}"
ADMIN_PREFIX = "/_simulator"

_NOW = "simulator.now"
_FAULT = "simulator.fault"
_T = TypeVar("_T")


def canonical_route(template: str) -> str:
    """A route template without its team prefix: ``/v1/teams/{teamId}/projects`` -> ``/v1/projects``."""
    if template.startswith(TEAM_PREFIX):
        return "/v1" + template[len(TEAM_PREFIX) :]
    return template


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class _Gate:
    """ASGI middleware: token, rate limit, request log, faults; then the routes."""

    def __init__(self, app: ASGIApp, simulator: Simulator) -> None:
        self.app = app
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.simulator._gate(scope, receive, send, self.app)


class Simulator:
    """A Northflank account, served as an ASGI app (:attr:`app`), under an injected clock."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        clock: Clock,
        seed: int = 0,
        token: str | None = DEFAULT_TOKEN,
        admin_token: str | None = None,
        team_id: str = DEFAULT_TEAM_ID,
        rate_limit: int = DEFAULT_LIMIT,
        rate_window: float = DEFAULT_WINDOW,
        retry_after: bool = True,
        default_per_page: int = DEFAULT_PER_PAGE,
        max_per_page: int = MAX_PER_PAGE,
    ) -> None:
        self.clock = clock
        self.fleet = fleet if fleet.start is not None else fleet.anchored(clock.now())
        self.seed = seed
        self.team_id = team_id
        self.retry_after = retry_after
        self.default_per_page = default_per_page
        self.max_per_page = max_per_page
        self.rate_limiter = RateLimiter(rate_limit, rate_window)
        self.faults = FaultSet()
        self.request_log = RequestLog()
        self._token = token
        self._admin_token = admin_token if admin_token is not None else token
        self._removed: set[str] = set()
        self._hangs: set[anyio.Event] = set()
        self._backup_cache: OrderedDict[tuple[str, float], list[BackupRecord]] = OrderedDict()
        self._api_routes: list[tuple[Route, str]] = []
        self.app: Starlette = self._build_app()

    @classmethod
    def from_scenario(
        cls, name: str, *, clock: Clock, seed: int = 0, n_addons: int | None = None, **options: Any
    ) -> Simulator:
        """A simulator of a named scenario (``demo``, ``e2e``, ``reference``), anchored at ``clock.now()``."""
        return cls(scenario(name, seed, clock.now(), n_addons=n_addons), clock=clock, seed=seed, **options)

    # --- control ---------------------------------------------------------------------------------

    @property
    def start(self) -> float:
        return self.fleet.anchor

    @property
    def token(self) -> str | None:
        return self._token

    def set_token(self, token: str | None) -> None:
        """Accept only this token from now on (None: accept none)."""
        self._token = token

    def revoke_token(self) -> None:
        """Every API request is answered 401 from now on (the admin endpoints keep working)."""
        self._token = None

    def remove_addon(self, addon_id: str) -> None:
        """The addon vanishes: gone from its project's listing, and its URLs answer 404."""
        if self.fleet.addon(addon_id) is None:
            raise KeyError(addon_id)
        self._removed.add(addon_id)

    def restore_addon(self, addon_id: str) -> None:
        self._removed.discard(addon_id)

    def add_fault(self, spec: FaultSpec) -> ActiveFault:
        if spec.route is not None:
            route = canonical_route(spec.route)
            if route not in API_ROUTES:
                raise ValueError(f"unknown route {spec.route!r}; known: {', '.join(API_ROUTES)}")
            spec = spec.model_copy(update={"route": route})
        return self.faults.add(spec)

    def inject(
        self,
        kind: FaultKind | str,
        route: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        times: int | None = None,
        **options: Any,
    ) -> ActiveFault:
        """Shorthand for :meth:`add_fault`: ``sim.inject("status", BACKUPS, status=503, times=2)``."""
        spec = FaultSpec(kind=FaultKind(kind), route=route, params=dict(params or {}), times=times, **options)
        return self.add_fault(spec)

    def clear_faults(self) -> None:
        self.faults.clear()

    def consume(self, requests: int) -> RateState:
        """Spend ``requests`` of the account's rate limit on behalf of its other users (CI, people)."""
        return self.rate_limiter.consume(self.clock.now(), requests)

    def release_hangs(self) -> None:
        """End every hanging request (before a server stops). Call from the event loop serving them."""
        for event in list(self._hangs):
            event.set()

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def client(self, *, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` talking to this simulator in-process, with the API token set."""
        headers = dict(kwargs.pop("headers", {}))
        bearer = token if token is not None else self._token
        if bearer is not None:
            headers.setdefault("Authorization", f"Bearer {bearer}")
        return httpx.AsyncClient(
            transport=self.transport(),
            base_url=kwargs.pop("base_url", IN_PROCESS_URL),
            headers=headers,
            **kwargs,
        )

    # --- data at an instant ----------------------------------------------------------------------

    def backups_at(self, addon: AddonSpec, now: float) -> list[BackupRecord]:
        key = (addon.id, now)
        cached = self._backup_cache.get(key)
        if cached is None:
            cached = addon_backups(self.fleet, addon, self.seed, now)
            self._backup_cache[key] = cached
            if len(self._backup_cache) > 256:
                self._backup_cache.popitem(last=False)
        return cached

    # --- the gate --------------------------------------------------------------------------------

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

    def _error_id(self, path: str) -> str:
        return hex_id(self.seed, "error", len(self.request_log), path, length=20)

    def _error_response(
        self, status: int, message: str, path: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        body = {"error": {"status": status, "message": message, "id": self._error_id(path)}}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    async def _gate(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        path: str = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if not self._authorized(scope, self._admin_token):
                await self._error_response(401, "Unauthorized", path)(scope, receive, send)
                return
            await app(scope, receive, send)
            return

        now = self.clock.now()
        route, params = self._match(scope)
        record = self.request_log.add(RequestRecord(time=now, method=scope["method"], route=route, path=path))
        scope[_NOW] = now
        rate_headers: dict[str, str] = {}

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in rate_headers.items():
                    headers[name] = value
            await send(message)

        if not self._authorized(scope, self._token):
            await self._error_response(401, "Unauthorized", path)(scope, receive, logged_send)
            return
        state = self.rate_limiter.hit(now)
        rate_headers.update(state.headers())
        if not state.allowed:
            extra = {"Retry-After": str(state.reset_after)} if self.retry_after else {}
            response = self._error_response(429, "Rate limit exceeded", path, extra)
            await response(scope, receive, logged_send)
            return

        fault = self.faults.take(route, params) if route is not None else None
        if fault is not None:
            record.fault = fault.spec.kind.value
        if fault is None or fault.spec.kind not in TRANSPORT_KINDS:
            scope[_FAULT] = fault
            await app(scope, receive, logged_send)
            return

        spec = fault.spec
        if spec.kind is FaultKind.STATUS:
            body, content_type = status_body(spec, self._error_id(path))
            headers = {} if spec.retry_after is None else {"Retry-After": str(spec.retry_after)}
            await Response(body, status_code=spec.status, headers=headers, media_type=content_type)(
                scope, receive, logged_send
            )
        elif spec.kind is FaultKind.HANG:
            if await self._hang(receive):
                # Released because the server is stopping: answer as a server going away would.
                response = self._error_response(503, "Service Unavailable", path)
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

    # --- API routes ------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        handlers: dict[str, Callable[[Request], Any]] = {
            PROJECTS: self._projects,
            ADDONS: self._addons,
            BACKUPS: self._backups,
            SCHEDULES: self._schedules,
            ADDON_RESTORES: self._addon_restores,
            BACKUP_RESTORES: self._backup_restores,
            DESTINATIONS: self._destinations,
            DESTINATION_BACKUPS: self._destination_backups,
        }
        routes: list[BaseRoute] = []
        for template, handler in handlers.items():
            for path in (template, TEAM_PREFIX + template.removeprefix("/v1")):
                route = Route(path, handler, methods=["GET"])
                routes.append(route)
                self._api_routes.append((route, template))
        routes += [
            Route(ADMIN_PREFIX + "/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
            Route(ADMIN_PREFIX + "/faults/{faultId:int}", self._admin_fault, methods=["DELETE"]),
            Route(ADMIN_PREFIX + "/addons/{addonId}", self._admin_addon, methods=["DELETE", "PUT"]),
            Route(ADMIN_PREFIX + "/token", self._admin_token_route, methods=["PUT"]),
            Route(ADMIN_PREFIX + "/rate-limit/consume", self._admin_consume, methods=["POST"]),
            Route(ADMIN_PREFIX + "/requests", self._admin_requests, methods=["GET", "DELETE"]),
        ]
        return Starlette(
            routes=routes,
            middleware=[Middleware(_Gate, simulator=self)],
            exception_handlers={ApiError: self._on_api_error, HTTPException: self._on_http_exception},
        )

    async def _on_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return self._error_response(exc.status, exc.message, request.url.path, exc.headers)

    async def _on_http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._error_response(exc.status_code, exc.detail, request.url.path, exc.headers)

    @staticmethod
    def _now(request: Request) -> float:
        now: float = request.scope[_NOW]
        return now

    def _team(self, request: Request) -> None:
        team = request.path_params.get("teamId")
        if team is not None and team != self.team_id:
            raise ApiError(404, f"Team {team} not found")

    def _project(self, request: Request) -> ProjectSpec:
        self._team(request)
        project_id = request.path_params["projectId"]
        project = self.fleet.project(project_id)
        if project is None:
            raise ApiError(404, f"Project {project_id} not found")
        return project

    def _addon(self, request: Request) -> AddonSpec:
        project = self._project(request)
        addon_id = request.path_params["addonId"]
        addon = self.fleet.addon(addon_id)
        if addon is None or addon.project_id != project.id or addon_id in self._removed:
            raise ApiError(404, f"Addon {addon_id} not found")
        return addon

    def _page(
        self,
        request: Request,
        key: str | None,
        items: Sequence[_T],
        item_id: Callable[[_T], str],
        render: Callable[[_T], dict[str, Any]],
    ) -> Response:
        fault: ActiveFault | None = request.scope.get(_FAULT)
        try:
            page_request = parse_page_request(
                request.query_params, default_per_page=self.default_per_page, max_per_page=self.max_per_page
            )
            scope = canonical_route(request.url.path)
            page = paginate(items, item_id, page_request, seed=self.seed, scope=scope)
        except PaginationError as exc:
            raise ApiError(400, str(exc)) from None
        rendered = [render(item) for item in page.items]
        envelope: dict[str, Any] = {
            "data": rendered if key is None else {key: rendered},
            "pagination": page.pagination(),
        }
        if fault is not None:
            apply_to_envelope(fault.spec, envelope, request_cursor=page.request_cursor)
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        if fault is not None and fault.spec.kind is FaultKind.INVALID_JSON:
            body = truncate(body)
        return Response(body, media_type="application/json")

    async def _projects(self, request: Request) -> Response:
        self._team(request)
        return self._page(
            request,
            "projects",
            self.fleet.projects,
            lambda p: p.id,
            lambda p: payloads.project_json(p, self.seed),
        )

    async def _addons(self, request: Request) -> Response:
        project = self._project(request)
        addons = [a for a in self.fleet.addons_of(project.id) if a.id not in self._removed]
        return self._page(
            request, "addons", addons, lambda a: a.id, lambda a: payloads.addon_json(a, self.seed)
        )

    async def _backups(self, request: Request) -> Response:
        addon = self._addon(request)
        backups = self.backups_at(addon, self._now(request))
        return self._page(request, "backups", backups, lambda b: b.id, payloads.backup_json)

    async def _schedules(self, request: Request) -> Response:
        addon = self._addon(request)
        return self._page(
            request,
            "schedules",
            addon.schedules,
            lambda s: s.id,
            lambda s: payloads.schedule_json(s, self.fleet),
        )

    async def _addon_restores(self, request: Request) -> Response:
        addon = self._addon(request)
        restores = addon_restores(self.fleet, addon, self.seed, self._now(request))
        return self._page(
            request,
            "restores",
            restores,
            lambda r: str(r.id),
            lambda r: payloads.restore_json(r, with_backup_id=True),
        )

    async def _backup_restores(self, request: Request) -> Response:
        addon = self._addon(request)
        now = self._now(request)
        backup_id = request.path_params["backupId"]
        if not any(b.id == backup_id for b in self.backups_at(addon, now)):
            raise ApiError(404, f"Backup {backup_id} not found")
        restores = [r for r in addon_restores(self.fleet, addon, self.seed, now) if r.backup_id == backup_id]
        return self._page(
            request,
            "restores",
            restores,
            lambda r: str(r.id),
            lambda r: payloads.restore_json(r, with_backup_id=False),
        )

    async def _destinations(self, request: Request) -> Response:
        self._team(request)
        return self._page(
            request, "backupDestinations", self.fleet.destinations, lambda d: d.id, payloads.destination_json
        )

    async def _destination_backups(self, request: Request) -> Response:
        self._team(request)
        destination_id = request.path_params["backupDestinationId"]
        if self.fleet.destination(destination_id) is None:
            raise ApiError(404, f"Backup destination {destination_id} not found")
        records = destination_backups(self.fleet, destination_id, self.seed, self._now(request))
        return self._page(
            request,
            None,
            records,
            lambda r: r.backup.id,
            lambda r: payloads.destination_backup_json(r, self.fleet),
        )

    # --- admin routes ----------------------------------------------------------------------------

    @staticmethod
    async def _json_body(request: Request) -> JsonValue:
        try:
            body: JsonValue = json.loads(await request.body() or b"null")
        except ValueError:
            raise ApiError(400, "the body must be JSON") from None
        return body

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"data": {"faults": [f.as_json() for f in self.faults.active()]}})
        if request.method == "DELETE":
            removed = len(self.faults.active())
            self.faults.clear()
            return JSONResponse({"data": {"removed": removed}})
        body = await self._json_body(request)
        raw = body["faults"] if isinstance(body, dict) and "faults" in body else body
        specs = raw if isinstance(raw, list) else [raw]
        try:
            added = [self.add_fault(FaultSpec.model_validate(spec)) for spec in specs]
        except (ValidationError, ValueError) as exc:
            raise ApiError(400, f"invalid fault: {exc}") from None
        return JSONResponse({"data": {"faults": [f.as_json() for f in added]}}, status_code=201)

    async def _admin_fault(self, request: Request) -> Response:
        if not self.faults.remove(request.path_params["faultId"]):
            raise ApiError(404, "no such fault")
        return JSONResponse({"data": {"removed": 1}})

    async def _admin_addon(self, request: Request) -> Response:
        addon_id = request.path_params["addonId"]
        if self.fleet.addon(addon_id) is None:
            raise ApiError(404, f"Addon {addon_id} not found")
        if request.method == "DELETE":
            self.remove_addon(addon_id)
        else:
            self.restore_addon(addon_id)
        return JSONResponse({"data": {"addonId": addon_id, "removed": addon_id in self._removed}})

    async def _admin_token_route(self, request: Request) -> Response:
        body = await self._json_body(request)
        token = body.get("token") if isinstance(body, dict) else None
        if token is not None and not isinstance(token, str):
            raise ApiError(400, "token must be a string or null")
        self.set_token(token)
        return JSONResponse({"data": {"revoked": token is None}})

    async def _admin_consume(self, request: Request) -> Response:
        body = await self._json_body(request)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, int) or isinstance(requests, bool) or requests < 0:
            raise ApiError(400, "requests must be a non-negative integer")
        state = self.consume(requests)
        return JSONResponse(
            {"data": {"limit": state.limit, "remaining": state.remaining, "reset": state.reset_after}}
        )

    async def _admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.request_log.clear()
            return JSONResponse({"data": {"requests": []}})
        return JSONResponse({"data": {"requests": [r.as_json() for r in self.request_log]}})


__all__ = [
    "ADDONS",
    "ADDON_RESTORES",
    "API_ROUTES",
    "BACKUPS",
    "BACKUP_RESTORES",
    "DEFAULT_TEAM_ID",
    "DEFAULT_TOKEN",
    "DESTINATIONS",
    "DESTINATION_BACKUPS",
    "IN_PROCESS_URL",
    "PROJECTS",
    "SCHEDULES",
    "TEAM_PREFIX",
    "ApiError",
    "Simulator",
    "canonical_route",
]

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

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from exporter.clock import Clock

from .admin import AdminRoutes
from .faults import ActiveFault, FaultKind, FaultSet, FaultSpec
from .fleet import AddonSpec, Fleet
from .gate import Gate, GateMiddleware
from .history import BackupRecord, addon_backups, hex_id
from .pagination import DEFAULT_PER_PAGE, MAX_PER_PAGE
from .ratelimit import DEFAULT_LIMIT, DEFAULT_WINDOW, RateLimiter, RateState
from .requestlog import RequestLog
from .routes import API_ROUTES, ApiError, ApiRoutes, canonical_route
from .scenarios import scenario

DEFAULT_TOKEN = "sim-api-token"  # noqa: S105 - the simulator's default, not a secret
DEFAULT_TEAM_ID = "sim-team"
#: The base URL of the in-process client (any host works with ASGITransport).
IN_PROCESS_URL = "http://northflank.simulator"


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
        self._backup_cache: OrderedDict[tuple[str, float], list[BackupRecord]] = OrderedDict()
        self._api = ApiRoutes(self)
        self._admin = AdminRoutes(self)
        self._gate = Gate(self, self._api.routes)
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

    @property
    def admin_token(self) -> str | None:
        return self._admin_token

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

    def is_removed(self, addon_id: str) -> bool:
        return addon_id in self._removed

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
        self._gate.release_hangs()

    @property
    def hanging(self) -> int:
        """How many requests a ``hang`` fault holds now."""
        return self._gate.hanging

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

    # --- answering ---------------------------------------------------------------------------------

    def error_id(self, path: str) -> str:
        return hex_id(self.seed, "error", len(self.request_log), path, length=20)

    def error_response(
        self, status: int, message: str, path: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        """The API's error body, with an error id that is stable for the same seed and request."""
        body = {"error": {"status": status, "message": message, "id": self.error_id(path)}}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _build_app(self) -> Starlette:
        routes: list[BaseRoute] = [route for route, _ in self._api.routes]
        routes += self._admin.routes
        return Starlette(
            routes=routes,
            middleware=[Middleware(GateMiddleware, gate=self._gate)],
            exception_handlers={ApiError: self._on_api_error, HTTPException: self._on_http_exception},
        )

    async def _on_api_error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ApiError):  # Starlette routes only ApiError here; anything else is a bug
            raise exc
        return self.error_response(exc.status, exc.message, request.url.path, exc.headers)

    async def _on_http_exception(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        return self.error_response(exc.status_code, exc.detail, request.url.path, exc.headers)


__all__ = [
    "DEFAULT_TEAM_ID",
    "DEFAULT_TOKEN",
    "IN_PROCESS_URL",
    "Simulator",
]

"""The API's routes: their templates (each also served under ``TEAM_PREFIX``) and the handlers that
answer them from the fleet at the request's instant, one page at a time."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import payloads
from .faults import ActiveFault, FaultKind, apply_to_envelope, truncate
from .fleet import AddonSpec, ProjectSpec
from .history import RestoreRecord, addon_restores, destination_backups
from .pagination import PaginationError, paginate, parse_page_request
from .protocols import Account

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

#: Where the gate leaves, in the ASGI scope, the instant the request is answered for and its fault.
SCOPE_NOW = "simulator.now"
SCOPE_FAULT = "simulator.fault"
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


class ApiRoutes:
    """The handlers of :data:`API_ROUTES`, reading the simulator's fleet and state."""

    def __init__(self, simulator: Account) -> None:
        self.simulator = simulator
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
        #: Every route with the template it serves (its team-scoped form serves the same template).
        self.routes: list[tuple[Route, str]] = [
            (Route(path, handler, methods=["GET"]), template)
            for template, handler in handlers.items()
            for path in (template, TEAM_PREFIX + template.removeprefix("/v1"))
        ]

    @staticmethod
    def _now(request: Request) -> float:
        now: float = request.scope[SCOPE_NOW]
        return now

    def _team(self, request: Request) -> None:
        team = request.path_params.get("teamId")
        if team is not None and team != self.simulator.team_id:
            raise ApiError(404, f"Team {team} not found")

    def _project(self, request: Request) -> ProjectSpec:
        self._team(request)
        project_id = request.path_params["projectId"]
        project = self.simulator.fleet.project(project_id)
        if project is None:
            raise ApiError(404, f"Project {project_id} not found")
        return project

    def _addon(self, request: Request) -> AddonSpec:
        project = self._project(request)
        addon_id = request.path_params["addonId"]
        addon = self.simulator.fleet.addon(addon_id)
        if addon is None or addon.project_id != project.id or self.simulator.is_removed(addon_id):
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
        fault: ActiveFault | None = request.scope.get(SCOPE_FAULT)
        try:
            page_request = parse_page_request(
                request.query_params,
                default_per_page=self.simulator.default_per_page,
                max_per_page=self.simulator.max_per_page,
            )
            scope = canonical_route(request.url.path)
            page = paginate(items, item_id, page_request, seed=self.simulator.seed, scope=scope)
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
            self.simulator.fleet.projects,
            lambda p: p.id,
            lambda p: payloads.project_json(p, self.simulator.seed),
        )

    async def _addons(self, request: Request) -> Response:
        project = self._project(request)
        addons = [
            a for a in self.simulator.fleet.addons_of(project.id) if not self.simulator.is_removed(a.id)
        ]
        return self._page(
            request, "addons", addons, lambda a: a.id, lambda a: payloads.addon_json(a, self.simulator.seed)
        )

    async def _backups(self, request: Request) -> Response:
        addon = self._addon(request)
        backups = self.simulator.backups_at(addon, self._now(request))
        return self._page(request, "backups", backups, lambda b: b.id, payloads.backup_json)

    async def _schedules(self, request: Request) -> Response:
        addon = self._addon(request)
        return self._page(
            request,
            "schedules",
            addon.schedules,
            lambda s: s.id,
            lambda s: payloads.schedule_json(s, self.simulator.fleet),
        )

    async def _addon_restores(self, request: Request) -> Response:
        addon = self._addon(request)
        restores = addon_restores(self.simulator.fleet, addon, self.simulator.seed, self._now(request))
        return self._page_restores(request, restores, with_backup_id=True)

    async def _backup_restores(self, request: Request) -> Response:
        addon = self._addon(request)
        now = self._now(request)
        backup_id = request.path_params["backupId"]
        if not any(b.id == backup_id for b in self.simulator.backups_at(addon, now)):
            raise ApiError(404, f"Backup {backup_id} not found")
        restores = [
            r
            for r in addon_restores(self.simulator.fleet, addon, self.simulator.seed, now)
            if r.backup_id == backup_id
        ]
        # The backup's own restores say which backup they restored by their URL, not in their body.
        return self._page_restores(request, restores, with_backup_id=False)

    def _page_restores(
        self, request: Request, restores: Sequence[RestoreRecord], *, with_backup_id: bool
    ) -> Response:
        return self._page(
            request,
            "restores",
            restores,
            lambda r: str(r.id),
            lambda r: payloads.restore_json(r, with_backup_id=with_backup_id),
        )

    async def _destinations(self, request: Request) -> Response:
        self._team(request)
        return self._page(
            request,
            "backupDestinations",
            self.simulator.fleet.destinations,
            lambda d: d.id,
            payloads.destination_json,
        )

    async def _destination_backups(self, request: Request) -> Response:
        self._team(request)
        destination_id = request.path_params["backupDestinationId"]
        if self.simulator.fleet.destination(destination_id) is None:
            raise ApiError(404, f"Backup destination {destination_id} not found")
        records = destination_backups(
            self.simulator.fleet, destination_id, self.simulator.seed, self._now(request)
        )
        return self._page(
            request,
            None,
            records,
            lambda r: r.backup.id,
            lambda r: payloads.destination_backup_json(r, self.simulator.fleet),
        )


__all__ = [
    "ADDONS",
    "ADDON_RESTORES",
    "ADMIN_PREFIX",
    "API_ROUTES",
    "BACKUPS",
    "BACKUP_RESTORES",
    "DESTINATIONS",
    "DESTINATION_BACKUPS",
    "PROJECTS",
    "SCHEDULES",
    "SCOPE_FAULT",
    "SCOPE_NOW",
    "TEAM_PREFIX",
    "ApiError",
    "ApiRoutes",
    "canonical_route",
]

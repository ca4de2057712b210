"""The simulator's admin endpoints under ``/_simulator/``: faults, addon removal, the token, the rate
limit and the request log, driven over HTTP (by a test in another process, or a person with curl).

The gate lets them through with the admin token only, neither rate-limited nor logged."""

from __future__ import annotations

import json

from pydantic import JsonValue, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import FaultSpec
from .protocols import Controls
from .routes import ADMIN_PREFIX, ApiError


class AdminRoutes:
    """The handlers of the admin endpoints, acting on the simulator through its control methods."""

    def __init__(self, simulator: Controls) -> None:
        self.simulator = simulator
        self.routes: list[Route] = [
            Route(ADMIN_PREFIX + "/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
            Route(ADMIN_PREFIX + "/faults/{faultId:int}", self._admin_fault, methods=["DELETE"]),
            Route(ADMIN_PREFIX + "/addons/{addonId}", self._admin_addon, methods=["DELETE", "PUT"]),
            Route(ADMIN_PREFIX + "/token", self._admin_token_route, methods=["PUT"]),
            Route(ADMIN_PREFIX + "/rate-limit/consume", self._admin_consume, methods=["POST"]),
            Route(ADMIN_PREFIX + "/requests", self._admin_requests, methods=["GET", "DELETE"]),
        ]

    @staticmethod
    async def _json_body(request: Request) -> JsonValue:
        try:
            body: JsonValue = json.loads(await request.body() or b"null")
        except ValueError:
            raise ApiError(400, "the body must be JSON") from None
        return body

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"data": {"faults": [f.as_json() for f in self.simulator.faults.active()]}})
        if request.method == "DELETE":
            removed = len(self.simulator.faults.active())
            self.simulator.faults.clear()
            return JSONResponse({"data": {"removed": removed}})
        body = await self._json_body(request)
        raw = body["faults"] if isinstance(body, dict) and "faults" in body else body
        specs = raw if isinstance(raw, list) else [raw]
        try:
            added = [self.simulator.add_fault(FaultSpec.model_validate(spec)) for spec in specs]
        except (ValidationError, ValueError) as exc:
            raise ApiError(400, f"invalid fault: {exc}") from None
        return JSONResponse({"data": {"faults": [f.as_json() for f in added]}}, status_code=201)

    async def _admin_fault(self, request: Request) -> Response:
        if not self.simulator.faults.remove(request.path_params["faultId"]):
            raise ApiError(404, "no such fault")
        return JSONResponse({"data": {"removed": 1}})

    async def _admin_addon(self, request: Request) -> Response:
        addon_id = request.path_params["addonId"]
        if self.simulator.fleet.addon(addon_id) is None:
            raise ApiError(404, f"Addon {addon_id} not found")
        if request.method == "DELETE":
            self.simulator.remove_addon(addon_id)
        else:
            self.simulator.restore_addon(addon_id)
        return JSONResponse({"data": {"addonId": addon_id, "removed": self.simulator.is_removed(addon_id)}})

    async def _admin_token_route(self, request: Request) -> Response:
        body = await self._json_body(request)
        token = body.get("token") if isinstance(body, dict) else None
        if token is not None and not isinstance(token, str):
            raise ApiError(400, "token must be a string or null")
        self.simulator.set_token(token)
        return JSONResponse({"data": {"revoked": token is None}})

    async def _admin_consume(self, request: Request) -> Response:
        body = await self._json_body(request)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, int) or isinstance(requests, bool) or requests < 0:
            raise ApiError(400, "requests must be a non-negative integer")
        state = self.simulator.consume(requests)
        return JSONResponse(
            {"data": {"limit": state.limit, "remaining": state.remaining, "reset": state.reset_after}}
        )

    async def _admin_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.simulator.request_log.clear()
            return JSONResponse({"data": {"requests": []}})
        return JSONResponse({"data": {"requests": [r.as_json() for r in self.simulator.request_log]}})


__all__ = ["AdminRoutes"]

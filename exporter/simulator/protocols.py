"""What the parts of the simulator need of the :class:`~exporter.simulator.app.Simulator` that owns them:
the routes (:mod:`.routes`), the gate (:mod:`.gate`) and the admin endpoints (:mod:`.admin`) are typed
against these, not against the class that imports them, so that no module of the simulator imports one
that imports it (the app builds its parts; the parts do not know the app)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.responses import Response

from exporter.clock import Clock

from .faults import ActiveFault, FaultSet, FaultSpec
from .fleet import AddonSpec, Fleet
from .history import BackupRecord
from .ratelimit import RateLimiter, RateState
from .requestlog import RequestLog


class Answers(Protocol):
    """How the simulator answers with an error: the API's error body and its stable error id."""

    def error_id(self, path: str) -> str: ...

    def error_response(
        self, status: int, message: str, path: str, headers: Mapping[str, str] | None = None
    ) -> Response: ...


class Account(Protocol):
    """What the API routes read: the fleet, as it is at an instant."""

    @property
    def fleet(self) -> Fleet: ...

    @property
    def seed(self) -> int: ...

    @property
    def team_id(self) -> str: ...

    @property
    def default_per_page(self) -> int: ...

    @property
    def max_per_page(self) -> int: ...

    def backups_at(self, addon: AddonSpec, now: float) -> list[BackupRecord]: ...

    def is_removed(self, addon_id: str) -> bool: ...


class Guarded(Answers, Protocol):
    """What the gate checks and records before a route runs."""

    @property
    def clock(self) -> Clock: ...

    @property
    def token(self) -> str | None: ...

    @property
    def admin_token(self) -> str | None: ...

    @property
    def retry_after(self) -> bool: ...

    @property
    def rate_limiter(self) -> RateLimiter: ...

    @property
    def faults(self) -> FaultSet: ...

    @property
    def request_log(self) -> RequestLog: ...


class Controls(Protocol):
    """What the admin endpoints change."""

    @property
    def fleet(self) -> Fleet: ...

    @property
    def faults(self) -> FaultSet: ...

    @property
    def request_log(self) -> RequestLog: ...

    def add_fault(self, spec: FaultSpec) -> ActiveFault: ...

    def consume(self, requests: int) -> RateState: ...

    def set_token(self, token: str | None) -> None: ...

    def remove_addon(self, addon_id: str) -> None: ...

    def restore_addon(self, addon_id: str) -> None: ...

    def is_removed(self, addon_id: str) -> bool: ...


__all__ = ["Account", "Answers", "Controls", "Guarded"]

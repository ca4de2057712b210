"""Injectable faults: what can go wrong between the exporter and the API, on demand.

A fault matches a route template (without the team prefix, e.g.
``/v1/projects/{projectId}/addons/{addonId}/backups``; None matches every API route), optionally some
path parameters (``{"addonId": "x"}``), and applies ``times`` times (None: until removed). The first
matching fault, in the order they were added, answers a request; it is counted even if the handler
then fails (e.g. 404). Over HTTP, ``POST /_simulator/faults`` takes the same fields as JSON.

Kinds and their options:

``status``
    Answer ``status`` (default 500) with a ``body`` of ``json`` (the API's error object), ``html`` (a
    proxy's page) or ``empty``; ``retry_after`` adds a ``Retry-After`` header (seconds).
``hang``
    Accept the request and never answer. Ends when the client goes away or is cancelled, or when the
    server stops.
``reset``
    Send the headers and part of the body (``size`` bytes, default half), then drop the connection.
    In-process (``httpx.ASGITransport``) this raises :class:`SimulatedConnectionReset`, an
    ``httpx.RemoteProtocolError`` like the one a client gets from a socket closed mid-body.
``invalid_json``
    200 with a body cut in half (not valid JSON).
``wrong_shape``
    ``data`` is ``value`` (default the string ``"unexpected"``) instead of an object or list.
``null_data``
    ``data`` is ``null``.
``missing_field``
    ``field`` (dotted, default ``id``) removed from every item.
``unknown_enum``
    ``field`` (default ``status``) set to ``value`` (default ``"exploded"``) in every item that has it.
``null_field``
    ``field`` (default ``config``) set to null in every item.
``non_numeric_size``
    ``config.size`` (or ``field``) set to ``value`` (default ``"12 MB"``) in every item that has it.
``bad_timestamp``
    ``field`` (default ``createdAt``) set to ``value`` (default ``"not-a-timestamp"``) where present.
``huge_page``
    The normal page padded to ``size`` bytes (default 10 MiB) with an extra ``_padding`` member.
``repeating_cursor``
    ``hasNextPage: true`` and the cursor the request came with (a valid one: the page is served again
    and again) for as long as the fault lasts.
``next_page_without_cursor``
    ``hasNextPage: true`` and no ``cursor``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue


class FaultKind(StrEnum):
    STATUS = "status"
    HANG = "hang"
    RESET = "reset"
    INVALID_JSON = "invalid_json"
    WRONG_SHAPE = "wrong_shape"
    NULL_DATA = "null_data"
    MISSING_FIELD = "missing_field"
    UNKNOWN_ENUM = "unknown_enum"
    NULL_FIELD = "null_field"
    NON_NUMERIC_SIZE = "non_numeric_size"
    BAD_TIMESTAMP = "bad_timestamp"
    HUGE_PAGE = "huge_page"
    REPEATING_CURSOR = "repeating_cursor"
    NEXT_PAGE_WITHOUT_CURSOR = "next_page_without_cursor"


class BodyKind(StrEnum):
    JSON = "json"
    HTML = "html"
    EMPTY = "empty"


#: Kinds answered before the route's handler runs (the others transform its page).
TRANSPORT_KINDS = frozenset({FaultKind.STATUS, FaultKind.HANG, FaultKind.RESET})

_DEFAULT_FIELD: Mapping[FaultKind, str] = {
    FaultKind.MISSING_FIELD: "id",
    FaultKind.UNKNOWN_ENUM: "status",
    FaultKind.NULL_FIELD: "config",
    FaultKind.NON_NUMERIC_SIZE: "config.size",
    FaultKind.BAD_TIMESTAMP: "createdAt",
}
_DEFAULT_VALUE: Mapping[FaultKind, JsonValue] = {
    FaultKind.WRONG_SHAPE: "unexpected",
    FaultKind.UNKNOWN_ENUM: "exploded",
    FaultKind.NON_NUMERIC_SIZE: "12 MB",
    FaultKind.BAD_TIMESTAMP: "not-a-timestamp",
}
HUGE_PAGE_BYTES = 10 * 1024 * 1024


class SimulatedConnectionReset(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection mid-body (see the ``reset`` fault)."""


class FaultSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    route: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    times: int | None = Field(default=None, ge=1)
    status: int = Field(default=500, ge=100, le=599)
    body: BodyKind = BodyKind.JSON
    retry_after: int | None = Field(default=None, ge=0)
    field: str | None = None
    value: JsonValue = None
    size: int | None = Field(default=None, ge=0)

    @property
    def target_field(self) -> str:
        return self.field or _DEFAULT_FIELD.get(self.kind, "id")

    @property
    def target_value(self) -> JsonValue:
        if "value" in self.model_fields_set:
            return self.value
        return _DEFAULT_VALUE.get(self.kind)


@dataclass
class ActiveFault:
    id: int
    spec: FaultSpec
    #: Uses left (None: unlimited).
    remaining: int | None
    hits: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec.model_dump(mode="json"),
            "remaining": self.remaining,
            "hits": self.hits,
        }


class FaultSet:
    def __init__(self) -> None:
        self._faults: list[ActiveFault] = []
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec) -> ActiveFault:
        fault = ActiveFault(id=next(self._ids), spec=spec, remaining=spec.times)
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[ActiveFault]:
        return list(self._faults)

    def take(self, route: str, params: Mapping[str, str]) -> ActiveFault | None:
        """The first fault matching this request, counted as used once (and dropped when used up)."""
        for fault in self._faults:
            spec = fault.spec
            if spec.route is not None and spec.route != route:
                continue
            if any(params.get(k) != v for k, v in spec.params.items()):
                continue
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault
        return None


# --- what the faults do to a response ------------------------------------------------------------

_HTML = "<html><head><title>{status}</title></head><body><h1>{status} {reason}</h1><hr>nginx</body></html>"


def status_body(spec: FaultSpec, error_id: str) -> tuple[bytes, str | None]:
    """The body and content type of a ``status`` fault's response."""
    reason = _reason(spec.status)
    if spec.body is BodyKind.EMPTY:
        return b"", None
    if spec.body is BodyKind.HTML:
        return _HTML.format(status=spec.status, reason=reason).encode(), "text/html; charset=utf-8"
    error = {"error": {"status": spec.status, "message": reason, "id": error_id}}
    return json.dumps(error, separators=(",", ":")).encode(), "application/json"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [it for it in data if isinstance(it, dict)]
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list):
                return [it for it in value if isinstance(it, dict)]
    return []


def _set(item: dict[str, Any], path: str, value: JsonValue, *, only_if_present: bool) -> None:
    *parents, last = path.split(".")
    node: Any = item
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and (last in node or not only_if_present):
        node[last] = value


def _delete(item: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = item
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def apply_to_envelope(spec: FaultSpec, envelope: dict[str, Any], *, request_cursor: str) -> None:
    """Transform a page (``{"data": ..., "pagination": ...}``) in place as the fault says."""
    kind = spec.kind
    items = _items(envelope.get("data"))
    count = len(items)
    if kind is FaultKind.WRONG_SHAPE:
        envelope["data"] = spec.target_value
    elif kind is FaultKind.NULL_DATA:
        envelope["data"] = None
    elif kind is FaultKind.MISSING_FIELD:
        for item in items:
            _delete(item, spec.target_field)
    elif kind in (FaultKind.UNKNOWN_ENUM, FaultKind.NON_NUMERIC_SIZE, FaultKind.BAD_TIMESTAMP):
        for item in items:
            _set(item, spec.target_field, spec.target_value, only_if_present=True)
    elif kind is FaultKind.NULL_FIELD:
        for item in items:
            _set(item, spec.target_field, None, only_if_present=False)
    elif kind is FaultKind.HUGE_PAGE:
        target = HUGE_PAGE_BYTES if spec.size is None else spec.size
        current = len(json.dumps(envelope, separators=(",", ":")))
        envelope["_padding"] = "x" * max(0, target - current - len(',"_padding":""'))
    elif kind is FaultKind.REPEATING_CURSOR:
        envelope["pagination"] = {"hasNextPage": True, "cursor": request_cursor, "count": count}
    elif kind is FaultKind.NEXT_PAGE_WITHOUT_CURSOR:
        envelope["pagination"] = {"hasNextPage": True, "count": count}


def truncate(body: bytes) -> bytes:
    """Half a JSON document: what ``invalid_json`` sends."""
    return body[: max(1, len(body) // 2)]


__all__ = [
    "HUGE_PAGE_BYTES",
    "TRANSPORT_KINDS",
    "ActiveFault",
    "BodyKind",
    "FaultKind",
    "FaultSet",
    "FaultSpec",
    "SimulatedConnectionReset",
    "apply_to_envelope",
    "status_body",
    "truncate",
]

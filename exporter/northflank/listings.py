"""The listings the client walks, and the parsing of one page: per-item validation, dedupe by id.

Items are validated one by one: an invalid item is skipped and counted in
``northflank_exporter_invalid_items_total{resource}`` (logged at WARNING once per resource per hour, with
the field path and pydantic's message, never the value), the rest of the listing is kept. Only when every
item of a listing is invalid is the listing an :class:`InvalidResponseError` (the caller then keeps its last
good data rather than taking an empty listing for the truth). A value of a kept item that the models read
as unknown because it made no sense (a size of "²", a completedAt in year 9999; not a placeholder such as
null or the epoch) is counted in ``northflank_exporter_invalid_values_total{resource}`` and logged at INFO
once per resource per hour. Items are deduplicated by id across pages, the first occurrence kept:
overlapping cursor pages must not count a backup twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from exporter.northflank import routes
from exporter.northflank.errors import InvalidResponseError
from exporter.northflank.metrics import ApiMetrics
from exporter.northflank.models import (
    UNKNOWN_FIELDS,
    Addon,
    Backup,
    BackupDestination,
    DestinationBackup,
    Pagination,
    Project,
    Restore,
    Schedule,
)
from exporter.northflank.problemlog import ProblemLog
from exporter.resources import Resource

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How many validation problems an InvalidResponseError names before "and N more".
MAX_VALIDATION_PROBLEMS = 3


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    template: str
    #: the key of the item list inside ``data``; ``None`` when ``data`` is the list itself
    key: str | None
    #: validates one item
    adapter: TypeAdapter[T]
    #: the ``resource`` label of the invalid-items counter
    resource: Resource
    #: the documentation marks the list optional: an absent one is an empty listing
    optional: bool = False


PROJECTS = Listing(routes.PROJECTS, "projects", TypeAdapter(Project), Resource.PROJECTS)
ADDONS = Listing(routes.ADDONS, "addons", TypeAdapter(Addon), Resource.ADDONS)
BACKUPS = Listing(routes.BACKUPS, "backups", TypeAdapter(Backup), Resource.BACKUPS)
SCHEDULES = Listing(
    routes.BACKUP_SCHEDULES, "schedules", TypeAdapter(Schedule), Resource.SCHEDULES, optional=True
)
RESTORES = Listing(routes.ADDON_RESTORES, "restores", TypeAdapter(Restore), Resource.RESTORES, optional=True)
DESTINATIONS = Listing(
    routes.BACKUP_DESTINATIONS,
    "backupDestinations",
    TypeAdapter(BackupDestination),
    Resource.BACKUP_DESTINATIONS,
)
DESTINATION_BACKUPS = Listing(
    routes.DESTINATION_BACKUPS, None, TypeAdapter(DestinationBackup), Resource.DESTINATION_BACKUPS
)
LISTINGS: tuple[Listing[Any], ...] = (
    PROJECTS,
    ADDONS,
    BACKUPS,
    SCHEDULES,
    RESTORES,
    DESTINATIONS,
    DESTINATION_BACKUPS,
)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page: its valid items, what was wrong with each invalid one, its pagination."""

    items: list[T]
    #: per invalid item: where and what (field path and pydantic's message, never the value)
    problems: list[str]
    pagination: Pagination
    #: the fields of valid items read as unknown because their values made no sense
    unknown_fields: list[str]


class Collected(Generic[T]):
    """The items of a listing as its pages come: deduplicated by id (the first occurrence kept), and
    what was wrong with the invalid ones (the first few, and how many)."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._ids: set[str] = set()
        self.invalid = 0
        self.problems: list[str] = []
        self.unknown_fields: list[str] = []
        self._duplicates = 0

    def add(self, page: Page[T], number: int) -> None:
        self.unknown_fields += page.unknown_fields
        self.invalid += len(page.problems)
        for problem in page.problems[: MAX_VALIDATION_PROBLEMS - len(self.problems)]:
            self.problems.append(problem if number == 1 else f"page {number}: {problem}")
        for item in page.items:
            key = getattr(item, "id", None)
            if isinstance(key, str):
                if key in self._ids:
                    self._duplicates += 1
                    continue
                self._ids.add(key)
            self._items.append(item)

    def described(self) -> str:
        """The first problems, and how many more there were."""
        text = "; ".join(self.problems)
        if self.invalid > len(self.problems):
            text += f"; and {self.invalid - len(self.problems)} more"
        return text

    def result(self, endpoint: str) -> list[T]:
        if self._duplicates:
            # Overlapping cursor pages are the API's pagination, not bad data: not counted as invalid.
            logger.debug("%s: %d item(s) listed more than once, kept once", endpoint, self._duplicates)
        if self.invalid and not self._items:
            # Nothing valid at all is a broken listing, not an empty one: the caller keeps its last data.
            raise InvalidResponseError(
                f"invalid response: all {self.invalid} item(s) of the listing are invalid "
                f"({self.described()})",
                endpoint=endpoint,
            )
        return self._items


def finish(
    collected: Collected[T],
    resource: Resource,
    endpoint: str,
    metrics: ApiMetrics | None,
    problems: ProblemLog,
) -> list[T]:
    """The listing's items; its invalid items counted, and logged unless the listing fails for them
    (then the error says it, once, where the caller logs its failures)."""
    if collected.invalid and metrics is not None:
        metrics.observe_invalid_items(resource, collected.invalid)
    unknown = collected.unknown_fields
    if unknown:
        if metrics is not None:
            metrics.observe_invalid_values(resource, len(unknown))
        # INFO: the items are kept, only those values are missing (and their series with them).
        level, quiet = problems.level(f"unknown {resource} values", logging.INFO)
        logger.log(
            level,
            "%s: read %d value(s) of %s as unknown because they make no sense (%s); the items are kept%s",
            endpoint,
            len(unknown),
            resource,
            ", ".join(sorted(set(unknown))),
            quiet,
            extra={"resource": str(resource), "endpoint": endpoint},
        )
    items = collected.result(endpoint)
    if collected.invalid:
        level, quiet = problems.level(f"invalid {resource} items")
        logger.log(
            level,
            "%s: skipped %d invalid %s item(s), kept the other %d (%s)%s",
            endpoint,
            collected.invalid,
            resource,
            len(items),
            collected.described(),
            quiet,
            extra={"resource": str(resource), "endpoint": endpoint},
        )
    return items


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _field_path(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(body)"


def _describe(error: ValidationError, prefix: str) -> str:
    """Where and what, from pydantic's ``loc`` and ``msg`` only: never the input value."""
    problems = [
        f"{_field_path(prefix, item['loc'])}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False, include_context=False)
    ]
    described = "; ".join(problems[:MAX_VALIDATION_PROBLEMS])
    if len(problems) > MAX_VALIDATION_PROBLEMS:
        described += f"; and {len(problems) - MAX_VALIDATION_PROBLEMS} more"
    return described


def _validate_item(listing: Listing[T], raw: object, where: str, unknown: list[str]) -> T | str:
    """One item, or where and what is wrong with it (field path and pydantic's message, never a value).
    The fields of a valid item read as unknown are appended to ``unknown``."""
    problem: str
    noted: list[str] = []
    try:
        item = listing.adapter.validate_python(raw, context={UNKNOWN_FIELDS: noted})
        unknown += noted
        return item
    except ValidationError as exc:
        problem = _describe(exc, where)
    except (ArithmeticError, RecursionError) as exc:
        # A validator's arithmetic on an absurd value: the item is invalid, the listing goes on.
        problem = f"{where}: value out of range ({type(exc).__name__})"
    return problem


def parse_page(listing: Listing[T], endpoint: str, body: bytes, page: int) -> Page[T]:
    """The valid items, the problems of the invalid ones and the pagination of one page, or an
    InvalidResponseError when the page as a whole is not what the API documents."""
    problem: str | None = None
    items: list[T] = []
    problems: list[str] = []
    unknown: list[str] = []
    pagination = Pagination()
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        document, problem = None, "the body is not valid JSON"

    if problem is None:
        problem, raw_items, where = _locate_items(listing, document)
        if problem is None:
            for index, raw in enumerate(raw_items):
                item = _validate_item(listing, raw, f"{where}[{index}]", unknown)
                if isinstance(item, str):
                    problems.append(item)
                else:
                    items.append(item)
    if problem is None and document.get("pagination") is not None:
        try:
            pagination = Pagination.model_validate(document["pagination"])
        except ValidationError as exc:
            problem = _describe(exc, "pagination")
    if problem is not None:
        # Raised here, outside the except blocks: no chain back to the payload.
        raise InvalidResponseError(f"invalid response (page {page}): {problem}", endpoint=endpoint)
    return Page(items, problems, pagination, unknown)


def _locate_items(listing: Listing[Any], document: object) -> tuple[str | None, list[object], str]:
    """``(problem, raw item list, its path)``: the list a listing's items are in, or what is wrong (and
    an empty list)."""
    if not isinstance(document, dict):
        return f"expected a JSON object, got {_json_type(document)}", [], ""
    if "data" not in document:
        return "data: missing", [], ""
    data = document["data"]
    if listing.key is None:
        raw, where = data, "data"
    else:
        if not isinstance(data, dict):
            return f"data: expected an object, got {_json_type(data)}", [], ""
        where = f"data.{listing.key}"
        if listing.key not in data:
            if listing.optional:
                return None, [], where
            return f"{where}: missing", [], where
        raw = data[listing.key]
    if not isinstance(raw, list):
        return f"{where}: expected an array, got {_json_type(raw)}", [], where
    return None, raw, where


__all__ = [
    "ADDONS",
    "BACKUPS",
    "DESTINATIONS",
    "DESTINATION_BACKUPS",
    "LISTINGS",
    "MAX_VALIDATION_PROBLEMS",
    "PROJECTS",
    "RESTORES",
    "SCHEDULES",
    "Collected",
    "Listing",
    "Page",
    "finish",
    "parse_page",
]

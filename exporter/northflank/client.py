"""The only place that talks HTTP to Northflank: listings walked page by page, validated into models.

Every public method walks a whole listing and returns validated, frozen models. Around each HTTP attempt:

- the optional :class:`RequestGate` is awaited before and told the outcome after (the seam for a request
  budget shared with the account's other clients);
- the bearer header is built from the ``SecretStr`` at request time, never stored on the HTTP client;
- the rate-limit headers of every response, errors included, update :attr:`NorthflankClient.rate_limit`
  and the ``northflank_api_rate_limit_*`` gauges;
- ``northflank_api_requests_total`` counts the attempt: every retry costs the account's budget too;
- connect/read/write timeouts apply, plus an overall deadline per attempt (a server that trickles bytes
  cannot hold a refresh), and the body is read in a stream and abandoned past ``max_body_bytes``.

429, 5xx, timeouts and connection failures are retried with exponential backoff and jitter; a 429 waits
what ``Retry-After`` (else ``x-ratelimit-reset``) says, unless that is longer than ``max_retry_wait``: then
:class:`RateLimitedError` is raised at once with ``retry_at`` so the caller can defer. Other 4xx are not
retried.

Pagination: ``per_page`` and the ``cursor`` of the previous page, until ``hasNextPage`` is false. A cursor
that comes back twice is an :class:`InvalidResponseError`; so is a listing longer than ``max_pages``. A page
that says ``hasNextPage: true`` but carries no cursor ends the walk and what was read is returned: the
official js-client stops on a missing cursor the same way, and there is no way to ask for the next page
without one. A response without ``pagination`` (the documented example of the schedules listing has none)
is a single page.

Errors never carry the token, a header, a concrete URL, a query string, a response body beyond the API's own
short error message, or an input value: validation messages are built from pydantic's ``loc`` and ``msg``
only, and every exception is raised outside the ``except`` block that caught its cause, so no
``__cause__`` / ``__context__`` chain leads back to an httpx or pydantic exception holding the request or
the payload (a destination listing holds the bucket's keys).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx
from pydantic import SecretStr, TypeAdapter, ValidationError

from exporter import __version__
from exporter.clock import Clock
from exporter.northflank import routes
from exporter.northflank.errors import (
    ApiError,
    AuthError,
    InvalidResponseError,
    NorthflankError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from exporter.northflank.metrics import CODE_CONNECTION_ERROR, CODE_TIMEOUT, ApiMetrics
from exporter.northflank.models import (
    Addon,
    ApiErrorBody,
    Backup,
    BackupDestination,
    DestinationBackup,
    Pagination,
    Project,
    Restore,
    Schedule,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.northflank.com"
DEFAULT_USER_AGENT = f"northflank-backup-exporter/{__version__}"
MAX_PER_PAGE = 100
#: A non-2xx body is read only to find the API's short error message: no need for megabytes of it.
ERROR_BODY_LIMIT = 64 * 1024
#: The API's own error message is quoted in exceptions up to this many characters.
MAX_API_MESSAGE_CHARS = 200
MAX_ERROR_ID_CHARS = 64
#: How many validation problems an InvalidResponseError names before "and N more".
MAX_VALIDATION_PROBLEMS = 3

_STATUS_ERRORS: dict[int, tuple[type[ApiError], str]] = {
    401: (AuthError, "authentication failed"),
    403: (PermissionDeniedError, "permission denied"),
    404: (NotFoundError, "not found"),
}

_HTML = re.compile(r"<\s*[a-zA-Z!/?]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ERROR_ID = re.compile(r"[A-Za-z0-9._:-]+")


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The rate-limit headers of one response; ``reset_at`` and ``observed_at`` are unix seconds."""

    limit: int
    remaining: int
    reset_at: float
    observed_at: float


class RequestGate(Protocol):
    """A budget for requests, consulted around every HTTP attempt (retries included)."""

    async def acquire(self, endpoint: str) -> None:
        """Awaited before every attempt; ``endpoint`` is the route template. May wait, or raise to refuse."""
        ...

    def observe(self, endpoint: str, status_code: int | None, rate_limit: RateLimitStatus | None) -> None:
        """Called after every attempt with its HTTP status (``None``: no response) and the rate-limit
        headers that response carried (``None``: none, or malformed)."""
        ...


@dataclass(frozen=True, slots=True)
class _Listing(Generic[T]):
    template: str
    #: the key of the item list inside ``data``; ``None`` when ``data`` is the list itself
    key: str | None
    adapter: TypeAdapter[list[T]]
    #: the documentation marks the list optional: an absent one is an empty listing
    optional: bool = False


_PROJECTS = _Listing(routes.PROJECTS, "projects", TypeAdapter(list[Project]))
_ADDONS = _Listing(routes.ADDONS, "addons", TypeAdapter(list[Addon]))
_BACKUPS = _Listing(routes.BACKUPS, "backups", TypeAdapter(list[Backup]))
_SCHEDULES = _Listing(routes.BACKUP_SCHEDULES, "schedules", TypeAdapter(list[Schedule]), optional=True)
_RESTORES = _Listing(routes.ADDON_RESTORES, "restores", TypeAdapter(list[Restore]), optional=True)
_DESTINATIONS = _Listing(
    routes.BACKUP_DESTINATIONS, "backupDestinations", TypeAdapter(list[BackupDestination])
)
_DESTINATION_BACKUPS = _Listing(routes.DESTINATION_BACKUPS, None, TypeAdapter(list[DestinationBackup]))


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one HTTP attempt gave: a JSON body, or an error and how long to wait before trying again."""

    status_code: int | None
    rate_limit: RateLimitStatus | None
    body: bytes | None = None
    error: NorthflankError | None = None
    #: seconds to wait before retrying; ``None``: not retryable
    retry_delay: float | None = None


class NorthflankClient:
    """Async client of the Northflank API listings the exporter reads. Use as an async context manager."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token: SecretStr,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: ApiMetrics | None = None,
        gate: RequestGate | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        backoff_base: float = 0.5,
        rng: random.Random | None = None,
        max_body_bytes: int = 4 * 1024 * 1024,
        per_page: int = MAX_PER_PAGE,
        max_pages: int = 100,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if not (math.isfinite(max_retry_wait) and max_retry_wait >= 0):
            raise ValueError("max_retry_wait must be a non-negative number of seconds")
        if not (math.isfinite(backoff_base) and backoff_base >= 0):
            raise ValueError("backoff_base must be a non-negative number of seconds")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if max_pages < 1:
            raise ValueError("max_pages must be positive")
        self._base_url = base_url
        self._token = token
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        self._gate = gate
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._backoff_base = backoff_base
        self._rng = rng if rng is not None else random.Random()
        self._max_body_bytes = max_body_bytes
        self._per_page = per_page
        self._max_pages = max_pages
        self._rate_limit: RateLimitStatus | None = None
        # No auth header here: it is added to each request, so the HTTP client never holds the token.
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"NorthflankClient(base_url={self._base_url!r})"

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The rate-limit headers of the latest response that carried them all well-formed."""
        return self._rate_limit

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the listings -----------------------------------------------------------------------------------

    async def list_projects(self, *, team: str | None = None) -> list[Project]:
        return await self._list(_PROJECTS, {}, team)

    async def list_addons(self, project_id: str, *, team: str | None = None) -> list[Addon]:
        return await self._list(_ADDONS, {"projectId": project_id}, team)

    async def list_backups(self, project_id: str, addon_id: str, *, team: str | None = None) -> list[Backup]:
        return await self._list(_BACKUPS, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_backup_schedules(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Schedule]:
        return await self._list(_SCHEDULES, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_addon_restores(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Restore]:
        return await self._list(_RESTORES, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_backup_destinations(self, *, team: str | None = None) -> list[BackupDestination]:
        return await self._list(_DESTINATIONS, {}, team)

    async def list_destination_backups(
        self, destination_id: str, *, team: str | None = None
    ) -> list[DestinationBackup]:
        return await self._list(_DESTINATION_BACKUPS, {"backupDestinationId": destination_id}, team)

    # -- pagination and validation ----------------------------------------------------------------------

    async def _list(self, listing: _Listing[T], params: dict[str, str], team: str | None) -> list[T]:
        template = listing.template
        if team is not None:
            template = routes.team_scoped(template)
            params = {**params, "teamId": team}
        path = routes.expand(template, **params)
        items: list[T] = []
        seen: set[str] = set()
        cursor: str | None = None
        for page in range(1, self._max_pages + 1):
            query = {"per_page": str(self._per_page)}
            if cursor is not None:
                query["cursor"] = cursor
            body = await self._request(template, path, query)
            page_items, pagination = _parse_page(listing, template, body, page)
            items.extend(page_items)
            if not pagination.has_next_page:
                return items
            if not pagination.cursor:
                logger.debug("%s: page %d says hasNextPage but has no cursor; stopping there", template, page)
                return items
            if pagination.cursor in seen:
                raise InvalidResponseError(
                    f"page {page} returned a cursor seen on an earlier page: pagination would loop",
                    endpoint=template,
                )
            seen.add(pagination.cursor)
            cursor = pagination.cursor
        raise InvalidResponseError(f"the listing has more than {self._max_pages} pages", endpoint=template)

    # -- one request, with retries ----------------------------------------------------------------------

    async def _request(self, endpoint: str, path: str, query: Mapping[str, str]) -> bytes:
        """The body of a 2xx answer to ``GET path``, retrying what is worth retrying."""
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            if self._gate is not None:
                await self._gate.acquire(endpoint)
            outcome = await self._attempt(endpoint, path, query, attempt)
            if self._gate is not None:
                self._gate.observe(endpoint, outcome.status_code, outcome.rate_limit)
            if outcome.error is None:
                assert outcome.body is not None
                return outcome.body
            delay = outcome.retry_delay
            if delay is None or attempt == attempts or delay > self._max_retry_wait:
                raise _with_attempts(outcome.error, attempt)
            logger.info(
                "%s: %s (attempt %d of %d); retrying in %.2fs",
                endpoint,
                outcome.error.message,
                attempt,
                attempts,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _attempt(self, endpoint: str, path: str, query: Mapping[str, str], attempt: int) -> _Attempt:
        request = self._http.build_request(
            "GET",
            path,
            params=query,
            headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
        )
        status_code: int | None = None
        rate_limit: RateLimitStatus | None = None
        headers = httpx.Headers()
        body: bytes | None = None
        no_response: str | None = None  # the code label of an attempt that got no usable response
        cause = ""
        undecodable = False
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.send(request, stream=True)
                try:
                    status_code, headers = response.status_code, response.headers
                    rate_limit = self._observe_rate_limit(headers)
                    limit = self._max_body_bytes if response.is_success else ERROR_BODY_LIMIT
                    body = await _read_capped(response, limit)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            # Also when the headers came but the body did not: the attempt produced nothing usable.
            no_response = CODE_TIMEOUT
        except httpx.TransportError as exc:
            no_response, cause = CODE_CONNECTION_ERROR, type(exc).__name__
        except httpx.DecodingError:
            undecodable = True
        duration = time.perf_counter() - started
        code = no_response or str(status_code)
        if self._metrics is not None:
            self._metrics.observe_request(endpoint, code, duration)
        logger.debug("GET %s -> %s in %.3fs (attempt %d)", endpoint, code, duration, attempt)

        error: NorthflankError
        if no_response == CODE_TIMEOUT:
            error = RequestTimeoutError(f"no complete response within {self._timeout:g}s", endpoint=endpoint)
            return _Attempt(None, rate_limit, error=error, retry_delay=self._backoff(attempt))
        if no_response == CODE_CONNECTION_ERROR:
            error = TransportError(f"connection failed ({cause})", endpoint=endpoint)
            return _Attempt(None, rate_limit, error=error, retry_delay=self._backoff(attempt))
        assert status_code is not None
        if not 200 <= status_code < 300:
            return self._api_error(endpoint, status_code, headers, body, rate_limit, attempt)
        if undecodable:
            error = InvalidResponseError("the body could not be decoded", endpoint=endpoint)
            return _Attempt(status_code, rate_limit, error=error)
        if body is None:
            error = InvalidResponseError(
                f"the body is larger than {self._max_body_bytes} bytes", endpoint=endpoint
            )
            return _Attempt(status_code, rate_limit, error=error)
        return _Attempt(status_code, rate_limit, body=body)

    def _api_error(
        self,
        endpoint: str,
        status_code: int,
        headers: httpx.Headers,
        body: bytes | None,
        rate_limit: RateLimitStatus | None,
        attempt: int,
    ) -> _Attempt:
        api_error = _parse_error_body(body)
        api_message = _clean_message(api_error.message if api_error else None, self._token)
        error_id = _clean_error_id(api_error.id if api_error else None)
        if status_code == 429:
            now = self._clock.now()
            wait = _retry_after(headers.get("retry-after"), now)
            if wait is None:
                wait = _seconds(headers.get("x-ratelimit-reset"))
            if wait is not None and wait > self._max_retry_wait:
                summary = f"rate limited for {wait:.0f}s, longer than the {self._max_retry_wait:g}s allowed"
            else:
                summary = "rate limited"
            error: ApiError = RateLimitedError(
                _join(summary, api_message),
                endpoint=endpoint,
                error_id=error_id,
                retry_at=now + wait if wait is not None else None,
            )
            delay = wait if wait is not None else self._backoff(attempt)
            return _Attempt(status_code, rate_limit, error=error, retry_delay=delay)
        retry_delay: float | None = None
        kind: type[ApiError]
        if status_code >= 500:
            kind, summary = ServerError, "server error"
            retry_delay = self._backoff(attempt)
        else:
            kind, summary = _STATUS_ERRORS.get(
                status_code, (ApiError, "request rejected" if status_code >= 400 else "unexpected response")
            )
        error = kind(
            _join(summary, api_message), endpoint=endpoint, status_code=status_code, error_id=error_id
        )
        return _Attempt(status_code, rate_limit, error=error, retry_delay=retry_delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped at ``max_retry_wait``, with jitter between half and all of it."""
        ceiling = min(self._max_retry_wait, self._backoff_base * 2.0 ** min(attempt - 1, 32))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _observe_rate_limit(self, headers: httpx.Headers) -> RateLimitStatus | None:
        limit = _count(headers.get("x-ratelimit-limit"))
        remaining = _count(headers.get("x-ratelimit-remaining"))
        reset = _seconds(headers.get("x-ratelimit-reset"))
        if limit is None or remaining is None or reset is None:
            return None
        now = self._clock.now()
        status = RateLimitStatus(limit=limit, remaining=remaining, reset_at=now + reset, observed_at=now)
        self._rate_limit = status
        if self._metrics is not None:
            self._metrics.observe_rate_limit(status)
        return status


# -- pure helpers ---------------------------------------------------------------------------------------


def _with_attempts(error: NorthflankError, attempts: int) -> NorthflankError:
    """The error of the last attempt, saying how many there were when it was not the first."""
    if attempts > 1:
        error.message = f"{error.message} (after {attempts} attempts)"
        error.args = (error.message,)
    return error


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The (decoded) body, or ``None`` as soon as it is known to be longer than ``limit`` bytes."""
    declared = _count(response.headers.get("content-length"))
    if declared is not None and declared > limit:
        return None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _count(value: str | None) -> int | None:
    """A non-negative integer header; anything else is malformed and ignored."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _seconds(value: str | None) -> float | None:
    """A non-negative, finite number of seconds; anything else is malformed and ignored."""
    if value is None or len(value) > 32:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (a past date is 0)."""
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322 for "UTC, source unknown"
        return None
    return max(0.0, when.timestamp() - now)


def _parse_error_body(body: bytes | None) -> ApiErrorBody | None:
    """``{"error": {...}}`` when the body is that; empty, HTML or any other JSON gives ``None``."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("error"), dict):
        return None
    try:
        return ApiErrorBody.model_validate(document["error"])
    except ValidationError:
        pass
    return None


def _clean_message(message: str | None, token: SecretStr) -> str | None:
    """The API's own message, on one line, capped, without markup or anything that looks like the token."""
    if not message:
        return None
    if _HTML.search(message):
        return None
    secret = token.get_secret_value()
    if secret and secret in message:
        message = message.replace(secret, "[redacted]")
    text = " ".join(_CONTROL.sub(" ", message).split())
    if len(text) > MAX_API_MESSAGE_CHARS:
        text = text[: MAX_API_MESSAGE_CHARS - 1] + "…"
    return text or None


def _join(summary: str, api_message: str | None) -> str:
    return f"{summary}: {api_message}" if api_message else summary


def _clean_error_id(error_id: str | None) -> str | None:
    if error_id and len(error_id) <= MAX_ERROR_ID_CHARS and _ERROR_ID.fullmatch(error_id):
        return error_id
    return None


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


def _parse_page(listing: _Listing[T], endpoint: str, body: bytes, page: int) -> tuple[list[T], Pagination]:
    """The items and the pagination of one page, or an InvalidResponseError naming what is wrong."""
    problem: str | None = None
    items: list[T] = []
    pagination = Pagination()
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        document, problem = None, "the body is not valid JSON"

    if problem is None:
        problem, raw_items, where = _locate_items(listing, document)
        if problem is None:
            try:
                items = listing.adapter.validate_python(raw_items)
            except ValidationError as exc:
                problem = _describe(exc, where)
    if problem is None and document.get("pagination") is not None:
        try:
            pagination = Pagination.model_validate(document["pagination"])
        except ValidationError as exc:
            problem = _describe(exc, "pagination")
    if problem is not None:
        # Raised here, outside the except blocks: no chain back to the payload.
        raise InvalidResponseError(f"invalid response (page {page}): {problem}", endpoint=endpoint)
    return items, pagination


def _locate_items(listing: _Listing[Any], document: object) -> tuple[str | None, object, str]:
    """``(problem, raw item list, its path)``: the list a listing's items are in, or what is wrong."""
    if not isinstance(document, dict):
        return f"expected a JSON object, got {_json_type(document)}", None, ""
    if "data" not in document:
        return "data: missing", None, ""
    data = document["data"]
    if listing.key is None:
        raw, where = data, "data"
    else:
        if not isinstance(data, dict):
            return f"data: expected an object, got {_json_type(data)}", None, ""
        where = f"data.{listing.key}"
        if listing.key not in data:
            if listing.optional:
                return None, [], where
            return f"{where}: missing", None, where
        raw = data[listing.key]
    if not isinstance(raw, list):
        return f"{where}: expected an array, got {_json_type(raw)}", None, where
    return None, raw, where


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "NorthflankClient",
    "RateLimitStatus",
    "RequestGate",
]

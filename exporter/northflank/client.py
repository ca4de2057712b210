"""The only place that talks HTTP to Northflank: listings walked page by page, validated into models.

Every public method walks a whole listing and returns validated, frozen models. Around each HTTP attempt:

- the optional :class:`RequestGate` is awaited before and told the outcome after (the seam for a request
  budget shared with the account's other clients);
- the bearer header is built from the token at request time, never stored on the HTTP client (a token
  file is so followed through rotations; after a 401 it is read again at once, and a new token retried);
- the rate-limit headers of every response, errors included, update :attr:`NorthflankClient.rate_limit`
  and the ``northflank_api_rate_limit_*`` gauges;
- ``northflank_api_requests_total`` counts the attempt: every retry costs the account's budget too;
- connect/read/write timeouts apply, plus an overall deadline per attempt (a server that trickles bytes
  cannot hold a refresh), and the body is read in a stream and abandoned past ``max_body_bytes``.

429, 5xx, timeouts and connection failures are retried with exponential backoff and jitter; a 429 waits
what ``Retry-After`` (else ``x-ratelimit-reset``) says, unless that is longer than ``max_retry_wait``: then
:class:`RateLimitedError` is raised at once with ``retry_at`` so the caller can defer. Other 4xx are not
retried.

Headers are input too. Numbers are ASCII digits only (``"²"`` passes ``str.isdigit``, then ``int()``
raises). ``Retry-After`` and ``x-ratelimit-reset`` may be seconds to wait or a unix time (in seconds or
milliseconds, on the API's clock), ``Retry-After`` also an HTTP date; a date or unix time is read against
the API's clock (the response's ``Date`` header, else ours plus :attr:`NorthflankClient.server_time_offset`),
so a server clock hours ahead does not stretch the wait. No header makes the exporter wait longer than the
API's documented window (an hour): a value that would, or that makes no sense, is counted in
``northflank_api_invalid_headers_total{header}`` and ignored, never obeyed.

Ids are input too: a path parameter that is not an id of the documented pattern is refused before a
request is made (:class:`InvalidIdentifierError`, see :mod:`routes`); the models skip listed items
whose id is not one.

Pagination: ``per_page`` and the ``cursor`` of the previous page, until ``hasNextPage`` is false. A cursor
that comes back twice is an :class:`InvalidResponseError`; so is a listing longer than ``max_pages``. A page
that says ``hasNextPage: true`` but carries no cursor ends the walk and what was read is returned: the
official js-client stops on a missing cursor the same way, and there is no way to ask for the next page
without one. A response without ``pagination`` (the documented example of the schedules listing has none)
is a single page.

Items are validated one by one: an invalid item is skipped and counted in
``northflank_exporter_invalid_items_total{resource}`` (logged at WARNING once per resource per hour, with
the field path and pydantic's message, never the value), the rest of the listing is kept. Only when every
item of a listing is invalid is the listing an :class:`InvalidResponseError` (the caller then keeps its last
good data rather than taking an empty listing for the truth). A value of a kept item that the models read
as unknown because it made no sense (a size of "²", a completedAt in year 9999; not a placeholder such as
null or the epoch) is counted in ``northflank_exporter_invalid_values_total{resource}`` and logged at INFO
once per resource per hour. Items are deduplicated by id across pages, the first occurrence kept:
overlapping cursor pages must not count a backup twice.

Errors never carry the token, a header, a concrete URL, a query string, a response body beyond the API's own
short error message and error id (from both of which the token is redacted, whatever its letter case), or
an input value: validation messages are built from pydantic's ``loc`` and ``msg``
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
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from exporter import __version__
from exporter.apitoken import ApiToken, ReloadableToken
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
    UNKNOWN_FIELDS,
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

#: The API's documented rate-limit window: no header makes the exporter wait longer than this.
RATE_LIMIT_WINDOW_SECONDS = 3600.0
#: A wait read from a header may overshoot the window by this much (clock granularity, latency) and is
#: then read as the whole window; beyond it the value makes no sense.
WAIT_SLACK_SECONDS = 60.0
#: A Date header further than this from our clock is a broken header, not clock skew.
MAX_CLOCK_OFFSET_SECONDS = 86400.0
#: The offset is the median of this many latest Date headers: one odd proxy does not move it.
CLOCK_OFFSET_SAMPLES = 5
#: A header value (other than Date) longer than this is not parsed.
MAX_HEADER_CHARS = 64
#: Invalid items and ignored headers are logged at WARNING at most once per this long (per resource,
#: per header); the rest at DEBUG: the counters say how many there were.
PROBLEM_LOG_SECONDS = 3600.0
#: Above this a waiting header's number is a unix time in seconds (from 2001 on), and above
#: _EPOCH_MILLIS in milliseconds (from 1973 on); a unix time past _EPOCH_MILLIS_MAX (year 5138 in
#: milliseconds) is no time. Between the window and _EPOCH_SECONDS a number is neither: nonsense.
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e11
_EPOCH_MILLIS_MAX = 1e14

_STATUS_ERRORS: dict[int, tuple[type[ApiError], str]] = {
    401: (AuthError, "authentication failed"),
    403: (PermissionDeniedError, "permission denied"),
    404: (NotFoundError, "not found"),
}

_HTML = re.compile(r"<\s*[a-zA-Z!/?]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ERROR_ID = re.compile(r"[A-Za-z0-9._:-]+")
#: ASCII only: in a regex character class 0-9 is ASCII, unlike \d or str.isdigit.
_ASCII_INT = re.compile(r"[0-9]{1,18}")
_ASCII_NUMBER = re.compile(r"[0-9]{1,18}(?:\.[0-9]{0,9})?")


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
    #: validates one item
    adapter: TypeAdapter[T]
    #: the ``resource`` label of the invalid-items counter (one of ``ITEM_RESOURCES``)
    resource: str
    #: the documentation marks the list optional: an absent one is an empty listing
    optional: bool = False


_PROJECTS = _Listing(routes.PROJECTS, "projects", TypeAdapter(Project), "projects")
_ADDONS = _Listing(routes.ADDONS, "addons", TypeAdapter(Addon), "addons")
_BACKUPS = _Listing(routes.BACKUPS, "backups", TypeAdapter(Backup), "backups")
_SCHEDULES = _Listing(routes.BACKUP_SCHEDULES, "schedules", TypeAdapter(Schedule), "schedules", optional=True)
_RESTORES = _Listing(routes.ADDON_RESTORES, "restores", TypeAdapter(Restore), "restores", optional=True)
_DESTINATIONS = _Listing(
    routes.BACKUP_DESTINATIONS, "backupDestinations", TypeAdapter(BackupDestination), "backup_destinations"
)
_DESTINATION_BACKUPS = _Listing(
    routes.DESTINATION_BACKUPS, None, TypeAdapter(DestinationBackup), "destination_backups"
)
_LISTINGS: tuple[_Listing[Any], ...] = (
    _PROJECTS,
    _ADDONS,
    _BACKUPS,
    _SCHEDULES,
    _RESTORES,
    _DESTINATIONS,
    _DESTINATION_BACKUPS,
)


@dataclass(frozen=True, slots=True)
class _Page(Generic[T]):
    """One page: its valid items, what was wrong with each invalid one, its pagination."""

    items: list[T]
    #: per invalid item: where and what (field path and pydantic's message, never the value)
    problems: list[str]
    pagination: Pagination
    #: the fields of valid items read as unknown because their values made no sense
    unknown_fields: list[str]


class _Collected(Generic[T]):
    """The items of a listing as its pages come: deduplicated by id (the first occurrence kept), and
    what was wrong with the invalid ones (the first few, and how many)."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._ids: set[str] = set()
        self.invalid = 0
        self.problems: list[str] = []
        self.unknown_fields: list[str] = []
        self._duplicates = 0

    def add(self, page: _Page[T], number: int) -> None:
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


@dataclass(frozen=True, slots=True)
class _HeaderReading:
    """What the headers of one response said, the nonsensical values already counted and dropped."""

    rate_limit: RateLimitStatus | None
    #: seconds until the rate-limit window resets, when x-ratelimit-reset made sense
    reset: float | None
    #: the API's clock when it answered: its Date header, else our clock plus the known offset
    server_now: float


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
        token: ApiToken,
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
        #: the latest offsets (seconds the API's clock is ahead of ours) measured from Date headers
        self._offsets: deque[float] = deque(maxlen=CLOCK_OFFSET_SAMPLES)
        #: when a problem (an invalid item of a resource, an ignored header) was last logged at WARNING
        self._problem_logged: dict[str, float] = {}
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

    @property
    def server_time_offset(self) -> float:
        """Seconds the API's clock is ahead of ours (negative: behind), from the ``Date`` headers of its
        latest responses (the median of the last few); 0.0 until one came. A Date a day or more off is a
        broken header, counted and ignored, so the value is always finite and within a day."""
        if not self._offsets:
            return 0.0
        return float(statistics.median(self._offsets))

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
        # Refuses an id that is not one (``..``, empty, with ``/``) before any request carries the token.
        path = routes.expand(template, **params)
        collected = _Collected[T]()
        seen: set[str] = set()
        cursor: str | None = None
        for page in range(1, self._max_pages + 1):
            query = {"per_page": str(self._per_page)}
            if cursor is not None:
                query["cursor"] = cursor
            body = await self._request(template, path, query)
            parsed = _parse_page(listing, template, body, page)
            collected.add(parsed, page)
            pagination = parsed.pagination
            if not pagination.has_next_page:
                return self._finish(listing.resource, template, collected)
            if not pagination.cursor:
                logger.debug("%s: page %d says hasNextPage but has no cursor; stopping there", template, page)
                return self._finish(listing.resource, template, collected)
            if pagination.cursor in seen:
                raise InvalidResponseError(
                    f"page {page} returned a cursor seen on an earlier page: pagination would loop",
                    endpoint=template,
                )
            seen.add(pagination.cursor)
            cursor = pagination.cursor
        raise InvalidResponseError(f"the listing has more than {self._max_pages} pages", endpoint=template)

    def _finish(self, resource: str, endpoint: str, collected: _Collected[T]) -> list[T]:
        """The listing's items; its invalid items counted, and logged unless the listing fails for them
        (then the error says it, once, where the caller logs its failures)."""
        if collected.invalid and self._metrics is not None:
            self._metrics.observe_invalid_items(resource, collected.invalid)
        unknown = collected.unknown_fields
        if unknown:
            if self._metrics is not None:
                self._metrics.observe_invalid_values(resource, len(unknown))
            # INFO: the items are kept, only those values are missing (and their series with them).
            level, quiet = self._log_level(f"unknown {resource} values", logging.INFO)
            logger.log(
                level,
                "%s: read %d value(s) of %s as unknown because they make no sense (%s); the items are kept%s",
                endpoint,
                len(unknown),
                resource,
                ", ".join(sorted(set(unknown))),
                quiet,
            )
        items = collected.result(endpoint)
        if collected.invalid:
            level, quiet = self._log_level(f"invalid {resource} items")
            logger.log(
                level,
                "%s: skipped %d invalid %s item(s), kept the other %d (%s)%s",
                endpoint,
                collected.invalid,
                resource,
                len(items),
                collected.described(),
                quiet,
            )
        return items

    def _invalid_header(self, header: str, why: str, *, loud: int = logging.WARNING) -> None:
        """A header value that makes no sense: counted and ignored. The value itself is never logged."""
        if self._metrics is not None:
            self._metrics.observe_invalid_header(header)
        level, quiet = self._log_level(f"ignored {header} headers", loud)
        logger.log(level, "ignored the %s header of a Northflank API response: %s%s", header, why, quiet)

    def _log_level(self, problem: str, loud: int = logging.WARNING) -> tuple[int, str]:
        """``loud`` (and a note saying the next ones are quieter) at most once per PROBLEM_LOG_SECONDS
        per kind of problem; DEBUG otherwise: the counters say how many there were."""
        now = self._clock.now()
        last = self._problem_logged.get(problem)
        if last is not None and 0 <= now - last < PROBLEM_LOG_SECONDS:
            return logging.DEBUG, ""
        self._problem_logged[problem] = now
        return loud, f"; further {problem} are logged at debug level for {PROBLEM_LOG_SECONDS:g}s"

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
        reading: _HeaderReading | None = None
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
                    reading = self._observe_headers(headers)
                    rate_limit = reading.rate_limit
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
        assert reading is not None
        if not 200 <= status_code < 300:
            # The token as this request sent it: what an API echoing the request would echo.
            secret = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            return self._api_error(endpoint, status_code, headers, body, reading, attempt, secret)
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
        reading: _HeaderReading,
        attempt: int,
        secret: str,
    ) -> _Attempt:
        rate_limit = reading.rate_limit
        api_error = _parse_error_body(body)
        # Every field of the error body that is kept is redacted; ``details`` is not even parsed.
        api_message = _clean_message(api_error.message if api_error else None, secret)
        error_id = _clean_error_id(api_error.id if api_error else None, secret)
        if status_code == 429:
            now = self._clock.now()
            wait: float | None = None
            retry_after = headers.get("retry-after")
            if retry_after is not None:
                wait = _retry_after(retry_after, reading.server_now)
                if wait is None:
                    self._invalid_header(
                        "retry-after",
                        "neither seconds nor a time within the API's 1 h rate-limit window; "
                        "waiting for x-ratelimit-reset or backing off instead",
                    )
            if wait is None:
                wait = reading.reset
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
            if status_code == 401 and self._token_replaced(secret):
                retry_delay = 0.0  # the token file was rotated: the new token is tried at once
        error = kind(
            _join(summary, api_message), endpoint=endpoint, status_code=status_code, error_id=error_id
        )
        return _Attempt(status_code, rate_limit, error=error, retry_delay=retry_delay)

    def _token_replaced(self, rejected: str) -> bool:
        """After a 401: read a token file again at once, and say whether the token now differs from the
        one that was refused (a concurrent request may have read the new one already)."""
        if isinstance(self._token, ReloadableToken):
            self._token.reload()
        return self._token.get_secret_value() != rejected

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped at ``max_retry_wait``, with jitter between half and all of it."""
        ceiling = min(self._max_retry_wait, self._backoff_base * 2.0 ** min(attempt - 1, 32))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _observe_headers(self, headers: httpx.Headers) -> _HeaderReading:
        """Date (the API's clock) first, then the rate-limit headers read against it."""
        now = self._clock.now()
        server_now = now + self.server_time_offset
        date = headers.get("date")
        if date is not None:
            at = _http_date(date)
            if at is None or not abs(at - now) < MAX_CLOCK_OFFSET_SECONDS:
                # INFO, not WARNING: ignoring it changes nothing but the skew correction (none, as
                # before any Date was read), whereas an ignored rate-limit header changes what is sent.
                self._invalid_header(
                    "date",
                    "not an HTTP date within a day of the exporter's clock; assuming no clock skew",
                    loud=logging.INFO,
                )
            else:
                self._offsets.append(at - now)
                server_now = at
        limit = self._count_header(headers, "x-ratelimit-limit")
        remaining = self._count_header(headers, "x-ratelimit-remaining")
        reset: float | None = None
        raw_reset = headers.get("x-ratelimit-reset")
        if raw_reset is not None:
            reset = _wait(raw_reset, server_now)
            if reset is None:
                self._invalid_header(
                    "x-ratelimit-reset", "neither seconds nor a unix time within the API's 1 h window"
                )
        if limit is None or remaining is None or reset is None:
            return _HeaderReading(None, reset, server_now)
        status = RateLimitStatus(limit=limit, remaining=remaining, reset_at=now + reset, observed_at=now)
        self._rate_limit = status
        if self._metrics is not None:
            self._metrics.observe_rate_limit(status)
        return _HeaderReading(status, reset, server_now)

    def _count_header(self, headers: httpx.Headers, name: str) -> int | None:
        value = headers.get(name)
        if value is None:
            return None
        count = _ascii_int(value)
        if count is None:
            self._invalid_header(name, "not a number of ASCII digits")
        return count


# -- pure helpers ---------------------------------------------------------------------------------------


def _with_attempts(error: NorthflankError, attempts: int) -> NorthflankError:
    """The error of the last attempt, saying how many there were when it was not the first."""
    if attempts > 1:
        error.message = f"{error.message} (after {attempts} attempts)"
        error.args = (error.message,)
    return error


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The (decoded) body, or ``None`` as soon as it is known to be longer than ``limit`` bytes."""
    length = response.headers.get("content-length")
    declared = _ascii_int(length) if length is not None else None
    if declared is not None and declared > limit:
        return None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _ascii_int(value: str) -> int | None:
    """A non-negative integer of ASCII digits (at most 18); anything else is ``None``."""
    text = value.strip(" \t")
    return int(text) if _ASCII_INT.fullmatch(text) else None


def _bounded_wait(seconds: float) -> float | None:
    """A wait of at most the rate-limit window: a little more is the window (clock granularity), a
    little in the past is now; anything further either way makes no sense."""
    if not math.isfinite(seconds):
        return None
    if (
        -RATE_LIMIT_WINDOW_SECONDS - WAIT_SLACK_SECONDS
        <= seconds
        <= RATE_LIMIT_WINDOW_SECONDS + WAIT_SLACK_SECONDS
    ):
        return min(max(seconds, 0.0), RATE_LIMIT_WINDOW_SECONDS)
    return None


def _wait(value: str, server_now: float) -> float | None:
    """Seconds to wait, from a header saying either that many seconds or until when, as a unix time in
    seconds or milliseconds on the API's clock (``server_now``). ``None``: it makes no sense."""
    text = value.strip(" \t")
    if len(text) > MAX_HEADER_CHARS or not _ASCII_NUMBER.fullmatch(text):
        return None
    number = float(text)
    if number < _EPOCH_SECONDS:
        # Seconds to wait; ten years of them is not a wait but a broken header.
        return _bounded_wait(number) if number <= RATE_LIMIT_WINDOW_SECONDS + WAIT_SLACK_SECONDS else None
    if number >= _EPOCH_MILLIS_MAX:
        return None
    at = number / 1000 if number >= _EPOCH_MILLIS else number
    return _bounded_wait(at - server_now)


def _http_date(value: str) -> float | None:
    """An HTTP date (RFC 9110: ``Tue, 14 Nov 2023 22:14:00 GMT``) as a unix time; ``None`` if not one."""
    text = value.strip(" \t")
    if len(text) > MAX_HEADER_CHARS or not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": RFC 5322 for "UTC, source unknown"
            return None
        at = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return at if math.isfinite(at) else None


def _retry_after(value: str, server_now: float) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds, a unix time, or an HTTP date on the API's clock
    (``server_now``; a past date is 0). ``None``: it makes no sense."""
    if _ASCII_NUMBER.fullmatch(value.strip(" \t")):
        return _wait(value, server_now)
    at = _http_date(value)
    return None if at is None else _bounded_wait(at - server_now)


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


def _redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced, whatever its letter case."""
    if not secret:
        return text
    return re.sub(re.escape(secret), "[redacted]", text, flags=re.IGNORECASE)


def _clean_message(message: str | None, secret: str) -> str | None:
    """The API's own message, on one line, capped, without markup or the token (in any letter case)."""
    if not message:
        return None
    if _HTML.search(message):
        return None
    message = _redact(message, secret)
    # Again once on one line: a token split by a control character is joined back by a space, not by
    # itself, but what the normalisation makes of the text is checked, not assumed.
    text = _redact(" ".join(_CONTROL.sub(" ", message).split()), secret)
    if len(text) > MAX_API_MESSAGE_CHARS:
        text = text[: MAX_API_MESSAGE_CHARS - 1] + "…"
    return text or None


def _join(summary: str, api_message: str | None) -> str:
    return f"{summary}: {api_message}" if api_message else summary


def _clean_error_id(error_id: str | None, secret: str) -> str | None:
    """The API's error id when it looks like one: short, plain, and not the token (in any letter case)."""
    if not error_id or len(error_id) > MAX_ERROR_ID_CHARS or not _ERROR_ID.fullmatch(error_id):
        return None
    if secret and secret.casefold() in error_id.casefold():
        return None
    return error_id


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


def _validate_item(listing: _Listing[T], raw: object, where: str, unknown: list[str]) -> T | str:
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


def _parse_page(listing: _Listing[T], endpoint: str, body: bytes, page: int) -> _Page[T]:
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
    return _Page(items, problems, pagination, unknown)


def _locate_items(listing: _Listing[Any], document: object) -> tuple[str | None, list[object], str]:
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
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "NorthflankClient",
    "RateLimitStatus",
    "RequestGate",
]

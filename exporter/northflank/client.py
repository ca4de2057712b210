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

429, 5xx, timeouts and connection failures are retried as :mod:`retries` says (backoff with jitter; a
429 waits what the API says, or is given up at once with ``retry_at`` when that is too long). Other 4xx
are not retried.

Ids are input too: a path parameter that is not an id of the documented pattern is refused before a
request is made (:class:`InvalidIdentifierError`, see :mod:`routes`); the models skip listed items
whose id is not one.

Pagination: ``per_page`` and the ``cursor`` of the previous page, until ``hasNextPage`` is false. A cursor
that comes back twice is an :class:`InvalidResponseError`; so is a listing longer than ``max_pages``. A page
that says ``hasNextPage: true`` but carries no cursor ends the walk and what was read is returned: the
official js-client stops on a missing cursor the same way, and there is no way to ask for the next page
without one. A response without ``pagination`` (the documented example of the schedules listing has none)
is a single page.

Headers are input too (:mod:`ratelimit` reads them); so is every item (:mod:`listings` validates them one by
one and keeps the rest of a listing when one is invalid).

Errors never carry the token, a header, a concrete URL, a query string, a response body beyond the API's own
short error message and error id (from both of which :mod:`redaction` removes the token), or
an input value: validation messages are built from pydantic's ``loc`` and ``msg``
only, and every exception is raised outside the ``except`` block that caught its cause, so no
``__cause__`` / ``__context__`` chain leads back to an httpx or pydantic exception holding the request or
the payload (a destination listing holds the bucket's keys).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, TypeVar

import httpx

from exporter import __version__, defaults
from exporter.apitoken import ApiToken, ReloadableToken
from exporter.clock import Clock
from exporter.northflank import routes
from exporter.northflank.connection_errors import describe_connection_error, describe_timeout
from exporter.northflank.errors import (
    ApiError,
    AuthError,
    InvalidResponseError,
    NorthflankError,
    NotFoundError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from exporter.northflank.listings import (
    ADDONS,
    BACKUPS,
    DESTINATION_BACKUPS,
    DESTINATIONS,
    PROJECTS,
    RESTORES,
    SCHEDULES,
    Collected,
    Listing,
    finish,
    parse_page,
)
from exporter.northflank.metrics import CODE_CONNECTION_ERROR, CODE_TIMEOUT, ApiMetrics
from exporter.northflank.models import (
    Addon,
    Backup,
    BackupDestination,
    DestinationBackup,
    Project,
    Restore,
    Schedule,
)
from exporter.northflank.problemlog import ProblemLog
from exporter.northflank.ratelimit import HeaderReader, HeaderReading, RateLimitStatus, ascii_int
from exporter.northflank.redaction import clean_error_id, clean_message, parse_error_body
from exporter.northflank.retries import RetryPolicy, join_message, with_attempts

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = defaults.API_URL
DEFAULT_USER_AGENT = f"northflank-backup-exporter/{__version__}"
MAX_PER_PAGE = 100
#: A non-2xx body is read only to find the API's short error message: no need for megabytes of it.
ERROR_BODY_LIMIT = 64 * 1024

_STATUS_ERRORS: dict[int, tuple[type[ApiError], str]] = {
    401: (AuthError, "authentication failed"),
    403: (PermissionDeniedError, "permission denied"),
    404: (NotFoundError, "not found"),
}


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
        self._retries = RetryPolicy(
            max_retries, max_retry_wait, backoff_base, rng if rng is not None else random.Random()
        )
        self._max_body_bytes = max_body_bytes
        self._per_page = per_page
        self._max_pages = max_pages
        self._rate_limit: RateLimitStatus | None = None
        self._headers = HeaderReader(clock, self._invalid_header)
        self._problems = ProblemLog(clock)
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
        return self._headers.server_time_offset

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
        return await self._list(PROJECTS, {}, team)

    async def list_addons(self, project_id: str, *, team: str | None = None) -> list[Addon]:
        return await self._list(ADDONS, {"projectId": project_id}, team)

    async def list_backups(self, project_id: str, addon_id: str, *, team: str | None = None) -> list[Backup]:
        return await self._list(BACKUPS, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_backup_schedules(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Schedule]:
        return await self._list(SCHEDULES, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_addon_restores(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Restore]:
        return await self._list(RESTORES, {"projectId": project_id, "addonId": addon_id}, team)

    async def list_backup_destinations(self, *, team: str | None = None) -> list[BackupDestination]:
        return await self._list(DESTINATIONS, {}, team)

    async def list_destination_backups(
        self, destination_id: str, *, team: str | None = None
    ) -> list[DestinationBackup]:
        return await self._list(DESTINATION_BACKUPS, {"backupDestinationId": destination_id}, team)

    # -- pagination and validation ----------------------------------------------------------------------

    async def _list(self, listing: Listing[T], params: dict[str, str], team: str | None) -> list[T]:
        template = listing.template
        if team is not None:
            template = routes.team_scoped(template)
            params = {**params, "teamId": team}
        # Refuses an id that is not one (``..``, empty, with ``/``) before any request carries the token.
        path = routes.expand(template, **params)
        collected = Collected[T]()
        seen: set[str] = set()
        cursor: str | None = None
        for page in range(1, self._max_pages + 1):
            query = {"per_page": str(self._per_page)}
            if cursor is not None:
                query["cursor"] = cursor
            body = await self._request(template, path, query)
            parsed = parse_page(listing, template, body, page)
            collected.add(parsed, page)
            pagination = parsed.pagination
            if not pagination.has_next_page:
                return finish(collected, listing.resource, template, self._metrics, self._problems)
            if not pagination.cursor:
                logger.debug("%s: page %d says hasNextPage but has no cursor; stopping there", template, page)
                return finish(collected, listing.resource, template, self._metrics, self._problems)
            if pagination.cursor in seen:
                raise InvalidResponseError(
                    f"page {page} returned a cursor seen on an earlier page: pagination would loop",
                    endpoint=template,
                )
            seen.add(pagination.cursor)
            cursor = pagination.cursor
        raise InvalidResponseError(f"the listing has more than {self._max_pages} pages", endpoint=template)

    def _invalid_header(self, header: str, why: str, *, loud: int = logging.WARNING) -> None:
        """A header value that makes no sense: counted and ignored. The value itself is never logged."""
        if self._metrics is not None:
            self._metrics.observe_invalid_header(header)
        level, quiet = self._problems.level(f"ignored {header} headers", loud)
        logger.log(
            level,
            "ignored the %s header of a Northflank API response: %s%s",
            header,
            why,
            quiet,
            extra={"header": header},
        )

    # -- one request, with retries ----------------------------------------------------------------------

    async def _request(self, endpoint: str, path: str, query: Mapping[str, str]) -> bytes:
        """The body of a 2xx answer to ``GET path``, retrying what is worth retrying."""
        attempts = self._retries.attempts
        for attempt in range(1, attempts + 1):
            if self._gate is not None:
                await self._gate.acquire(endpoint)
            outcome = await self._attempt(endpoint, path, query, attempt)
            if self._gate is not None:
                self._gate.observe(endpoint, outcome.status_code, outcome.rate_limit)
            if outcome.error is None:
                if outcome.body is None:  # pragma: no cover - every _Attempt carries a body or an error
                    raise RuntimeError("an HTTP attempt gave neither a body nor an error")
                return outcome.body
            delay = outcome.retry_delay
            if delay is None or self._retries.gives_up(delay, attempt):
                raise with_attempts(outcome.error, attempt)
            logger.info(
                "request failed: %s; retrying in %.2fs",
                outcome.error.message,
                delay,
                extra={
                    "endpoint": endpoint,
                    "reason": outcome.error.reason,
                    "attempt": attempt,
                    "attempts": attempts,
                },
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
        reading: HeaderReading | None = None
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
        except (TimeoutError, httpx.TimeoutException) as exc:
            # Also when the headers came but the body did not: the attempt produced nothing usable.
            no_response, cause = CODE_TIMEOUT, describe_timeout(exc, request.url, self._timeout)
        except httpx.TransportError as exc:
            # Which host, and refused, unresolvable or untrusted: fixed phrases, never the exception's text.
            no_response, cause = CODE_CONNECTION_ERROR, describe_connection_error(exc, request.url)
        except httpx.DecodingError:
            undecodable = True
        duration = time.perf_counter() - started
        code = no_response or str(status_code)
        if self._metrics is not None:
            self._metrics.observe_request(endpoint, code, duration)
        logger.debug("GET %s -> %s in %.3fs (attempt %d)", endpoint, code, duration, attempt)

        error: NorthflankError
        if no_response == CODE_TIMEOUT:
            error = RequestTimeoutError(cause, endpoint=endpoint)
            return _Attempt(None, rate_limit, error=error, retry_delay=self._retries.backoff(attempt))
        if no_response == CODE_CONNECTION_ERROR:
            error = TransportError(cause, endpoint=endpoint)
            return _Attempt(None, rate_limit, error=error, retry_delay=self._retries.backoff(attempt))
        if status_code is None or reading is None:  # pragma: no cover - only a response sets them
            error = InvalidResponseError("no response could be read", endpoint=endpoint)
            return _Attempt(None, rate_limit, error=error)
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
        reading: HeaderReading,
        attempt: int,
        secret: str,
    ) -> _Attempt:
        rate_limit = reading.rate_limit
        api_error = parse_error_body(body)
        # Every field of the error body that is kept is redacted; ``details`` is not even parsed.
        api_message = clean_message(api_error.message if api_error else None, secret)
        error_id = clean_error_id(api_error.id if api_error else None, secret)
        if status_code == 429:
            limited, delay = self._retries.rate_limited(
                headers,
                reading,
                now=self._clock.now(),
                attempt=attempt,
                invalid_header=self._invalid_header,
                endpoint=endpoint,
                api_message=api_message,
                error_id=error_id,
            )
            return _Attempt(status_code, rate_limit, error=limited, retry_delay=delay)
        retry_delay: float | None = None
        kind: type[ApiError]
        if status_code >= 500:
            kind, summary = ServerError, "server error"
            retry_delay = self._retries.backoff(attempt)
        else:
            kind, summary = _STATUS_ERRORS.get(
                status_code, (ApiError, "request rejected" if status_code >= 400 else "unexpected response")
            )
            if status_code == 401 and self._token_replaced(secret):
                retry_delay = 0.0  # the token file was rotated: the new token is tried at once
        error = kind(
            join_message(summary, api_message), endpoint=endpoint, status_code=status_code, error_id=error_id
        )
        return _Attempt(status_code, rate_limit, error=error, retry_delay=retry_delay)

    def _token_replaced(self, rejected: str) -> bool:
        """After a 401: read a token file again at once, and say whether the token now differs from the
        one that was refused (a concurrent request may have read the new one already)."""
        if isinstance(self._token, ReloadableToken):
            self._token.reload()
        return self._token.get_secret_value() != rejected

    def _observe_headers(self, headers: httpx.Headers) -> HeaderReading:
        reading = self._headers.read(headers)
        if reading.rate_limit is not None:
            self._rate_limit = reading.rate_limit
            if self._metrics is not None:
                self._metrics.observe_rate_limit(reading.rate_limit)
        return reading


# -- pure helpers ---------------------------------------------------------------------------------------


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The (decoded) body, or ``None`` as soon as it is known to be longer than ``limit`` bytes."""
    length = response.headers.get("content-length")
    declared = ascii_int(length) if length is not None else None
    if declared is not None and declared > limit:
        return None
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "NorthflankClient",
    "RateLimitStatus",
    "RequestGate",
]

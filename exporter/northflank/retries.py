"""When the client tries a request again, and how long it waits first: the retry policy.

429, 5xx, timeouts and connection failures are retried with exponential backoff and jitter; a 429 waits
what ``Retry-After`` (else ``x-ratelimit-reset``) says, unless that is longer than ``max_retry_wait``: then
the :class:`RateLimitedError` is given up at once, with ``retry_at`` so that the caller can defer. Other
4xx are not retried (a 401 is, at once, when a rotated token file holds a new token: the client decides).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from exporter.northflank.errors import NorthflankError, RateLimitedError
from exporter.northflank.ratelimit import HeaderReading, retry_after_wait

#: Told of a header whose value makes no sense: (header, why).
InvalidHeader = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a request is tried again, and how long to wait before each try."""

    max_retries: int = 3
    #: The longest wait the client sits out itself (a backoff, a Retry-After); a longer 429 is given up.
    max_retry_wait: float = 60.0
    backoff_base: float = 0.5
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if not (math.isfinite(self.max_retry_wait) and self.max_retry_wait >= 0):
            raise ValueError("max_retry_wait must be a non-negative number of seconds")
        if not (math.isfinite(self.backoff_base) and self.backoff_base >= 0):
            raise ValueError("backoff_base must be a non-negative number of seconds")

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def gives_up(self, delay: float | None, attempt: int) -> bool:
        """Whether attempt number ``attempt``, which asked to be retried after ``delay`` seconds (None:
        not retryable), was the last."""
        return delay is None or attempt >= self.attempts or delay > self.max_retry_wait

    def backoff(self, attempt: int) -> float:
        """Exponential, capped at ``max_retry_wait``, with jitter between half and all of it."""
        ceiling = min(self.max_retry_wait, self.backoff_base * 2.0 ** min(attempt - 1, 32))
        return ceiling * (0.5 + 0.5 * self.rng.random())

    def rate_limited(
        self,
        headers: httpx.Headers,
        reading: HeaderReading,
        *,
        now: float,
        attempt: int,
        invalid_header: InvalidHeader,
        endpoint: str,
        api_message: str | None,
        error_id: str | None,
    ) -> tuple[RateLimitedError, float]:
        """A 429: the error, and how long to wait before trying again (what the API said, else a backoff)."""
        wait: float | None = None
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            wait = retry_after_wait(retry_after, reading.server_now)
            if wait is None:
                invalid_header(
                    "retry-after",
                    "neither seconds nor a time within the API's 1 h rate-limit window; "
                    "waiting for x-ratelimit-reset or backing off instead",
                )
        if wait is None:
            wait = reading.reset
        if wait is not None and wait > self.max_retry_wait:
            summary = f"rate limited for {wait:.0f}s, longer than the {self.max_retry_wait:g}s allowed"
        else:
            summary = "rate limited"
        error = RateLimitedError(
            join_message(summary, api_message),
            endpoint=endpoint,
            error_id=error_id,
            retry_at=now + wait if wait is not None else None,
        )
        return error, wait if wait is not None else self.backoff(attempt)


def with_attempts(error: NorthflankError, attempts: int) -> NorthflankError:
    """The error of the last attempt, saying how many there were when it was not the first."""
    if attempts > 1:
        error.message = f"{error.message} (after {attempts} attempts)"
        error.args = (error.message,)
    return error


def join_message(summary: str, api_message: str | None) -> str:
    return f"{summary}: {api_message}" if api_message else summary


__all__ = ["InvalidHeader", "RetryPolicy", "join_message", "with_attempts"]

"""The API's rate limit: N requests per account per window; the window starts at its first request and
resets one hour (``window`` seconds) later. Pure bookkeeping: the caller passes the time."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_LIMIT = 1000
DEFAULT_WINDOW = 3600.0


@dataclass(frozen=True)
class RateState:
    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window resets (whole seconds, rounded up, as the ``x-ratelimit-reset`` header).
    reset_after: int

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_after),
        }


class RateLimiter:
    def __init__(self, limit: int = DEFAULT_LIMIT, window: float = DEFAULT_WINDOW) -> None:
        if limit < 0 or window <= 0:
            raise ValueError("limit must be >= 0 and window > 0")
        self.limit = limit
        self.window = window
        self._window_start: float | None = None
        self._used = 0

    def _roll(self, now: float) -> None:
        if self._window_start is None or now >= self._window_start + self.window:
            self._window_start = now
            self._used = 0

    def _state(self, now: float, allowed: bool) -> RateState:
        start = self._window_start if self._window_start is not None else now
        return RateState(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - self._used),
            reset_after=max(0, math.ceil(start + self.window - now)),
        )

    def hit(self, now: float) -> RateState:
        """Count one request at ``now``; ``allowed`` is False past the limit (the request is then refused)."""
        self._roll(now)
        if self._used >= self.limit:
            return self._state(now, allowed=False)
        self._used += 1
        return self._state(now, allowed=True)

    def consume(self, now: float, requests: int) -> RateState:
        """Count requests made by others sharing the account (its CI, its people) at ``now``."""
        if requests < 0:
            raise ValueError("requests must be >= 0")
        self._roll(now)
        self._used = min(self.limit, self._used + requests)
        return self._state(now, allowed=self._used < self.limit)

    def peek(self, now: float) -> RateState:
        """The state at ``now`` without counting anything."""
        if self._window_start is None or now >= self._window_start + self.window:
            return RateState(True, self.limit, self.limit, math.ceil(self.window))
        return self._state(now, allowed=self._used < self.limit)

    def reset(self) -> None:
        self._window_start = None
        self._used = 0


__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW", "RateLimiter", "RateState"]

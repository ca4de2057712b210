"""One token bucket, for the planner's tiers and for the web rate limit.

``rate`` tokens a second accrue up to ``capacity``. Time is passed in (``now``), never read, so the planner
can run it on a virtual clock and the web layer on ``time.monotonic``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Waits shorter than this are rounded up to it (float clocks near 1.8e9 s have a 2e-7 s resolution).
MIN_WAIT = 0.001


@dataclass(slots=True)
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, *, rate: float, capacity: float, now: float) -> TokenBucket:
        return cls(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, now: float, need: float) -> float:
        """Seconds until ``need`` tokens (at most the capacity) are there; 0 when they are."""
        self.refill(now)
        need = min(need, self.capacity)
        missing = need - self.tokens
        if missing <= 1e-9:
            return 0.0
        return max(MIN_WAIT, missing / self.rate) if self.rate > 0 else math.inf

    def take(self, now: float, amount: float) -> None:
        """Takes ``amount`` whether or not it is there: the planner spends what a refresh really cost."""
        self.refill(now)
        self.tokens = min(self.capacity, self.tokens - amount)

    def allow(self, now: float) -> bool:
        """Takes one token if there is one (a request let through) and says whether it did."""
        self.refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def configure(self, now: float, rate: float, capacity: float) -> None:
        self.refill(now)
        self.rate, self.capacity = rate, capacity
        self.tokens = min(self.tokens, capacity)


__all__ = ["MIN_WAIT", "TokenBucket"]

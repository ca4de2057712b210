"""The exporter's request budget: how many Northflank API requests it may send, and when.

:class:`RequestBudget` is the API client's :class:`~exporter.northflank.client.RequestGate`: every HTTP
attempt (every page and every retry) awaits :meth:`RequestBudget.acquire` first and reports its outcome
to :meth:`RequestBudget.observe`. It enforces three rules, in this order:

1. **After a 429** nothing goes out until the API said to come back. The client itself waits a short
   ``Retry-After`` (else ``x-ratelimit-reset``) before its retry; when the wait is longer than it may
   sleep, it gives the listing up with :class:`~exporter.northflank.errors.RateLimitedError`, whose
   ``retry_at`` the refresher passes to :meth:`RequestBudget.rate_limited`: from then on every request
   waits (a minute when the API said nothing). And when a response says the account has no request
   left (``x-ratelimit-remaining: 0``) nothing goes out until its window resets.
2. **The reserve.** The rate limit belongs to the account, shared with its CI/CD and its people. When
   the latest ``x-ratelimit-remaining`` is below ``reserve`` (a fraction) of ``x-ratelimit-limit``, only
   *essential* requests go out until the window resets; when it is 0, none do.
3. **The budget**: at most ``budget`` requests in any rolling hour, counted by a sliding log of the
   times of the requests sent (so there is no window boundary to burst across). Without a configured
   budget it is half the ``x-ratelimit-limit`` the API announces (500 until one is seen).

The announced limit is input too: one outside :data:`MIN_PLAUSIBLE_LIMIT`..:data:`MAX_PLAUSIBLE_LIMIT`
(an announced limit of 1 would leave the exporter one request an hour, one of 10^12 would let it spend
the account's whole budget, and hold every ordinary request in the reserve) is warned about once and
bounded, for the budget and the reserve alike. No hold (a 429's, an exhausted window's) lasts longer
than the window.

Which requests are essential is the caller's knowledge, not the client's: the planner runs each
refresh inside :meth:`RequestBudget.track`, which marks the requests of that refresh (through a context
variable, so the client needs no parameter for it) and counts them: the page count of a listing is what
its next refresh is expected to cost.

Nothing here sleeps except ``acquire``; the rest is bookkeeping on the injected clock, so the decisions
(:meth:`RequestBudget.delay`) are plain functions of the recorded requests, the headers and ``now``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import defaults
from exporter.clock import Clock
from exporter.exposition import Family
from exporter.metrics import API_REQUEST_BUDGET, API_REQUESTS_LAST_HOUR, REFRESH_DEFERRED
from exporter.northflank.client import RateLimitStatus
from exporter.state.records import BudgetState

log = logging.getLogger(__name__)

#: The rolling window the budget is counted over, and the API's rate-limit window.
WINDOW_SECONDS = 3600.0
#: The API's documented default limit per window, assumed until a response announces one.
DEFAULT_RATE_LIMIT = 1000
#: Share of the announced limit the exporter takes when no budget is configured.
DEFAULT_BUDGET_SHARE = 0.5
DEFAULT_RESERVE = defaults.RATE_LIMIT_RESERVE
#: How long to hold off after a 429 that said neither Retry-After nor x-ratelimit-reset.
DEFAULT_RATE_LIMITED_SECONDS = 60.0
#: A 429 is logged at WARNING at most once per this long (the rest at DEBUG: they are counted anyway).
RATE_LIMITED_LOG_SECONDS = 300.0
#: An announced limit outside this range (a tenth to ten times the documented 1000) is not believed: the
#: nearest bound is used instead.
MIN_PLAUSIBLE_LIMIT = 100
MAX_PLAUSIBLE_LIMIT = 10_000


@dataclass(slots=True)
class RequestTally:
    """The requests of one refresh, as counted by :meth:`RequestBudget.track`."""

    essential: bool
    requests: int = 0


_CURRENT: ContextVar[RequestTally | None] = ContextVar("northflank_request_tally", default=None)


class RequestBudget:
    """A sliding-window request budget with a rate-limit reserve; the API client's ``RequestGate``."""

    def __init__(
        self,
        *,
        clock: Clock,
        budget: int | None = None,
        reserve: float = DEFAULT_RESERVE,
        window: float = WINDOW_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if budget is not None and budget < 1:
            raise ValueError("budget must be at least 1 request per window")
        if not 0 <= reserve < 1:
            raise ValueError("reserve must be a fraction in [0, 1)")
        if not (math.isfinite(window) and window > 0):
            raise ValueError("window must be a positive number of seconds")
        self._clock = clock
        self._configured = budget
        self._reserve = reserve
        self._window = window
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._status: RateLimitStatus | None = None
        self._blocked_until = -math.inf
        self._quiet_until = -math.inf
        self._announced: int | None = None
        self._implausible_warned = False

    # -- what the budget is ---------------------------------------------------------------------------

    @property
    def window(self) -> float:
        return self._window

    @property
    def limit(self) -> int:
        """Requests allowed per rolling window: the configured budget, else half the announced limit."""
        if self._configured is not None:
            return self._configured
        announced = self._announced if self._announced is not None else DEFAULT_RATE_LIMIT
        return max(1, math.floor(announced * DEFAULT_BUDGET_SHARE))

    @property
    def rate_limit(self) -> RateLimitStatus | None:
        """The latest rate-limit headers observed."""
        return self._status

    def spent(self, now: float) -> int:
        """Requests sent in the rolling window ending at ``now``."""
        self._expire(now)
        return len(self._sent)

    def sent_times(self) -> tuple[float, ...]:
        """When the requests still in the window were sent (oldest first)."""
        return tuple(self._sent)

    # -- the decision ---------------------------------------------------------------------------------

    def delay(self, now: float, *, essential: bool) -> float:
        """Seconds from ``now`` until a request of this kind may go out; 0 when it may go now."""
        until = self._blocked_until
        status = self._status
        if status is not None and (self._exhausted(now) or (not essential and self.in_reserve(now))):
            # The client bounds reset_at already; a window is the most any header may hold us anyway.
            until = max(until, min(status.reset_at, status.observed_at + self._window))
        self._expire(now)
        excess = len(self._sent) - self.limit
        if excess >= 0:
            # The window must lose excess + 1 requests: wait for the (excess + 1)-th oldest to expire.
            until = max(until, self._sent[excess] + self._window)
        return max(0.0, until - now)

    def deferred_seconds(self, now: float) -> float:
        """How long ordinary (non-essential) refreshes are being held back from ``now``; 0 when not."""
        return self.delay(now, essential=False)

    def _exhausted(self, now: float) -> bool:
        status = self._status
        return status is not None and now < status.reset_at and status.remaining <= 0

    def in_reserve(self, now: float) -> bool:
        """Whether the account's remaining requests are below the reserve (only essential ones go)."""
        status = self._status
        return (
            status is not None
            and now < status.reset_at
            and status.remaining < self._reserve * _plausible(status.limit)
        )

    # -- the RequestGate protocol ---------------------------------------------------------------------

    async def acquire(self, endpoint: str) -> None:
        """Wait until the request may go, then record it (in the window and in the current tally)."""
        tally = _CURRENT.get()
        essential = tally.essential if tally is not None else False
        while True:
            now = self._clock.now()
            wait = self.delay(now, essential=essential)
            if wait <= 0:
                break
            log.debug("holding a request to %s for %.1fs (request budget)", endpoint, wait)
            await self._sleep(wait)
        self._sent.append(now)
        if tally is not None:
            tally.requests += 1

    def observe(self, endpoint: str, status_code: int | None, rate_limit: RateLimitStatus | None) -> None:
        if rate_limit is not None:
            self._status = rate_limit
            announced = _plausible(rate_limit.limit)
            if announced != rate_limit.limit:
                self._implausible(rate_limit.limit, announced)
            if announced != self._announced:
                self._announced = announced
                if self._configured is None:
                    log.info(
                        "the API announces %d requests per window; the exporter's budget is %d",
                        rate_limit.limit,
                        self.limit,
                    )
        if status_code == 429:
            # The client waits what the API said before its retry, or gives up and the refresher
            # calls rate_limited(); a 429 on an exhausted account holds everything by its headers.
            now = self._clock.now()
            if now >= self._quiet_until:
                self._quiet_until = now + RATE_LIMITED_LOG_SECONDS
                left = (
                    f"{rate_limit.remaining} of {rate_limit.limit}" if rate_limit is not None else "unknown"
                )
                log.warning(
                    "the Northflank API rate-limited the exporter (HTTP 429; requests left to the account: "
                    "%s); waiting as long as it says before asking again",
                    left,
                )
            else:
                log.debug("the Northflank API answered %s with 429", endpoint)

    def _implausible(self, announced: int, used: int) -> None:
        if self._implausible_warned:
            log.debug("the API announces %d requests per window again; assuming %d", announced, used)
            return
        self._implausible_warned = True
        log.warning(
            "the API announces a rate limit of %d requests per window, outside the plausible %d to %d: "
            "assuming %d for the request budget and the reserve (--northflank.request-budget sets the "
            "budget); this is not logged again",
            announced,
            MIN_PLAUSIBLE_LIMIT,
            MAX_PLAUSIBLE_LIMIT,
            used,
        )

    def rate_limited(self, retry_at: float | None) -> None:
        """A refresh was given up on a 429 whose wait was too long to sleep in the client: hold every
        request until ``retry_at`` (``Retry-After``, else ``x-ratelimit-reset``; a minute without either),
        but never longer than a window from now."""
        now = self._clock.now()
        until = retry_at if retry_at is not None else now + DEFAULT_RATE_LIMITED_SECONDS
        if not math.isfinite(until):
            until = now + DEFAULT_RATE_LIMITED_SECONDS
        until = min(until, now + self._window)
        if until > self._blocked_until:
            self._blocked_until = until
            log.info("holding every request to the Northflank API for %.0fs, as it asked", until - now)

    @contextlib.contextmanager
    def track(self, *, essential: bool) -> Iterator[RequestTally]:
        """Mark and count the requests made inside this block (in this task and the tasks it starts)."""
        tally = RequestTally(essential=essential)
        token = _CURRENT.set(tally)
        try:
            yield tally
        finally:
            _CURRENT.reset(token)

    def _expire(self, now: float) -> None:
        sent, cutoff = self._sent, now - self._window
        while sent and sent[0] <= cutoff:
            sent.popleft()

    # -- across a restart (--storage.path) ------------------------------------------------------------

    def export_state(self) -> BudgetState:
        """The sliding log and the rate-limit state, for the next process to go on counting from."""
        return BudgetState(
            sent=tuple(self._sent),
            rate_limit=self._status,
            blocked_until=self._blocked_until if math.isfinite(self._blocked_until) else None,
            announced=self._announced,
        )

    def restore_state(self, state: BudgetState) -> None:
        """Count the previous process's requests against the rolling hour (a restart must not buy a
        fresh budget), and keep its holds. A time after ``now`` cannot be a request already sent (the
        clock went back): it counts as sent now, so the window still holds it for a whole hour."""
        now = self._clock.now()
        cutoff = now - self._window
        restored = sorted(min(at, now) for at in state.sent if at > cutoff)
        self._sent = deque(sorted([*restored, *self._sent]))
        if state.rate_limit is not None and self._status is None:
            status = state.rate_limit
            # No saved header may hold requests longer than a window from when it was seen.
            reset_at = min(status.reset_at, status.observed_at + self._window)
            self._status = RateLimitStatus(status.limit, status.remaining, reset_at, status.observed_at)
        if state.blocked_until is not None:
            self._blocked_until = max(self._blocked_until, min(state.blocked_until, now + self._window))
        if state.announced is not None and self._announced is None:
            self._announced = _plausible(state.announced)


def _plausible(limit: int) -> int:
    """The announced limit, bounded to what an account may plausibly have."""
    return min(max(limit, MIN_PLAUSIBLE_LIMIT), MAX_PLAUSIBLE_LIMIT)


class BudgetCollector(Collector):
    """The budget's own metrics, computed at scrape time. Register it on the registry you pass around."""

    def __init__(self, budget: RequestBudget, *, clock: Clock) -> None:
        self._budget = budget
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        # Nothing for the registry to check: exporter.metrics declares these families and checks them.
        return ()

    def collect(self) -> Iterator[Metric]:
        now = self._clock.now()
        budget = self._budget
        hour = f"{budget.window:g}s"
        yield _gauge(API_REQUEST_BUDGET, budget.limit, window=hour)
        yield _gauge(API_REQUESTS_LAST_HOUR, budget.spent(now), window=hour)
        yield _gauge(REFRESH_DEFERRED, budget.deferred_seconds(now), window=hour)


def _gauge(family: Family, value: float, *, window: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help.format(window=window), value=value)


__all__ = [
    "DEFAULT_BUDGET_SHARE",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_RESERVE",
    "MAX_PLAUSIBLE_LIMIT",
    "MIN_PLAUSIBLE_LIMIT",
    "WINDOW_SECONDS",
    "BudgetCollector",
    "RequestBudget",
    "RequestTally",
]

"""Metrics about the exporter's own use of the Northflank API: requests, latency and the rate-limit budget.

Registered on the registry passed in, never on the global default. Labels are bounded: ``endpoint`` is a
route template (never a concrete URL with ids) and ``code`` an HTTP status code or one of
:data:`NO_RESPONSE_CODES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from exporter.northflank.client import RateLimitStatus

#: The ``code`` label of an attempt that got no HTTP response.
CODE_TIMEOUT = "timeout"
CODE_CONNECTION_ERROR = "connection_error"
NO_RESPONSE_CODES: tuple[str, ...] = (CODE_TIMEOUT, CODE_CONNECTION_ERROR)

#: From a fast cached answer to the client's longest allowed wait.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "northflank_api_requests_total",
            "HTTP requests the exporter sent to the Northflank API, every retry included (each one costs the "
            "account's rate-limit budget), by route template and HTTP status code "
            "(or timeout / connection_error when no response came).",
            ["endpoint", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "northflank_api_request_duration_seconds",
            "Time from sending a request to the Northflank API to the end of reading its response, "
            "per attempt, by route template.",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.rate_limit_limit = Gauge(
            "northflank_api_rate_limit_limit",
            "Requests the Northflank account may send per rate-limit window, from the x-ratelimit-limit "
            "header of the latest API response that carried the rate-limit headers.",
            registry=registry,
        )
        self.rate_limit_remaining = Gauge(
            "northflank_api_rate_limit_remaining",
            "Requests left to the Northflank account in the current rate-limit window (shared with every "
            "other client of the account), from the x-ratelimit-remaining header of the latest API response "
            "that carried the rate-limit headers.",
            registry=registry,
        )
        self.rate_limit_reset = Gauge(
            "northflank_api_rate_limit_reset_timestamp_seconds",
            "Unix time at which the Northflank rate-limit window resets: the time of the latest API response "
            "that carried the rate-limit headers plus its x-ratelimit-reset header.",
            registry=registry,
        )

    def observe_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, code=code).inc()
        self.duration.labels(endpoint=endpoint).observe(max(duration_seconds, 0.0))

    def observe_rate_limit(self, status: RateLimitStatus) -> None:
        self.rate_limit_limit.set(status.limit)
        self.rate_limit_remaining.set(status.remaining)
        self.rate_limit_reset.set(status.reset_at)


__all__ = ["CODE_CONNECTION_ERROR", "CODE_TIMEOUT", "DURATION_BUCKETS", "NO_RESPONSE_CODES", "ApiMetrics"]

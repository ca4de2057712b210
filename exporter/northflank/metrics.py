"""Metrics about the exporter's own use of the Northflank API: requests, latency and the rate-limit budget.

Registered on the registry passed in, never on the global default. Labels are bounded: ``endpoint`` is a
route template (never a concrete URL with ids), ``code`` an HTTP status code or one of
:data:`NO_RESPONSE_CODES`, ``header`` one of :data:`CHECKED_HEADERS` and ``resource`` one of
:data:`ITEM_RESOURCES`. Every series of the last two exists from the start, at 0.
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

#: The response headers the client acts on, whose nonsensical values are counted and ignored.
CHECKED_HEADERS: tuple[str, ...] = (
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "date",
)
#: The listings' resource names (the same as the refresher's ``resource`` label).
ITEM_RESOURCES: tuple[str, ...] = (
    "projects",
    "addons",
    "backups",
    "schedules",
    "restores",
    "backup_destinations",
    "destination_backups",
)

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

        self.invalid_headers = Counter(
            "northflank_api_invalid_headers",
            "Response headers of the Northflank API the exporter ignored because their value made no sense "
            "(not ASCII digits, a wait longer than the 1 h rate-limit window, a Date a day or more off), "
            "by header name.",
            ["header"],
            registry=registry,
        )
        self.invalid_items = Counter(
            "northflank_exporter_invalid_items",
            "Items of a Northflank API listing skipped because they failed validation (the rest of the "
            "listing is kept), by resource.",
            ["resource"],
            registry=registry,
        )
        self.invalid_values = Counter(
            "northflank_exporter_invalid_values",
            "Values of listed Northflank API items read as unknown because they made no sense (a size that "
            "is not a number of bytes below 2^63, a timestamp after 2200 or unreadable): the item is kept "
            "without them. By resource.",
            ["resource"],
            registry=registry,
        )
        for header in CHECKED_HEADERS:
            self.invalid_headers.labels(header=header)
        for resource in ITEM_RESOURCES:
            self.invalid_items.labels(resource=resource)
            self.invalid_values.labels(resource=resource)

    def observe_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, code=code).inc()
        self.duration.labels(endpoint=endpoint).observe(max(duration_seconds, 0.0))

    def observe_invalid_header(self, header: str) -> None:
        self.invalid_headers.labels(header=header).inc()

    def observe_invalid_items(self, resource: str, count: int) -> None:
        self.invalid_items.labels(resource=resource).inc(count)

    def observe_invalid_values(self, resource: str, count: int) -> None:
        self.invalid_values.labels(resource=resource).inc(count)

    def observe_rate_limit(self, status: RateLimitStatus) -> None:
        self.rate_limit_limit.set(status.limit)
        self.rate_limit_remaining.set(status.remaining)
        self.rate_limit_reset.set(status.reset_at)


__all__ = [
    "CHECKED_HEADERS",
    "CODE_CONNECTION_ERROR",
    "CODE_TIMEOUT",
    "DURATION_BUCKETS",
    "ITEM_RESOURCES",
    "NO_RESPONSE_CODES",
    "ApiMetrics",
]

"""Metrics about the exporter's own use of the Northflank API: requests, latency and the rate-limit budget.

Registered on the registry passed in, never on the global default. Labels are bounded: ``endpoint`` is a
route template (never a concrete URL with ids), ``code`` an HTTP status code or one of
:data:`NO_RESPONSE_CODES`, ``header`` one of :data:`CHECKED_HEADERS` and ``resource`` one of
:data:`ITEM_RESOURCES`. Every series of the last two exists from the start, at 0.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exporter.exposition import Family
from exporter.metrics import (
    API_INVALID_HEADERS,
    API_RATE_LIMIT_LIMIT,
    API_RATE_LIMIT_REMAINING,
    API_RATE_LIMIT_RESET,
    API_REQUEST_DURATION,
    API_REQUESTS,
    INVALID_ITEMS,
    INVALID_VALUES,
)
from exporter.northflank.ratelimit import RateLimitStatus
from exporter.resources import RESOURCES, Resource

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
ITEM_RESOURCES: tuple[Resource, ...] = RESOURCES

#: From a fast cached answer to the client's longest allowed wait.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _counter(family: Family, registry: CollectorRegistry) -> Counter:
    return Counter(family.name, family.help, family.labels, registry=registry)


def _gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    return Gauge(family.name, family.help, family.labels, registry=registry)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # The declarations live in exporter.metrics; prometheus_client adds a counter's _total itself.
        self.requests = _counter(API_REQUESTS, registry)
        self.duration = Histogram(
            API_REQUEST_DURATION.name,
            API_REQUEST_DURATION.help,
            API_REQUEST_DURATION.labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.rate_limit_limit = _gauge(API_RATE_LIMIT_LIMIT, registry)
        self.rate_limit_remaining = _gauge(API_RATE_LIMIT_REMAINING, registry)
        self.rate_limit_reset = _gauge(API_RATE_LIMIT_RESET, registry)
        self.invalid_headers = _counter(API_INVALID_HEADERS, registry)
        self.invalid_items = _counter(INVALID_ITEMS, registry)
        self.invalid_values = _counter(INVALID_VALUES, registry)
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

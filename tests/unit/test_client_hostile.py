"""The API client under hostile input (issue 8, sections 3, 5, 6, 7 and 8): rate-limit headers that make
no sense, items that fail validation, overlapping pages, and error bodies that echo the token.

Uses the harness of test_client (httpx.MockTransport, an injected clock and sleep); the same classes over
real sockets are in tests/integration/test_untrusted_ids.py and test_token_echo.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from exporter.clock import FixedClock
from exporter.northflank import listings
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import InvalidResponseError, NorthflankError, RateLimitedError
from exporter.northflank.metrics import CHECKED_HEADERS, ITEM_RESOURCES, ApiMetrics
from exporter.resources import RESOURCES
from tests.unit.test_client import (
    NOW,
    PROJECTS,
    RATE_HEADERS,
    Factory,
    Harness,
    backup,
    make,
    page,
    project,
    sequence,
)

__all__ = ["make"]  # the fixture, imported to be used here

HOUR = 3600.0
BACKUPS = "/v1/projects/{projectId}/addons/{addonId}/backups"


def http_date(at: float) -> str:
    return format_datetime(datetime.fromtimestamp(at, tz=UTC), usegmt=True)


def raw_headers(**headers: str) -> list[tuple[bytes, bytes]]:
    """Headers as the wire carries them (UTF-8 bytes): httpx.Response refuses non-ASCII str values."""
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]


def invalid_headers(h: Harness, header: str) -> float | None:
    return h.sample("northflank_api_invalid_headers_total", header=header)


def invalid_items(h: Harness, resource: str) -> float | None:
    return h.sample("northflank_exporter_invalid_items_total", resource=resource)


def invalid_values(h: Harness, resource: str) -> float | None:
    return h.sample("northflank_exporter_invalid_values_total", resource=resource)


# -- rate-limit headers: never a wait longer than the window ------------------------------------------------


async def test_a_retry_after_of_ten_years_is_counted_and_ignored(make: Factory) -> None:
    ten_years = str(10 * 365 * 86400)
    h = make(sequence(httpx.Response(429, headers={"retry-after": ten_years}), page([project("a")])))

    assert [p.id for p in await h.client.list_projects()] == ["project-a"]

    # Not obeyed (it raised RateLimitedError with retry_at ten years ahead: no polling for ten years):
    # the client backs off as after a 429 that said nothing.
    assert len(h.sleep.delays) == 1
    assert h.sleep.delays[0] <= 0.5
    assert invalid_headers(h, "retry-after") == 1.0


async def test_an_invalid_retry_after_falls_back_to_x_ratelimit_reset(make: Factory) -> None:
    h = make(
        sequence(
            httpx.Response(429, headers={**RATE_HEADERS, "retry-after": "99999", "x-ratelimit-reset": "9"}),
            page([]),
        )
    )

    await h.client.list_projects()

    assert h.sleep.delays == [9.0]
    assert invalid_headers(h, "retry-after") == 1.0
    assert invalid_headers(h, "x-ratelimit-reset") == 0.0


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        (str(int(NOW) + 12), 12.0),  # a unix time in seconds
        (str(int(NOW) * 1000 + 12_000), 12.0),  # in milliseconds
        (f"{NOW + 12.5:.3f}", 12.5),
        ("12", 12.0),  # what the documentation says: seconds until the reset
        (str(int(NOW) - 30), 0.0),  # a reset just past: now
    ],
)
async def test_x_ratelimit_reset_seconds_or_a_unix_time(make: Factory, reset: str, expected: float) -> None:
    h = make(sequence(httpx.Response(429, headers={**RATE_HEADERS, "x-ratelimit-reset": reset}), page([])))

    await h.client.list_projects()

    assert h.sleep.delays == [pytest.approx(expected)]
    assert h.client.rate_limit is not None
    assert h.client.rate_limit.reset_at == pytest.approx(NOW + expected)
    assert invalid_headers(h, "x-ratelimit-reset") == 0.0


@pytest.mark.parametrize(
    "reset",
    [
        str(10 * 365 * 86400),  # ten years of seconds
        "86400",  # a day: longer than the documented window
        str(int(NOW) + 5 * 3600),  # a unix time hours away
        str(int(NOW) - 86400),  # a unix time a day ago
        str(10**17),  # a unix time in milliseconds, millennia away
        "1e3",
        "-5",
        "inf",
        "\u00b2",  # passes str.isdigit, then int() raises
        "\u0661\u0662",  # Arabic-Indic digits: float() reads them
        "1_000",
    ],
)
async def test_a_nonsensical_x_ratelimit_reset_is_counted_and_ignored(make: Factory, reset: str) -> None:
    h = make(
        sequence(
            httpx.Response(429, headers=raw_headers(**{**RATE_HEADERS, "x-ratelimit-reset": reset})),
            page([], headers=RATE_HEADERS),
        ),
        max_retry_wait=HOUR,
    )

    await h.client.list_projects()

    assert invalid_headers(h, "x-ratelimit-reset") == 1.0
    assert len(h.sleep.delays) == 1
    assert h.sleep.delays[0] <= 0.5  # backed off, not obeyed
    assert h.client.rate_limit is not None
    assert h.client.rate_limit.reset_at == NOW + 1800  # the well-formed one


async def test_an_http_date_from_a_server_clock_hours_ahead_is_read_against_its_date(make: Factory) -> None:
    ahead = NOW + 3 * HOUR
    h = make(
        sequence(
            httpx.Response(429, headers={"date": http_date(ahead), "retry-after": http_date(ahead + 40)}),
            page([]),
        )
    )

    await h.client.list_projects()

    # Not 3 h 40 s (more than max_retry_wait: the listing would have been given up for 3 hours).
    assert h.sleep.delays == [40.0]
    assert h.client.server_time_offset == 3 * HOUR
    assert invalid_headers(h, "retry-after") == 0.0
    assert invalid_headers(h, "date") == 0.0


async def test_without_a_date_an_http_date_is_read_against_the_measured_offset(make: Factory) -> None:
    ahead = NOW + 3 * HOUR
    h = make(
        sequence(
            page([], headers={"date": http_date(ahead)}),
            httpx.Response(429, headers={"retry-after": http_date(ahead + 30)}),
            page([]),
        )
    )
    await h.client.list_projects()

    await h.client.list_projects()

    assert h.sleep.delays == [30.0]


async def test_an_http_date_beyond_the_window_is_counted_and_ignored(make: Factory) -> None:
    # No Date and no offset known: 3 h 40 s away on our clock is no wait the API can mean.
    h = make(sequence(httpx.Response(429, headers={"retry-after": http_date(NOW + 3 * HOUR + 40)}), page([])))

    await h.client.list_projects()

    assert invalid_headers(h, "retry-after") == 1.0
    assert h.sleep.delays[0] <= 0.5


async def test_a_wait_longer_than_max_retry_wait_is_given_up_with_retry_at_within_the_window(
    make: Factory,
) -> None:
    h = make(sequence(httpx.Response(429, headers={"retry-after": str(int(NOW) + 1200)})))

    with pytest.raises(RateLimitedError) as caught:
        await h.client.list_projects()

    assert caught.value.retry_at == NOW + 1200
    assert h.sleep.delays == []


# -- the server clock ----------------------------------------------------------------------------------------


async def test_server_time_offset_is_measured_from_date_headers(make: Factory) -> None:
    answers = [
        page([], headers={"date": http_date(NOW + 3 * HOUR)}),
        page([], headers={"date": http_date(NOW + 3 * HOUR)}),
        page([], headers={"date": http_date(NOW - 600)}),  # one odd proxy
        page([], headers={"date": http_date(NOW + 2 * 86400)}),  # no clock skew: a broken header
        page([], headers={"date": "not a date"}),
        page([], headers={"date": "Fri, 31 Dec 9999 23:59:59 -0100"}),
        page([], headers=raw_headers(date="Tue, \u00b2 Nov 2023 22:14:00 GMT")),
        page([]),
    ]
    h = make(sequence(*answers))
    assert h.client.server_time_offset == 0.0

    await h.client.list_projects()
    assert h.client.server_time_offset == 3 * HOUR
    for _ in answers[1:]:
        await h.client.list_projects()

    # The median of the last valid ones: the odd proxy does not move it; the broken ones are ignored.
    assert h.client.server_time_offset == 3 * HOUR
    assert invalid_headers(h, "date") == 4.0


# -- header digits: ASCII only, never an exception ----------------------------------------------------------


@pytest.mark.parametrize("header", ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"])
@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "\uff11\uff12", "1 2", "0x10", "9" * 40])
async def test_odd_digits_in_a_rate_limit_header_are_counted_and_ignored(
    make: Factory, header: str, digits: str
) -> None:
    h = make(
        sequence(
            page([], headers=RATE_HEADERS),
            page([project("a")], headers=raw_headers(**{**RATE_HEADERS, header: digits})),
        )
    )
    await h.client.list_projects()
    h.clock.advance(60)

    assert [p.id for p in await h.client.list_projects()] == ["project-a"]

    assert invalid_headers(h, header) == 1.0
    assert h.client.rate_limit is not None
    assert h.client.rate_limit.observed_at == NOW  # the well-formed one is kept


async def test_odd_digits_in_retry_after_and_content_length_never_escape(make: Factory) -> None:
    body = b'{"data": {"projects": []}}'
    h = make(
        sequence(
            httpx.Response(429, headers=raw_headers(retry_after="\u00b2")),
            httpx.Response(200, content=body, headers=raw_headers(content_length="\u00b2")),
        )
    )

    assert await h.client.list_projects() == []
    assert invalid_headers(h, "retry-after") == 1.0


def hostile_header_value() -> st.SearchStrategy[str]:
    number = st.one_of(
        st.integers(min_value=-(10**20), max_value=10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from([str(int(NOW) + 60), str(int(NOW) * 1000 + 60_000), "\u00b2", "\u0661", ""]),
    )
    dates = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: format_datetime(d.replace(tzinfo=UTC), usegmt=True)
    )
    return st.one_of(number, dates, st.text(max_size=30))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["retry-after", "x-ratelimit-reset", "x-ratelimit-limit", "x-ratelimit-remaining", "date"]
        ),
        hostile_header_value(),
    )
)
def test_no_header_makes_the_client_wait_longer_than_the_window_or_raise_outside_the_taxonomy(
    headers: dict[str, str],
) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        encoded = [(k.encode(), v.encode("utf-8", "surrogatepass")) for k, v in headers.items()]
        return httpx.Response(429, headers=encoded)

    async def run() -> NorthflankError | None:
        client = NorthflankClient(
            base_url="https://api.example.test",
            token=SecretStr("t"),
            transport=httpx.MockTransport(handler),
            clock=FixedClock(NOW),
            sleep=sleep,
            metrics=ApiMetrics(CollectorRegistry()),
            rng=random.Random(1),
            max_retry_wait=HOUR * 10,  # so that every wait the headers ask for is slept, and seen here
            max_retries=2,
        )
        try:
            await client.list_projects()
        except NorthflankError as error:
            return error
        finally:
            await client.aclose()
        return None

    error = asyncio.run(run())

    assert isinstance(error, RateLimitedError)
    assert all(0 <= d <= HOUR for d in delays)
    assert error.retry_at is None or NOW <= error.retry_at <= NOW + HOUR


# -- items: one bad item does not blind the listing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"createdAt": None}, "createdAt"),
        ({"createdAt": "9999-12-31T23:59:59-05:00"}, "createdAt"),
        ({"createdAt": "0001-01-01T00:00:00+05:00"}, "createdAt"),
        ({"status": ["completed"]}, "status"),
        ({"id": None}, "id"),
        ({"config": "SENTINEL-big"}, "config"),
    ],
)
async def test_an_invalid_backup_is_skipped_counted_and_the_rest_kept(
    make: Factory, caplog: pytest.LogCaptureFixture, bad: dict[str, Any], field: str
) -> None:
    caplog.set_level(logging.DEBUG)
    pages = {
        None: page([backup("1"), backup("2", **bad)], key="backups", has_next=True, cursor="c2"),
        "c2": page([backup("3")], key="backups"),
    }
    h = make(lambda request: pages[request.url.params.get("cursor")])

    backups = await h.client.list_backups("p1", "a1")

    assert [b.id for b in backups] == ["backup-1", "backup-3"]
    assert invalid_items(h, "backups") == 1.0
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert f"data.backups[1].{field}" in message
    assert BACKUPS in message
    for value in bad.values():
        if isinstance(value, str):
            assert value not in caplog.text  # the field path and pydantic's message, never the value


@pytest.mark.parametrize("size", ["\u00b2", str(2**63), str(10**400), "1e400", -1])
async def test_an_odd_size_is_unknown_and_the_backup_kept(make: Factory, size: object) -> None:
    h = make(sequence(page([backup("1", config={"size": size}), backup("2")], key="backups")))

    backups = await h.client.list_backups("p1", "a1")

    assert [(b.id, b.config.size) for b in backups] == [("backup-1", None), ("backup-2", 1234)]
    assert invalid_items(h, "backups") == 0.0
    assert invalid_values(h, "backups") == 1.0  # kept, but the nonsense is counted


@pytest.mark.parametrize(
    ("completed_at", "counted"),
    [
        (None, 0.0),  # in flight: a placeholder, not nonsense
        ("", 0.0),
        ("1970-01-01T00:00:00Z", 0.0),
        ("0001-01-01T00:00:00Z", 0.0),  # Go's zero time
        ("9999-12-31T23:59:59-05:00", 1.0),  # overflowed astimezone() before
        ("not a time", 1.0),
    ],
)
async def test_an_optional_timestamp_that_makes_no_sense_is_unknown_and_counted(
    make: Factory, caplog: pytest.LogCaptureFixture, completed_at: object, counted: float
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make(sequence(page([backup("1", completedAt=completed_at)], key="backups")))

    (listed,) = await h.client.list_backups("p1", "a1")

    assert listed.completed_at is None
    assert invalid_values(h, "backups") == counted
    assert invalid_items(h, "backups") == 0.0
    lines = [r.getMessage() for r in caplog.records if "as unknown" in r.getMessage()]
    assert len(lines) == int(counted)
    if isinstance(completed_at, str) and completed_at:
        assert completed_at not in caplog.text


async def test_every_listing_skips_and_counts_by_its_resource(make: Factory) -> None:
    addon = {"id": "a1", "name": "db", "spec": {"type": "postgresql"}}
    schedule = {"id": "s1", "backupType": "dump", "scheduling": {"interval": "hourly", "minute": [0]}}
    restore = {"id": 1, "restoreTimestamp": "2024-05-01T03:00:00Z", "status": "completed"}
    destination = {"id": "d1", "name": "bucket"}
    routes = {
        "/v1/projects": page([project("a"), {"id": "..", "name": "x"}], key="projects"),
        "/v1/projects/p1/addons": page([addon, {**addon, "id": ""}], key="addons"),
        "/v1/projects/p1/addons/a1/backups": page([backup("1"), backup("2", createdAt=None)], key="backups"),
        "/v1/projects/p1/addons/a1/backup-schedules": page(
            [{**schedule, "retentionTime": 7}, {**schedule, "id": "s2", "retentionTime": 10**330}],
            key="schedules",
        ),
        "/v1/projects/p1/addons/a1/restores": page(
            [restore, {**restore, "id": 2, "restoreTimestamp": "9999-12-31T23:59:59-05:00"}], key="restores"
        ),
        "/v1/backup-destinations": page(
            [destination, {**destination, "id": "a/b"}], key="backupDestinations"
        ),
        "/v1/backup-destinations/d1/backups": page(
            [backup("1"), backup("2", createdAt="0001-01-01T00:00:00+05:00")], key=None
        ),
    }
    h = make(lambda request: routes[request.url.path])

    assert len(await h.client.list_projects()) == 1
    assert len(await h.client.list_addons("p1")) == 1
    assert len(await h.client.list_backups("p1", "a1")) == 1
    assert len(await h.client.list_backup_schedules("p1", "a1")) == 1
    assert len(await h.client.list_addon_restores("p1", "a1")) == 1
    assert len(await h.client.list_backup_destinations()) == 1
    assert len(await h.client.list_destination_backups("d1")) == 1

    assert {resource: invalid_items(h, resource) for resource in ITEM_RESOURCES} == dict.fromkeys(
        ITEM_RESOURCES, 1.0
    )


async def test_invalid_items_are_logged_once_per_resource_per_hour(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make(lambda _: page([backup("1"), backup("2", createdAt=None)], key="backups"))

    for _ in range(3):
        await h.client.list_backups("p1", "a1")
    h.clock.advance(HOUR)
    await h.client.list_backups("p1", "a1")

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert invalid_items(h, "backups") == 4.0
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert [r.levelno for r in skipped] == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING]


async def test_a_listing_whose_every_item_is_invalid_is_an_invalid_response(make: Factory) -> None:
    # Taking it for an empty listing would throw away the addon's last good data.
    h = make(sequence(page([backup("1", createdAt=None), backup("2", createdAt=None)], key="backups")))

    with pytest.raises(InvalidResponseError, match=r"all 2 item\(s\) of the listing are invalid"):
        await h.client.list_backups("p1", "a1")
    assert invalid_items(h, "backups") == 2.0


async def test_counters_exist_from_the_start_at_zero(make: Factory) -> None:
    h = make(sequence())
    for header in CHECKED_HEADERS:
        assert invalid_headers(h, header) == 0.0
    for resource in ITEM_RESOURCES:
        assert invalid_items(h, resource) == 0.0
        assert invalid_values(h, resource) == 0.0
    # The same names as the refresher's resource label, and every listing has one of them.
    assert ITEM_RESOURCES == RESOURCES
    assert {listing.resource for listing in listings.LISTINGS} == set(ITEM_RESOURCES)


# -- duplicates across pages ---------------------------------------------------------------------------------


async def test_overlapping_pages_count_each_item_once(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = backup("3", config={"size": "100"})
    again = backup("3", config={"size": "999"})
    pages = {
        None: page([backup("1"), backup("2"), first], key="backups", has_next=True, cursor="c2"),
        "c2": page([again, backup("4")], key="backups", has_next=True, cursor="c3"),
        "c3": page([backup("4"), backup("5"), backup("1")], key="backups"),
    }
    h = make(lambda request: pages[request.url.params.get("cursor")])

    backups = await h.client.list_backups("p1", "a1")

    assert [b.id for b in backups] == [f"backup-{i}" for i in "12345"]
    assert backups[2].config.size == 100  # the first occurrence is kept
    assert invalid_items(h, "backups") == 0.0  # duplicates are the pagination's, not invalid data
    assert not [r for r in caplog.records if r.name.startswith("exporter") and r.levelno > logging.DEBUG]


# -- the token echoed in error bodies ------------------------------------------------------------------------


MIXED_TOKEN = "Nf-Tok3n-MiXeD-CaSe-9a8b7c"
VARIANTS = (MIXED_TOKEN, MIXED_TOKEN.lower(), MIXED_TOKEN.upper())


def echo(status: int, variant: str) -> httpx.Response:
    body = {
        "error": {
            "status": status,
            "message": f"token {variant} refused",
            "id": variant,
            "details": {"token": variant, "header": f"Bearer {variant}"},
        }
    }
    return httpx.Response(status, json=body, headers={"x-echo": variant})


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_token_echoed_in_any_field_and_case_never_leaves_the_client(
    make: Factory, caplog: pytest.LogCaptureFixture, status: int, variant: str
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make(lambda _: echo(status, variant), token=SecretStr(MIXED_TOKEN), max_retries=2)

    with pytest.raises(NorthflankError) as caught:
        await h.client.list_projects()

    error = caught.value
    texts = [str(error), repr(error), repr(vars(error)), caplog.text]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    for text in texts:
        for case in VARIANTS:
            assert case not in text
            assert case.lower() not in text.lower()
    assert getattr(error, "error_id", None) is None  # the id was the token: dropped
    assert "[redacted]" in str(error)  # the message says where it was


async def test_an_error_id_that_is_not_the_token_is_kept(make: Factory) -> None:
    h = make(sequence(httpx.Response(403, json={"error": {"message": "no", "id": "err-42"}})))

    with pytest.raises(NorthflankError) as caught:
        await h.client.list_projects()

    assert getattr(caught.value, "error_id", None) == "err-42"
    assert PROJECTS in str(caught.value)

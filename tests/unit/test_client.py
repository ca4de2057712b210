"""NorthflankClient against httpx.MockTransport: pagination, retries, rate limits, validation, secrecy."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from exporter.clock import FixedClock
from exporter.northflank.client import NorthflankClient, RateLimitStatus
from exporter.northflank.errors import (
    ApiError,
    AuthError,
    InvalidIdentifierError,
    InvalidResponseError,
    NorthflankError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from exporter.northflank.metrics import ApiMetrics

NOW = 1_700_000_000.0
TOKEN = "nftok-LEAKCANARY-TOKEN-5f0c2e9a"
ACCESS_KEY = "AKIA-LEAKCANARY-ACCESS-77d1"
SECRET_KEY = "wJalr-LEAKCANARY-SECRET-b94e"
SECRETS = (TOKEN, ACCESS_KEY, SECRET_KEY, "LEAKCANARY")

BACKUPS = "/v1/projects/{projectId}/addons/{addonId}/backups"
PROJECTS = "/v1/projects"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Harness:
    client: NorthflankClient
    registry: CollectorRegistry
    sleep: RecordingSleep
    clock: FixedClock
    requests: list[httpx.Request] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def requests_total(self, endpoint: str, code: str) -> float | None:
        return self.sample("northflank_api_requests_total", endpoint=endpoint, code=code)


Factory = Callable[..., Harness]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    clients: list[NorthflankClient] = []

    def factory(handler: Handler, **kwargs: Any) -> Harness:
        registry = CollectorRegistry()
        sleep = RecordingSleep()
        clock = FixedClock(NOW)
        recorded: list[httpx.Request] = []

        async def record(request: httpx.Request) -> httpx.Response:
            recorded.append(request)
            response = handler(request)
            if not isinstance(response, httpx.Response):
                response = await response
            return response

        options: dict[str, Any] = {
            "base_url": "https://api.example.test",
            "token": SecretStr(TOKEN),
            "transport": httpx.MockTransport(record),
            "clock": clock,
            "sleep": sleep,
            "metrics": ApiMetrics(registry),
            "rng": random.Random(7),
        }
        options.update(kwargs)
        client = NorthflankClient(**options)
        clients.append(client)
        return Harness(client, registry, sleep, clock, recorded)

    yield factory
    for client in clients:
        await client.aclose()


def page(
    items: list[Any],
    *,
    key: str | None = "projects",
    has_next: bool = False,
    cursor: str | None = None,
    headers: dict[str, str] | list[tuple[bytes, bytes]] | None = None,
) -> httpx.Response:
    pagination: dict[str, Any] = {"hasNextPage": has_next, "count": len(items)}
    if cursor is not None:
        pagination["cursor"] = cursor
    data: Any = items if key is None else {key: items}
    return httpx.Response(200, json={"data": data, "pagination": pagination}, headers=headers)


def project(i: str) -> dict[str, Any]:
    return {"id": f"project-{i}", "name": f"Project {i}"}


def backup(i: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": f"backup-{i}",
        "name": f"Backup {i}",
        "status": "completed",
        "createdAt": "2024-05-01T03:00:00.000Z",
        "completedAt": "2024-05-01T03:01:30.000Z",
        "config": {"source": {"type": "snapshot"}, "size": "1234"},
    }
    item.update(overrides)
    return item


def sequence(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """Answers with each response in turn (raising the exceptions), then fails the test."""
    remaining: Iterator[httpx.Response | Exception] = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            answer = next(remaining)
        except StopIteration:
            pytest.fail(f"unexpected extra request {request.url.path}")
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- pagination -------------------------------------------------------------------------------------------


async def test_walks_every_page_with_the_cursor_and_keeps_the_items_as_sent(make: Factory) -> None:
    pages = {
        None: page([project("c"), project("a")], has_next=True, cursor="cur-2"),
        "cur-2": page([project("e"), project("b")], has_next=True, cursor="cur-3"),
        "cur-3": page([project("d")], has_next=False),
    }
    h = make(lambda request: pages[request.url.params.get("cursor")])

    projects = await h.client.list_projects()

    assert [p.id for p in projects] == [f"project-{i}" for i in "caebd"]
    assert [r.url.params.get("cursor") for r in h.requests] == [None, "cur-2", "cur-3"]
    assert all(r.url.params["per_page"] == "100" for r in h.requests)
    assert all(r.url.path == "/v1/projects" for r in h.requests)
    assert "page" not in h.requests[0].url.params


async def test_a_cursor_that_repeats_is_an_invalid_response(make: Factory) -> None:
    pages = {
        None: page([project("a")], has_next=True, cursor="loop"),
        "loop": page([project("b")], has_next=True, cursor="loop"),
    }
    h = make(lambda request: pages[request.url.params.get("cursor")])

    with pytest.raises(InvalidResponseError) as caught:
        await h.client.list_projects()

    assert caught.value.endpoint == PROJECTS
    assert "cursor" in str(caught.value)
    assert len(h.requests) == 2


async def test_has_next_page_without_a_cursor_stops_and_keeps_what_was_read(make: Factory) -> None:
    h = make(sequence(page([project("a"), project("b")], has_next=True)))

    projects = await h.client.list_projects()

    assert [p.id for p in projects] == ["project-a", "project-b"]
    assert len(h.requests) == 1


async def test_a_listing_longer_than_max_pages_is_refused(make: Factory) -> None:
    counter = iter(range(100))
    h = make(lambda _: page([project("x")], has_next=True, cursor=f"c{next(counter)}"), max_pages=3)

    with pytest.raises(InvalidResponseError, match="more than 3 pages"):
        await h.client.list_projects()
    assert len(h.requests) == 3


async def test_a_response_without_pagination_is_one_page(make: Factory) -> None:
    # The documented example of the schedules listing has no pagination object at all.
    schedule = {
        "id": "s1",
        "backupType": "dump",
        "scheduling": {"interval": "hourly", "minute": [0, 30]},
        "retentionTime": 7,
    }
    h = make(sequence(httpx.Response(200, json={"data": {"schedules": [schedule]}})))

    schedules = await h.client.list_backup_schedules("p1", "a1")

    assert [s.id for s in schedules] == ["s1"]
    assert h.requests[0].url.path == "/v1/projects/p1/addons/a1/backup-schedules"


async def test_documented_optional_lists_may_be_absent(make: Factory) -> None:
    h = make(sequence(page([], key="other"), page([], key="other")))

    assert await h.client.list_backup_schedules("p1", "a1") == []
    assert await h.client.list_addon_restores("p1", "a1") == []


async def test_every_listing_reads_its_route_and_key(make: Factory) -> None:
    addon = {"id": "a1", "name": "db", "spec": {"type": "postgresql"}, "status": "running"}
    restore = {"id": 1693287033325, "backupId": "b1", "restoreTimestamp": "2024-05-01T03:00:00Z"}
    destination = {"id": "d1", "name": "bucket", "type": "s3", "prefix": "pg/"}
    destination_backup = {**backup("1"), "expiredBy": 1729232400000}
    routes = {
        "/v1/projects": page([project("a")], key="projects"),
        "/v1/projects/p1/addons": page([addon], key="addons"),
        "/v1/projects/p1/addons/a1/backups": page([backup("1")], key="backups"),
        "/v1/projects/p1/addons/a1/restores": page([{**restore, "status": "completed"}], key="restores"),
        "/v1/backup-destinations": page([destination], key="backupDestinations"),
        "/v1/backup-destinations/d1/backups": page([destination_backup], key=None),
    }
    h = make(lambda request: routes[request.url.path])

    assert [p.id for p in await h.client.list_projects()] == ["project-a"]
    assert [a.spec.type for a in await h.client.list_addons("p1")] == ["postgresql"]
    assert [b.id for b in await h.client.list_backups("p1", "a1")] == ["backup-1"]
    assert [r.id for r in await h.client.list_addon_restores("p1", "a1")] == ["1693287033325"]
    assert [d.prefix for d in await h.client.list_backup_destinations()] == ["pg/"]
    assert [b.id for b in await h.client.list_destination_backups("d1")] == ["backup-1"]


async def test_team_prefix_is_used_in_the_path_and_the_metric_label(make: Factory) -> None:
    h = make(sequence(page([backup("1")], key="backups")))

    await h.client.list_backups("p1", "a1", team="my-team")

    assert h.requests[0].url.path == "/v1/teams/my-team/projects/p1/addons/a1/backups"
    assert h.requests_total("/v1/teams/{teamId}/projects/{projectId}/addons/{addonId}/backups", "200") == 1.0
    assert h.requests_total(BACKUPS, "200") is None


@pytest.mark.parametrize("bad", [".", "..", "", "a/b", "%2e%2e", "a\n", "../../v1/other?x=1", "ä", "a b"])
async def test_path_parameters_that_are_not_ids_are_refused_before_any_request(
    make: Factory, bad: str
) -> None:
    # Percent-encoding is not enough: httpx resolves "." and ".." segments after quoting, so ".." as a
    # project id would read GET /v1/addons with the bearer token.
    h = make(sequence())

    for call in (
        lambda: h.client.list_addons(bad),
        lambda: h.client.list_backups("p1", bad),
        lambda: h.client.list_backup_schedules(bad, "a1"),
        lambda: h.client.list_addon_restores("p1", bad),
        lambda: h.client.list_destination_backups(bad),
    ):
        with pytest.raises(InvalidIdentifierError) as caught:
            await call()
        assert caught.value.reason == "invalid_response"
        assert isinstance(caught.value, NorthflankError)
        if bad:
            assert bad not in str(caught.value).split(": ", 1)[1]  # names the parameter, not the value
    assert h.requests == []


async def test_the_bearer_header_is_sent_on_every_request(make: Factory) -> None:
    pages = {
        None: page([project("a")], has_next=True, cursor="n"),
        "n": page([project("b")]),
    }
    h = make(lambda request: pages[request.url.params.get("cursor")], user_agent="test-agent/1")

    await h.client.list_projects()

    assert [r.headers["authorization"] for r in h.requests] == [f"Bearer {TOKEN}"] * 2
    assert h.requests[0].headers["user-agent"] == "test-agent/1"


# -- rate-limit headers -----------------------------------------------------------------------------------


RATE_HEADERS = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "987", "x-ratelimit-reset": "1800"}


async def test_rate_limit_headers_are_exposed_and_exported(make: Factory) -> None:
    h = make(sequence(page([project("a")], headers=RATE_HEADERS)))
    assert h.client.rate_limit is None

    await h.client.list_projects()

    assert h.client.rate_limit == RateLimitStatus(
        limit=1000, remaining=987, reset_at=NOW + 1800, observed_at=NOW
    )
    assert h.sample("northflank_api_rate_limit_limit") == 1000.0
    assert h.sample("northflank_api_rate_limit_remaining") == 987.0
    assert h.sample("northflank_api_rate_limit_reset_timestamp_seconds") == NOW + 1800


async def test_rate_limit_headers_of_error_responses_count_too(make: Factory) -> None:
    h = make(sequence(httpx.Response(404, headers={**RATE_HEADERS, "x-ratelimit-remaining": "3"})))

    with pytest.raises(NotFoundError):
        await h.client.list_addons("gone")

    assert h.client.rate_limit is not None
    assert h.client.rate_limit.remaining == 3
    assert h.sample("northflank_api_rate_limit_remaining") == 3.0


@pytest.mark.parametrize(
    "bad",
    [
        {"x-ratelimit-limit": "lots"},
        {"x-ratelimit-remaining": "-1"},
        {"x-ratelimit-reset": "soon"},
        {"x-ratelimit-reset": "nan"},
        {"x-ratelimit-reset": ""},
    ],
)
async def test_malformed_rate_limit_headers_are_ignored(make: Factory, bad: dict[str, str]) -> None:
    h = make(sequence(page([], headers=RATE_HEADERS), page([], headers={**RATE_HEADERS, **bad})))
    await h.client.list_projects()
    h.clock.advance(60)

    await h.client.list_projects()

    assert h.client.rate_limit is not None
    assert h.client.rate_limit.observed_at == NOW  # the first, well-formed one
    assert h.sample("northflank_api_rate_limit_remaining") == 987.0


# -- retries ----------------------------------------------------------------------------------------------


async def test_429_with_retry_after_waits_that_long_then_succeeds(make: Factory) -> None:
    h = make(
        sequence(
            httpx.Response(429, headers={"retry-after": "7", "x-ratelimit-reset": "900"}),
            page([project("a")]),
        )
    )

    projects = await h.client.list_projects()

    assert [p.id for p in projects] == ["project-a"]
    assert h.sleep.delays == [7.0]
    assert h.requests_total(PROJECTS, "429") == 1.0
    assert h.requests_total(PROJECTS, "200") == 1.0


async def test_429_with_an_http_date_retry_after(make: Factory) -> None:
    # NOW is 2023-11-14T22:13:20Z; the API asks for 40 s later.
    h = make(
        sequence(
            httpx.Response(429, headers={"retry-after": "Tue, 14 Nov 2023 22:14:00 GMT"}),
            page([]),
        )
    )

    await h.client.list_projects()

    assert h.sleep.delays == [40.0]


async def test_429_without_retry_after_waits_for_the_rate_limit_reset(make: Factory) -> None:
    h = make(sequence(httpx.Response(429, headers={**RATE_HEADERS, "x-ratelimit-reset": "12"}), page([])))

    await h.client.list_projects()

    assert h.sleep.delays == [12.0]


async def test_429_asking_for_longer_than_max_retry_wait_raises_without_sleeping(make: Factory) -> None:
    h = make(sequence(httpx.Response(429, headers={**RATE_HEADERS, "x-ratelimit-reset": "3600"})))

    with pytest.raises(RateLimitedError) as caught:
        await h.client.list_projects()

    assert caught.value.retry_at == NOW + 3600
    assert caught.value.status_code == 429
    assert caught.value.endpoint == PROJECTS
    assert h.sleep.delays == []
    assert len(h.requests) == 1


async def test_429_until_retries_run_out_raises_with_retry_at(make: Factory) -> None:
    h = make(lambda _: httpx.Response(429, headers={"retry-after": "5"}), max_retries=2)

    with pytest.raises(RateLimitedError) as caught:
        await h.client.list_projects()

    assert caught.value.retry_at == NOW + 5
    assert h.sleep.delays == [5.0, 5.0]
    assert h.requests_total(PROJECTS, "429") == 3.0
    assert "after 3 attempts" in str(caught.value)


async def test_502_with_an_html_body_is_retried_then_a_server_error_without_the_html(make: Factory) -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    h = make(lambda _: httpx.Response(502, text=html, headers={"content-type": "text/html"}))

    with pytest.raises(ServerError) as caught:
        await h.client.list_backups("p1", "a1")

    assert caught.value.status_code == 502
    assert caught.value.endpoint == BACKUPS
    assert "<" not in str(caught.value)
    assert "Bad Gateway" not in str(caught.value)
    assert len(h.requests) == 4  # max_retries=3
    assert h.requests_total(BACKUPS, "502") == 4.0
    # Exponential backoff (0.5, 1, 2 s) with jitter between half and all of each step.
    assert len(h.sleep.delays) == 3
    for delay, ceiling in zip(h.sleep.delays, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= delay <= ceiling


async def test_backoff_never_exceeds_max_retry_wait(make: Factory) -> None:
    h = make(lambda _: httpx.Response(503), max_retries=8, max_retry_wait=3.0)

    with pytest.raises(ServerError):
        await h.client.list_projects()

    assert len(h.sleep.delays) == 8
    assert max(h.sleep.delays) <= 3.0


async def test_a_5xx_then_success_returns_the_listing(make: Factory) -> None:
    h = make(sequence(httpx.Response(503, text=""), httpx.Response(500), page([project("a")])))

    assert [p.id for p in await h.client.list_projects()] == ["project-a"]
    assert len(h.sleep.delays) == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, AuthError), (403, PermissionDeniedError), (404, NotFoundError), (400, ApiError), (409, ApiError)],
)
async def test_other_4xx_are_not_retried(make: Factory, status: int, kind: type[ApiError]) -> None:
    body = {"error": {"status": status, "message": "Nope, not for you", "id": "err-123"}}
    h = make(sequence(httpx.Response(status, json=body)))

    with pytest.raises(kind) as caught:
        await h.client.list_addons("p1")

    assert type(caught.value) is kind
    assert caught.value.status_code == status
    assert caught.value.error_id == "err-123"
    assert caught.value.endpoint == "/v1/projects/{projectId}/addons"
    assert "Nope, not for you" in str(caught.value)
    assert len(h.requests) == 1
    assert h.sleep.delays == []


async def test_401_is_an_auth_error(make: Factory) -> None:
    h = make(sequence(httpx.Response(401)))

    with pytest.raises(AuthError) as caught:
        await h.client.list_projects()

    assert caught.value.reason == "auth"
    assert str(caught.value) == "/v1/projects: authentication failed: HTTP 401"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<!DOCTYPE html><html><body>Forbidden</body></html>",
        b"not json at all",
        b"[1, 2, 3]",
        b'{"error": "a string"}',
        b'{"error": {"message": 42, "status": "x"}}',
        b'{"error": {"message": "<b>markup</b>"}}',
        b'{"message": "top-level"}',
        b"[" * 100_000,
        b"\xff\xfe\x00garbage",
    ],
)
async def test_any_error_body_gives_a_plain_error(make: Factory, content: bytes) -> None:
    h = make(sequence(httpx.Response(403, content=content)))

    with pytest.raises(PermissionDeniedError) as caught:
        await h.client.list_projects()

    assert str(caught.value) == "/v1/projects: permission denied: HTTP 403"


async def test_the_api_message_is_capped_and_kept_on_one_line(make: Factory) -> None:
    message = "line one\nline two\t" + "x" * 5000
    h = make(sequence(httpx.Response(404, json={"error": {"message": message, "id": "bad id with spaces"}})))

    with pytest.raises(NotFoundError) as caught:
        await h.client.list_projects()

    assert "line one line two" in caught.value.message
    assert "\n" not in str(caught.value)
    assert len(caught.value.message) < 300
    assert caught.value.error_id is None


async def test_timeouts_are_retried_then_a_timeout_error(make: Factory) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    h = make(time_out)

    with pytest.raises(RequestTimeoutError) as caught:
        await h.client.list_projects()

    assert caught.value.reason == "timeout"
    assert len(h.requests) == 4
    assert h.requests_total(PROJECTS, "timeout") == 4.0
    assert len(h.sleep.delays) == 3


async def test_an_answer_that_never_comes_is_cut_by_the_deadline(make: Factory) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    h = make(hang, timeout=0.05, max_retries=0)

    with pytest.raises(RequestTimeoutError):
        await h.client.list_projects()
    assert h.requests_total(PROJECTS, "timeout") == 1.0


async def test_a_body_that_trickles_is_cut_by_the_overall_deadline(make: Factory) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"data": {"projects": ['
        while True:
            await asyncio.sleep(0.005)
            yield b" "

    h = make(lambda _: httpx.Response(200, content=trickle()), timeout=0.1, max_retries=0)

    with pytest.raises(RequestTimeoutError):
        await h.client.list_projects()
    assert h.requests_total(PROJECTS, "timeout") == 1.0


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
)
async def test_connection_errors_are_retried_then_a_transport_error(
    make: Factory, failure: httpx.TransportError
) -> None:
    h = make(sequence(failure, failure, failure, failure))

    with pytest.raises(TransportError) as caught:
        await h.client.list_projects()

    assert type(caught.value) is TransportError
    assert caught.value.reason == "connection"
    assert type(failure).__name__ in str(caught.value)
    assert h.requests_total(PROJECTS, "connection_error") == 4.0


async def test_a_body_cut_short_is_a_transport_error(make: Factory) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield b'{"data": {"projects": ['
        raise httpx.RemoteProtocolError("incomplete chunked read")

    h = make(lambda _: httpx.Response(200, content=cut()), max_retries=1)

    with pytest.raises(TransportError):
        await h.client.list_projects()
    assert h.requests_total(PROJECTS, "connection_error") == 2.0


async def test_a_connection_error_then_success(make: Factory) -> None:
    h = make(sequence(httpx.ConnectError("refused"), page([project("a")])))

    assert len(await h.client.list_projects()) == 1
    assert h.requests_total(PROJECTS, "connection_error") == 1.0
    assert h.requests_total(PROJECTS, "200") == 1.0


# -- validation -------------------------------------------------------------------------------------------


def raw(content: str | bytes) -> httpx.Response:
    return httpx.Response(200, content=content.encode() if isinstance(content, str) else content)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (raw("{not json"), "not valid JSON"),
        (raw(""), "not valid JSON"),
        (raw("[]"), "expected a JSON object, got an array"),
        (raw('{"pagination": {}}'), "data: missing"),
        (raw('{"data": null}'), "data: expected an object, got null"),
        (raw('{"data": []}'), "data: expected an object, got an array"),
        (raw('{"data": {}}'), "data.backups: missing"),
        (raw('{"data": {"backups": null}}'), "data.backups: expected an array, got null"),
        (raw('{"data": {"backups": {"id": "x"}}}'), "data.backups: expected an array, got an object"),
        # A listing whose every item is invalid is an invalid response (see test_client_hostile for one
        # invalid item among valid ones: skipped, the rest kept).
        (page([None], key="backups"), "data.backups[0]: Input should be a valid dictionary"),
        (page([{"id": "b2", "status": "completed"}], key="backups"), "data.backups[0].createdAt"),
        (page([backup("1", config=None)], key="backups"), "data.backups[0].config"),
        (page([backup("1", status=None)], key="backups"), "data.backups[0].status"),
        (page([backup("1", createdAt="yesterday-ish")], key="backups"), "data.backups[0].createdAt"),
        (raw('{"data": {"backups": []}, "pagination": {"hasNextPage": "maybe"}}'), "pagination.hasNextPage"),
        (raw('{"data": {"backups": []}, "pagination": []}'), "pagination"),
    ],
)
async def test_invalid_bodies_name_the_route_and_the_field(
    make: Factory, response: httpx.Response, expected: str
) -> None:
    h = make(sequence(response))

    with pytest.raises(InvalidResponseError) as caught:
        await h.client.list_backups("p1", "a1")

    assert caught.value.endpoint == BACKUPS
    assert expected in str(caught.value)
    assert str(caught.value).startswith(BACKUPS)
    assert "yesterday-ish" not in str(caught.value)  # never an input value
    assert "input_value" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert len(h.requests) == 1  # a bad body is not retried


async def test_a_wrong_shape_where_data_is_a_list(make: Factory) -> None:
    h = make(sequence(raw('{"data": {"backups": []}}')))

    with pytest.raises(InvalidResponseError, match=r"data: expected an array, got an object"):
        await h.client.list_destination_backups("d1")


async def test_a_body_over_the_limit_is_refused(make: Factory) -> None:
    big = json.dumps({"data": {"projects": [project(str(i)) for i in range(200)]}}).encode()
    assert len(big) > 4096

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    h = make(
        sequence(httpx.Response(200, content=big), httpx.Response(200, content=stream())),
        max_body_bytes=4096,
    )

    for _ in range(2):  # with a content-length, then streamed without one
        with pytest.raises(InvalidResponseError, match="larger than 4096 bytes"):
            await h.client.list_projects()
    assert "content-length" not in h.requests[1].headers


async def test_a_body_just_under_the_limit_is_read(make: Factory) -> None:
    body = json.dumps({"data": {"projects": [project("a")]}}).encode()
    h = make(sequence(httpx.Response(200, content=body)), max_body_bytes=len(body))

    assert len(await h.client.list_projects()) == 1


# -- metrics ----------------------------------------------------------------------------------------------


async def test_requests_total_counts_every_attempt_by_route_template(make: Factory) -> None:
    h = make(
        sequence(
            httpx.Response(503),
            httpx.Response(503),
            page([backup("1")], key="backups", has_next=True, cursor="two"),
            page([backup("2")], key="backups"),
        )
    )

    await h.client.list_backups("project-a", "addon-b")

    assert h.requests_total(BACKUPS, "503") == 2.0
    assert h.requests_total(BACKUPS, "200") == 2.0
    assert h.sample("northflank_api_request_duration_seconds_count", endpoint=BACKUPS) == 4.0
    exposition = generate_latest(h.registry).decode()
    assert "project-a" not in exposition
    assert "addon-b" not in exposition


async def test_metrics_are_registered_on_the_registry_passed_in() -> None:
    registry = CollectorRegistry()
    ApiMetrics(registry)
    names = {metric.name for metric in registry.collect()}
    assert names == {
        "northflank_api_requests",
        "northflank_api_request_duration_seconds",
        "northflank_api_rate_limit_limit",
        "northflank_api_rate_limit_remaining",
        "northflank_api_rate_limit_reset_timestamp_seconds",
        "northflank_api_invalid_headers",
        "northflank_exporter_invalid_items",
        "northflank_exporter_invalid_values",
    }
    ApiMetrics(CollectorRegistry())  # a second registry: no duplicate-timeseries error


# -- the gate seam ----------------------------------------------------------------------------------------


class RecordingGate:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int | None, RateLimitStatus | None]] = []

    async def acquire(self, endpoint: str) -> None:
        self.events.append(("acquire", endpoint, None, None))

    def observe(self, endpoint: str, status_code: int | None, rate_limit: RateLimitStatus | None) -> None:
        self.events.append(("observe", endpoint, status_code, rate_limit))


async def test_the_gate_is_consulted_around_every_attempt(make: Factory) -> None:
    gate = RecordingGate()
    h = make(
        sequence(httpx.ConnectError("refused"), httpx.Response(500), page([], headers=RATE_HEADERS)),
        gate=gate,
    )

    await h.client.list_projects()

    status = RateLimitStatus(limit=1000, remaining=987, reset_at=NOW + 1800, observed_at=NOW)
    assert gate.events == [
        ("acquire", PROJECTS, None, None),
        ("observe", PROJECTS, None, None),
        ("acquire", PROJECTS, None, None),
        ("observe", PROJECTS, 500, None),
        ("acquire", PROJECTS, None, None),
        ("observe", PROJECTS, 200, status),
    ]


# -- secrecy ----------------------------------------------------------------------------------------------


def destination_with_credentials(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": "dest-1",
        "name": "offsite",
        "type": "s3",
        "prefix": "pg/",
        "credentials": {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY, "bucketName": "b"},
    }
    item.update(overrides)
    return item


def echo_secrets_error(status: int) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"message": f"bad token {TOKEN}", "details": {"accessKey": ACCESS_KEY}}},
    )


async def test_secrets_never_leak_into_errors_logs_metrics_or_repr(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failing: list[Handler] = [
        sequence(page([destination_with_credentials(name=None)], key="backupDestinations")),
        sequence(page([destination_with_credentials(id=["nested", SECRET_KEY])], key="backupDestinations")),
        sequence(
            raw(json.dumps({"data": {"backupDestinations": {"credentials": {"secretKey": SECRET_KEY}}}}))
        ),
        sequence(raw(f'{{"data": {{"backupDestinations": ["{SECRET_KEY}"'.encode())),
        sequence(echo_secrets_error(401)),
        sequence(echo_secrets_error(400)),
        sequence(*[echo_secrets_error(500)] * 4),
        sequence(*[echo_secrets_error(429)] * 4),
        sequence(*[httpx.ConnectError(f"refused {TOKEN}")] * 4),
        sequence(*[httpx.ReadTimeout(f"timeout {TOKEN}")] * 4),
    ]
    errors: list[NorthflankError] = []
    harnesses: list[Harness] = []
    for handler in failing:
        h = make(handler)
        harnesses.append(h)
        with pytest.raises(NorthflankError) as caught:
            await h.client.list_backup_destinations()
        errors.append(caught.value)
        assert_no_secrets(repr(h.client))
        assert_no_secrets(generate_latest(h.registry).decode())

    ok = make(sequence(page([destination_with_credentials()], key="backupDestinations")))
    destinations = await ok.client.list_backup_destinations()
    assert_no_secrets(repr(destinations))
    assert_no_secrets(json.dumps([d.model_dump(mode="json") for d in destinations]))

    for error in errors:
        for link in exception_chain(error):
            assert_no_secrets(str(link))
            assert_no_secrets(repr(link))
            assert_no_secrets(repr(vars(link)))
    assert "[redacted]" in str(errors[4])
    for record in caplog.records:
        assert_no_secrets(record.getMessage())
        assert_no_secrets(repr(record.__dict__))
    assert caplog.records, "the client logs its attempts at DEBUG"


def test_constructor_rejects_nonsense() -> None:
    clock = FixedClock(NOW)
    with pytest.raises(ValueError, match="per_page"):
        NorthflankClient(token=SecretStr(TOKEN), clock=clock, per_page=101)
    with pytest.raises(ValueError, match="timeout"):
        NorthflankClient(token=SecretStr(TOKEN), clock=clock, timeout=0)


async def test_the_client_is_an_async_context_manager(make: Factory) -> None:
    h = make(sequence(page([project("a")])))

    async with h.client as client:
        assert client is h.client
        assert len(await client.list_projects()) == 1

    with pytest.raises(RuntimeError):
        await h.client.list_projects()  # closed: httpx refuses to send

"""The simulator's HTTP behaviour, in-process (httpx.ASGITransport) under a FixedClock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from exporter.clock import FixedClock
from exporter.northflank import models
from exporter.simulator import SimulatedConnectionReset, Simulator
from exporter.simulator.faults import HUGE_PAGE_BYTES
from exporter.simulator.fleet import HOUR
from exporter.simulator.pagination import decode_cursor
from exporter.simulator.routes import (
    ADDON_RESTORES,
    ADDONS,
    BACKUPS,
    DESTINATION_BACKUPS,
    PROJECTS,
    SCHEDULES,
)

T0 = 1_750_000_000.0
SEED = 5
HEALTHY = "/v1/projects/e2e-project/addons/e2e-healthy"
FAILING = "/v1/projects/e2e-project/addons/e2e-failing"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def sim(clock: FixedClock) -> Simulator:
    return Simulator.from_scenario("e2e", clock=clock, seed=SEED)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with sim.client() as client:
        yield client


async def walk(client: httpx.AsyncClient, url: str, per_page: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, by cursor; and the number of requests it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    requests = 0
    while True:
        params: dict[str, str | int] = {"per_page": per_page} | ({"cursor": cursor} if cursor else {})
        response = await client.get(url, params=params)
        requests += 1
        assert response.status_code == 200, response.text
        body = response.json()
        data = body["data"]
        page = data if isinstance(data, list) else next(iter(data.values()))
        assert body["pagination"]["count"] == len(page)
        items += page
        if not body["pagination"]["hasNextPage"]:
            assert "cursor" not in body["pagination"]
            return items, requests
        cursor = body["pagination"]["cursor"]
        assert requests < 1000


# --- pagination --------------------------------------------------------------------------------


async def test_a_cursor_walk_returns_every_item_exactly_once_in_unsorted_order(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    addon = sim.fleet.addon("e2e-healthy")
    assert addon is not None
    expected = {b.id for b in sim.backups_at(addon, T0)}
    assert len(expected) > 40
    items, requests = await walk(client, HEALTHY + "/backups", per_page=7)
    ids = [b["id"] for b in items]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    assert requests == -(-len(expected) // 7)
    created = [b["createdAt"] for b in items]
    assert created != sorted(created)
    assert created != sorted(created, reverse=True)
    # The order is deterministic: the same walk again gives the same sequence.
    assert [b["id"] for b in (await walk(client, HEALTHY + "/backups", per_page=7))[0]] == ids


async def test_pages_default_per_page_clamp_and_page_numbers(client: httpx.AsyncClient) -> None:
    first = (await client.get(HEALTHY + "/backups")).json()
    assert first["pagination"]["count"] == 50
    assert first["pagination"]["hasNextPage"] is True
    cursor = first["pagination"]["cursor"]
    assert not cursor.isdigit()
    assert cursor != "2"
    decode_cursor(cursor)  # well-formed
    by_cursor = (await client.get(HEALTHY + "/backups", params={"cursor": cursor})).json()
    by_page = (await client.get(HEALTHY + "/backups", params={"page": 2})).json()
    assert by_cursor == by_page
    clamped = (await client.get(HEALTHY + "/backups", params={"per_page": 1000})).json()
    assert clamped["pagination"]["count"] == min(
        100, first["pagination"]["count"] + by_page["pagination"]["count"]
    )
    small = (await client.get(HEALTHY + "/backups", params={"per_page": 0})).json()
    assert small["pagination"]["count"] == 1


async def test_a_bad_cursor_or_page_is_a_400(client: httpx.AsyncClient) -> None:
    for params in ({"cursor": "2"}, {"cursor": "bm90LWEtY3Vyc29y"}, {"page": "x"}, {"per_page": "many"}):
        response = await client.get(HEALTHY + "/backups", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["status"] == 400


async def test_listings_over_100_items_need_several_pages(clock: FixedClock) -> None:
    sim = Simulator.from_scenario("reference", clock=clock, seed=SEED, n_addons=600)
    async with sim.client() as client:
        project = max(sim.fleet.projects, key=lambda p: len(sim.fleet.addons_of(p.id)))
        items, requests = await walk(client, f"/v1/projects/{project.id}/addons", per_page=100)
        assert sorted(a["id"] for a in items) == sorted(a.id for a in sim.fleet.addons_of(project.id))
        assert requests == -(-len(items) // 100)
        assert requests > 1


# --- auth and rate limit -------------------------------------------------------------------------


async def test_401_without_or_with_a_wrong_or_revoked_token(sim: Simulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2ltLWFwaS10b2tlbg=="}):
        async with httpx.AsyncClient(transport=sim.transport(), base_url="http://x", headers=headers) as c:
            response = await c.get("/v1/projects")
            assert response.status_code == 401
            assert response.json()["error"]["status"] == 401
            assert "x-ratelimit-remaining" not in response.headers
    async with sim.client() as client:
        assert (await client.get("/v1/projects")).status_code == 200
        sim.revoke_token()
        assert (await client.get("/v1/projects")).status_code == 401
        sim.set_token("rotated")
    async with sim.client(token="rotated") as client:
        response = await client.get("/v1/projects")
        assert response.status_code == 200
        # 401s are not counted against the limit: only the two accepted requests are.
        assert response.headers["x-ratelimit-remaining"] == "998"


@pytest.mark.parametrize("retry_after", [True, False])
async def test_rate_limit_headers_count_down_then_429(clock: FixedClock, retry_after: bool) -> None:
    sim = Simulator.from_scenario("e2e", clock=clock, rate_limit=5, retry_after=retry_after)
    async with sim.client() as client:
        remaining = []
        for step in range(5):
            response = await client.get("/v1/projects")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "5"
            assert response.headers["x-ratelimit-reset"] == str(3600 - 10 * step)
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
            clock.advance(10)
        assert remaining == [4, 3, 2, 1, 0]
        refused = await client.get(HEALTHY + "/backups")
        assert refused.status_code == 429
        assert refused.json()["error"]["status"] == 429
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.headers["x-ratelimit-reset"] == "3550"
        assert ("retry-after" in refused.headers) is retry_after
        if retry_after:
            assert refused.headers["retry-after"] == "3550"
        clock.advance(3550)  # one hour after the first request: a new window
        again = await client.get("/v1/projects")
        assert again.status_code == 200
        assert again.headers["x-ratelimit-remaining"] == "4"
    assert sim.request_log.count(status=429) == 1
    assert sim.request_log.count(status=200) == 6


async def test_other_users_of_the_account_share_the_limit(sim: Simulator, client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/projects")
    assert first.headers["x-ratelimit-remaining"] == "999"
    state = sim.consume(990)
    assert state.remaining == 9
    assert (await client.get("/v1/projects")).headers["x-ratelimit-remaining"] == "8"
    sim.consume(100)
    assert (await client.get("/v1/projects")).status_code == 429
    assert len(sim.request_log) == 3  # their requests are not the exporter's


async def test_request_log_and_rolling_hour(
    sim: Simulator, clock: FixedClock, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await client.get("/v1/projects")
        clock.advance(1800)
    await client.get("/v1/teams/sim-team/projects/e2e-project/addons")
    await client.get("/v1/projects/nope/addons")
    records = sim.request_log.records
    assert [(r.time - T0, r.route, r.status) for r in records] == [
        (0.0, PROJECTS, 200),
        (1800.0, PROJECTS, 200),
        (3600.0, PROJECTS, 200),
        (5400.0, ADDONS, 200),
        (5400.0, ADDONS, 404),
    ]
    assert records[3].path == "/v1/teams/sim-team/projects/e2e-project/addons"
    assert sim.request_log.max_in_window(3600) == 3  # [3600, 7200) holds 3600, 5400, 5400
    assert sim.request_log.max_in_window(3600, exclude_status=(404,)) == 2


# --- routes ----------------------------------------------------------------------------------------


async def test_team_routes_serve_the_same_account(client: httpx.AsyncClient) -> None:
    for path in ("/projects", "/projects/e2e-project/addons", "/backup-destinations"):
        plain = (await client.get("/v1" + path)).json()["data"]
        team = (await client.get("/v1/teams/sim-team" + path)).json()["data"]
        key = next(iter(plain))
        assert sorted(map(json.dumps, plain[key])) == sorted(map(json.dumps, team[key]))
    wrong = await client.get("/v1/teams/other-team/projects")
    assert wrong.status_code == 404
    assert wrong.json()["error"]["status"] == 404


async def test_unknown_things_are_404_with_the_api_error_body(client: httpx.AsyncClient) -> None:
    for path in (
        "/v1/projects/nope/addons",
        "/v1/projects/e2e-project/addons/nope/backups",
        "/v1/projects/e2e-other/addons/e2e-healthy/backups",  # wrong project
        HEALTHY + "/backups/nope/restores",
        "/v1/backup-destinations/nope/backups",
        "/v1/nope",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        error = models.ApiErrorBody.model_validate(response.json()["error"])
        assert error.status == 404
        assert error.message
        assert error.id


async def test_removing_an_addon_at_runtime(sim: Simulator, client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/projects/e2e-project/addons")).json()["data"]["addons"]
    assert "e2e-failing" in {a["id"] for a in listed}
    sim.remove_addon("e2e-failing")
    listed = (await client.get("/v1/projects/e2e-project/addons")).json()["data"]["addons"]
    assert {a["id"] for a in listed} == {"e2e-healthy"}
    for suffix in ("/backups", "/backup-schedules", "/restores"):
        assert (await client.get(FAILING + suffix)).status_code == 404


async def test_time_moving_forward_completes_an_in_progress_backup(
    sim: Simulator, clock: FixedClock, client: httpx.AsyncClient
) -> None:
    addon = sim.fleet.addon("e2e-healthy")
    assert addon is not None
    # Move to just after the next run has been initiated.
    while not any(b.status == "in-progress" for b in sim.backups_at(addon, clock.now())):
        clock.advance(10)
    assert clock.now() - T0 < 1.1 * HOUR
    items, _ = await walk(client, HEALTHY + "/backups", per_page=100)
    running = [b for b in items if b["status"] == "in-progress"]
    assert len(running) == 1
    assert "completedAt" not in running[0]
    assert running[0]["config"]["size"] == "0"
    clock.advance(30 * 60)
    items, _ = await walk(client, HEALTHY + "/backups", per_page=100)
    done = next(b for b in items if b["id"] == running[0]["id"])
    assert done["status"] == "completed"
    parsed = models.Backup.model_validate(done)
    assert parsed.completed_at is not None
    assert parsed.config.size
    assert parsed.config.size > 10_000_000


async def test_same_seed_and_instant_give_the_same_payloads(clock: FixedClock) -> None:
    async def bodies(seed: int) -> list[bytes]:
        sim = Simulator.from_scenario("demo", clock=clock, seed=seed)
        paths = ["/v1/projects", "/v1/backup-destinations", "/v1/backup-destinations/archive-s3/backups"]
        for addon in sim.fleet.addons:
            base = f"/v1/projects/{addon.project_id}/addons/{addon.id}"
            paths += [base + "/backups", base + "/backup-schedules", base + "/restores"]
        async with sim.client() as client:
            return [(await client.get(p, params={"per_page": 100})).content for p in paths]

    first = await bodies(SEED)
    assert first == await bodies(SEED)
    assert first != await bodies(SEED + 1)


# --- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 502, 503])
@pytest.mark.parametrize("body", ["json", "html", "empty"])
async def test_status_faults(sim: Simulator, client: httpx.AsyncClient, status: int, body: str) -> None:
    sim.inject("status", BACKUPS, status=status, body=body, times=1)
    response = await client.get(HEALTHY + "/backups")
    assert response.status_code == status
    assert response.headers["x-ratelimit-limit"] == "1000"
    assert "retry-after" not in response.headers
    if body == "json":
        assert response.json()["error"]["status"] == status
    elif body == "html":
        assert response.headers["content-type"].startswith("text/html")
        assert response.text.startswith("<html>")
    else:
        assert response.content == b""
    # Used up: the next request is answered normally.
    assert (await client.get(HEALTHY + "/backups")).status_code == 200
    assert [r.fault for r in sim.request_log] == ["status", None]


@pytest.mark.parametrize("retry_after", [None, 17])
async def test_429_fault_with_or_without_retry_after(
    sim: Simulator, client: httpx.AsyncClient, retry_after: int | None
) -> None:
    sim.inject("status", None, status=429, retry_after=retry_after)
    response = await client.get("/v1/projects")
    assert response.status_code == 429
    assert response.headers.get("retry-after") == (None if retry_after is None else "17")


async def test_faults_match_route_params_and_count(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("status", BACKUPS, params={"addonId": "e2e-failing"}, status=503, times=2)
    assert (await client.get(HEALTHY + "/backups")).status_code == 200
    assert (await client.get(HEALTHY + "/backup-schedules")).status_code == 200
    assert (await client.get(FAILING + "/backups")).status_code == 503
    assert (
        await client.get("/v1/teams/sim-team" + FAILING.removeprefix("/v1") + "/backups")
    ).status_code == 503
    assert (await client.get(FAILING + "/backups")).status_code == 200
    assert sim.faults.active() == []
    with pytest.raises(ValueError, match="unknown route"):
        sim.inject("status", "/v1/addons")


async def test_hang_fault_is_cancellable_and_leaks_no_task(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("hang", PROJECTS, times=1)
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.get("/v1/projects")
    assert asyncio.all_tasks() == before
    assert not sim.hanging
    assert sim.request_log.records[-1].status is None  # never answered
    assert (await client.get("/v1/projects")).status_code == 200


async def test_reset_fault_sends_part_of_the_body_then_fails(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.inject("reset", BACKUPS, times=1)
    with pytest.raises(httpx.RemoteProtocolError) as raised:
        await client.get(HEALTHY + "/backups")
    assert isinstance(raised.value, SimulatedConnectionReset)
    assert sim.request_log.records[-1].status == 200
    assert (await client.get(HEALTHY + "/backups")).status_code == 200


async def test_invalid_json_fault(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("invalid_json", BACKUPS, times=1)
    response = await client.get(HEALTHY + "/backups")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text.startswith('{"data":')
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize(
    ("kind", "options", "check"),
    [
        ("wrong_shape", {}, lambda body: body["data"] == "unexpected"),
        ("null_data", {}, lambda body: body["data"] is None),
        ("missing_field", {}, lambda body: all("id" not in b for b in body["data"]["backups"])),
        ("unknown_enum", {}, lambda body: {b["status"] for b in body["data"]["backups"]} == {"exploded"}),
        ("null_field", {}, lambda body: all(b["config"] is None for b in body["data"]["backups"])),
        (
            "non_numeric_size",
            {},
            lambda body: {b["config"]["size"] for b in body["data"]["backups"]} == {"12 MB"},
        ),
        (
            "bad_timestamp",
            {},
            lambda body: {b["createdAt"] for b in body["data"]["backups"]} == {"not-a-timestamp"},
        ),
        (
            "bad_timestamp",
            {"field": "completedAt", "value": "yesterday"},
            lambda body: (
                {b.get("completedAt", "yesterday") for b in body["data"]["backups"]} == {"yesterday"}
            ),
        ),
        (
            "next_page_without_cursor",
            {},
            lambda body: body["pagination"] == {"hasNextPage": True, "count": len(body["data"]["backups"])},
        ),
    ],
)
async def test_payload_faults(
    sim: Simulator, client: httpx.AsyncClient, kind: str, options: dict[str, Any], check: Any
) -> None:
    sim.inject(kind, BACKUPS, times=1, **options)
    body = (await client.get(HEALTHY + "/backups")).json()
    assert check(body)
    normal = (await client.get(HEALTHY + "/backups")).json()
    assert isinstance(normal["data"]["backups"], list)
    assert all("id" in b for b in normal["data"]["backups"])


async def test_payload_faults_reach_the_exporter_models_as_documented(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.inject("unknown_enum", BACKUPS, times=1)
    backups = (await client.get(HEALTHY + "/backups")).json()["data"]["backups"]
    assert {models.Backup.model_validate(b).status for b in backups} == {models.BackupStatus.UNKNOWN}
    sim.inject("non_numeric_size", BACKUPS, times=1)
    backups = (await client.get(HEALTHY + "/backups")).json()["data"]["backups"]
    assert {models.Backup.model_validate(b).config.size for b in backups} == {None}
    sim.inject("unknown_enum", ADDON_RESTORES, times=1)
    restores = (await client.get(HEALTHY + "/restores")).json()["data"]["restores"]
    assert restores
    assert {r["status"] for r in restores} == {"exploded"}
    sim.inject("unknown_enum", SCHEDULES, field="scheduling.interval", value="fortnightly", times=1)
    schedules = (await client.get(HEALTHY + "/backup-schedules")).json()["data"]["schedules"]
    assert schedules[0]["scheduling"]["interval"] == "fortnightly"
    sim.inject("missing_field", DESTINATION_BACKUPS, field="config.size", times=1)
    items = (await client.get("/v1/backup-destinations/e2e-s3/backups")).json()["data"]
    assert items
    assert all("size" not in b["config"] for b in items)


async def test_huge_page_fault(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("huge_page", BACKUPS, times=1)
    response = await client.get(HEALTHY + "/backups")
    assert HUGE_PAGE_BYTES <= len(response.content) < HUGE_PAGE_BYTES + 100
    assert len(response.json()["data"]["backups"]) == 50


async def test_repeating_cursor_fault(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("repeating_cursor", BACKUPS, times=5)
    first = (await client.get(HEALTHY + "/backups")).json()
    cursor = first["pagination"]["cursor"]
    pages = []
    for _ in range(4):
        body = (await client.get(HEALTHY + "/backups", params={"cursor": cursor})).json()
        assert body["pagination"]["hasNextPage"] is True
        assert body["pagination"]["cursor"] == cursor
        pages.append(body["data"])
    assert all(page == pages[0] for page in pages)
    # Once the fault is over, the same cursor is a valid one.
    after = (await client.get(HEALTHY + "/backups", params={"cursor": cursor})).json()
    assert after["data"] == pages[0]
    assert after["pagination"]["cursor"] != cursor


async def test_repeating_cursor_on_a_single_page_list(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.inject("repeating_cursor", PROJECTS, times=3)
    first = (await client.get("/v1/projects")).json()
    again = (await client.get("/v1/projects", params={"cursor": first["pagination"]["cursor"]})).json()
    assert again == first
    assert first["pagination"]["hasNextPage"] is True


# --- the admin endpoint ----------------------------------------------------------------------------------


async def test_faults_and_controls_over_the_admin_endpoint(sim: Simulator, client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/_simulator/faults",
        json={"faults": [{"kind": "status", "route": BACKUPS, "status": 502, "body": "html", "times": 1}]},
    )
    assert created.status_code == 201
    (fault,) = created.json()["data"]["faults"]
    assert fault["kind"] == "status"
    assert fault["remaining"] == 1
    assert (await client.get(HEALTHY + "/backups")).status_code == 502
    assert (await client.get(HEALTHY + "/backups")).status_code == 200

    one = (await client.post("/_simulator/faults", json={"kind": "null_data"})).json()["data"]["faults"][0]
    assert (await client.get("/_simulator/faults")).json()["data"]["faults"][0]["id"] == one["id"]
    assert (await client.get("/v1/projects")).json()["data"] is None
    assert (await client.delete(f"/_simulator/faults/{one['id']}")).status_code == 200
    await client.post("/_simulator/faults", json={"kind": "hang"})
    assert (await client.delete("/_simulator/faults")).json()["data"]["removed"] == 1
    assert (await client.get("/v1/projects")).status_code == 200

    bad = await client.post("/_simulator/faults", json={"kind": "explode"})
    assert bad.status_code == 400
    bad = await client.post("/_simulator/faults", json={"kind": "status", "route": "/v2/x"})
    assert bad.status_code == 400

    assert (await client.delete("/_simulator/addons/e2e-failing")).status_code == 200
    assert (await client.get(FAILING + "/backups")).status_code == 404
    assert (await client.put("/_simulator/addons/e2e-failing")).status_code == 200
    assert (await client.get(FAILING + "/backups")).status_code == 200

    consumed = (await client.post("/_simulator/rate-limit/consume", json={"requests": 500})).json()["data"]
    assert consumed["limit"] == 1000
    assert consumed["remaining"] < 500

    log = (await client.get("/_simulator/requests")).json()["data"]["requests"]
    assert all(not r["path"].startswith("/_simulator") for r in log)
    assert log[0]["route"] == BACKUPS
    assert log[0]["status"] == 502
    assert log[0]["fault"] == "status"

    assert (await client.put("/_simulator/token", json={"token": None})).status_code == 200
    assert (await client.get("/v1/projects")).status_code == 401
    # The admin token survives the revocation of the API token.
    assert (await client.put("/_simulator/token", json={"token": sim_token()})).status_code == 200
    assert (await client.get("/v1/projects")).status_code == 200

    async with httpx.AsyncClient(transport=sim.transport(), base_url="http://x") as anonymous:
        assert (await anonymous.get("/_simulator/faults")).status_code == 401


def sim_token() -> str:
    from exporter.simulator import DEFAULT_TOKEN

    return DEFAULT_TOKEN

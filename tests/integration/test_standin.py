"""The exporter against a hand-written stand-in for the API, independent of the project's simulator.

Every payload below is written out by hand, with the quirks real responses have (unsorted multi-page
listings, sizes as strings, an in-flight backup without completedAt, a placeholder completedAt, an
undocumented status, integer restore ids, expiredBy as a string, credentials in the destination
listing), and faults (a 429, a 403 project, a 404 addon, a 502 with an HTML body). Every expected value
is worked out by hand from those payloads, in the comments.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from exporter.clock import FixedClock
from tests.support import Samples, running_exporter, serve_asgi, value

TOKEN = "standin-token-3e8d1"
ACCESS_KEY = "AKIASTANDINACCESS"
SECRET_KEY = "standin-secret-key-never-shown"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()  # a Friday


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _backup(bid: str, status: str, created: str, completed: str | None, size: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": bid,
        "name": f"Backup {bid}",
        "status": status,
        "createdAt": created,
        "config": {"source": {"type": "snapshot"}, "size": size, "addonVersion": "16.4"},
        "uid": f"uid-{bid}",
    }
    if completed is not None:
        item["completedAt"] = completed
    return item


B1 = _backup("b1", "completed", "2026-11-19T18:30:00.000Z", "2026-11-19T18:40:00.000Z", "1000")
B2 = _backup("b2", "completed", "2026-11-13T18:30:00.000Z", "2026-11-13T18:35:00.000Z", "900")
B3 = _backup("b3", "failed", "2026-11-20T02:00:00.000Z", "2026-11-20T02:01:00.000Z", "0")
B4 = _backup("b4", "in-progress", "2026-11-20T11:00:00.000Z", None, "0")
B5 = _backup("b5", "aborted", "2026-11-20T03:00:00.000Z", "1970-01-01T00:00:00.000Z", "0")
B6 = _backup("b6", "exploded", "2026-11-20T04:00:00.000Z", None, "12 MB")
B7 = _backup("b7", "failed", "2026-11-10T00:00:00.000Z", "2026-11-10T00:01:00.000Z", "0")
# Three pages, in no particular order.
A1_BACKUP_PAGES = [[B3, B1, B6], [B7, B4], [B2, B5]]

SCHEDULE = {
    "id": "s1",
    "backupType": "dump",
    "scheduling": {"interval": "weekly", "minute": [30], "hour": [18], "day": [4]},  # Fridays 18:30 UTC
    "retentionTime": 7,
    "createdAt": "2026-01-05T10:00:00.000Z",
    "updatedAt": "2026-01-05T10:00:00.000Z",
}
RESTORES = [
    {
        "id": 1763582400000,
        "backupId": "b1",
        "restoreTimestamp": "2026-11-19T20:00:00.000Z",
        "status": "completed",
        "completedAt": "2026-11-19T20:10:00.000Z",
    },
    {
        "id": 1763629200000,
        "backupId": "b2",
        "restoreTimestamp": "2026-11-20T09:00:00.000Z",
        "status": "failed",
    },
]
DESTINATION = {
    "id": "d1",
    "name": "Offsite bucket",
    "type": "s3",
    "usage": "globalBackups",
    "prefix": "nf",
    "credentials": {
        "accessKey": ACCESS_KEY,
        "secretKey": SECRET_KEY,
        "bucketName": "b",
        "region": "eu-west-2",
        "endpoint": "https://s3",
    },
}
DESTINATION_BACKUPS = [
    {
        "id": "x1",
        "name": "x1",
        "status": "completed",
        "project": {"id": "p1", "name": "Shop"},
        "addon": {"id": "a1", "name": "Orders DB"},
        "config": {"addonType": "postgresql", "source": {"type": "global"}, "size": "1234"},
        "schedules": [SCHEDULE["scheduling"]],
        "expiredBy": "1764200000000.0",
        "createdAt": "2026-11-19T18:30:00.000Z",
        "completedAt": "2026-11-19T18:41:00.000Z",
    },
    {
        "id": "x2",
        "name": "x2",
        "status": "failed",
        "project": {"id": "p1", "name": "Shop"},
        "addon": {"id": "a1", "name": "Orders DB"},
        "config": {"size": "0"},
        "expiredBy": 1764200000000,
        "createdAt": "2026-11-20T02:00:00.000Z",
        "completedAt": "2026-11-20T02:01:00.000Z",
    },
]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, "id": "err-1"}}, status_code=status)


def standin_app() -> Starlette:
    projects_calls = 0

    def page(items: list[Any], key: str | None) -> JSONResponse:
        data: Any = items if key is None else {key: items}
        return JSONResponse({"data": data, "pagination": {"hasNextPage": False, "count": len(items)}})

    async def guard(request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "Unauthorized")
        return None

    async def projects(request: Request) -> Response:
        nonlocal projects_calls
        projects_calls += 1
        if projects_calls == 1:  # the account's budget is briefly exhausted
            response = _error(429, "Too many requests")
            response.headers["Retry-After"] = "0"
            return response
        return page(
            [{"id": "p2", "name": "Secret"}, {"id": "p1", "name": "Shop", "description": "x"}], "projects"
        )

    async def addons(request: Request) -> Response:
        project = request.path_params["project"]
        if project == "p2":
            return _error(403, "Forbidden")
        items = [
            {
                "id": "a3",
                "name": "Cache",
                "appId": "/p1/a3",
                "tags": [],
                "spec": {"type": "redis"},
                "status": "running",
            },
            {
                "id": "a1",
                "name": "Orders DB",
                "appId": "/p1/a1",
                "tags": [],
                "spec": {"type": "postgresql"},
                "status": "running",
            },
            {
                "id": "a2",
                "name": "Old DB",
                "appId": "/p1/a2",
                "tags": [],
                "spec": {"type": "mysql"},
                "status": "deleting",
            },
        ]
        return page(items, "addons")

    async def backups(request: Request) -> Response:
        addon = request.path_params["addon"]
        if addon == "a2":  # deleted between the listing and this request
            return _error(404, "Addon not found")
        if addon == "a3":
            return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", status_code=502)
        cursor = request.query_params.get("cursor")
        index = {None: 0, "c-two": 1, "c-three": 2}[cursor]
        pagination: dict[str, Any] = {"hasNextPage": index < 2, "count": len(A1_BACKUP_PAGES[index])}
        if index < 2:
            pagination["cursor"] = ["c-two", "c-three"][index]
        return JSONResponse({"data": {"backups": A1_BACKUP_PAGES[index]}, "pagination": pagination})

    async def schedules(request: Request) -> Response:
        addon = request.path_params["addon"]
        if addon == "a2":
            return _error(404, "Addon not found")
        # The documented example carries no pagination object at all.
        return JSONResponse({"data": {"schedules": [SCHEDULE] if addon == "a1" else []}})

    async def restores(request: Request) -> Response:
        addon = request.path_params["addon"]
        if addon == "a2":
            return _error(404, "Addon not found")
        return page(RESTORES if addon == "a1" else [], "restores")

    async def destinations(request: Request) -> Response:
        return page([DESTINATION], "backupDestinations")

    async def destination_backups(request: Request) -> Response:
        return page(DESTINATION_BACKUPS, None)

    def guarded(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            refused = await guard(request)
            response = refused or await handler(request)
            response.headers["x-ratelimit-limit"] = "1000"
            response.headers["x-ratelimit-remaining"] = "900"
            response.headers["x-ratelimit-reset"] = "1800"
            return response

        return wrapped

    base = "/v1/projects/{project}/addons"
    return Starlette(
        routes=[
            Route("/v1/projects", guarded(projects)),
            Route(base, guarded(addons)),
            Route(base + "/{addon}/backups", guarded(backups)),
            Route(base + "/{addon}/backup-schedules", guarded(schedules)),
            Route(base + "/{addon}/restores", guarded(restores)),
            Route("/v1/backup-destinations", guarded(destinations)),
            Route("/v1/backup-destinations/{destination}/backups", guarded(destination_backups)),
        ]
    )


@pytest.fixture
async def standin() -> AsyncIterator[str]:
    async with serve_asgi(standin_app()) as url:
        yield url


@pytest.fixture
async def samples(standin: str, caplog: pytest.LogCaptureFixture) -> Samples:
    caplog.set_level(logging.DEBUG)
    async with running_exporter(api_url=standin, token=TOKEN, clock=FixedClock(NOW)) as exporter:
        await exporter.scheduler.refresh()
        text = await exporter.scrape_text()
        result = await exporter.scrape()
    for secret in (TOKEN, ACCESS_KEY, SECRET_KEY):
        assert secret not in text
        assert secret not in caplog.text
    return result


A1 = {"project": "p1", "addon": "a1"}


def test_addon_backup_values(samples: Samples) -> None:
    last = ts("2026-11-19T18:40:00+00:00")  # b1, the newest completed one
    assert value(samples, "northflank_addon_backup_last_completed_timestamp_seconds", **A1) == last
    assert value(samples, "northflank_addon_backup_last_completed_age_seconds", **A1) == NOW - last
    assert value(samples, "northflank_addon_backup_last_completed_size_bytes", **A1) == 1000
    assert value(samples, "northflank_addon_backup_last_completed_duration_seconds", **A1) == 600
    # b5 (aborted, placeholder completedAt -> its initiation, 03:00) is newer than b3 (failed, 02:01).
    assert value(samples, "northflank_addon_backup_last_failed_timestamp_seconds", **A1) == ts(
        "2026-11-20T03:00:00+00:00"
    )
    # b3 and b5 were initiated after b1; b7 before it.
    assert value(samples, "northflank_addon_backup_consecutive_failures", **A1) == 2
    expected = {
        "completed": 2,
        "failed": 2,
        "aborted": 1,
        "in-progress": 1,
        "unknown": 1,
        "scheduled": 0,
        "aborting": 0,
        "not-supported": 0,
    }
    for status, count in expected.items():
        assert value(samples, "northflank_addon_backups", **A1, status=status) == count, status
    assert value(samples, "northflank_addon_backups_size_bytes", **A1) == 1900
    assert value(samples, "northflank_addon_backup_oldest_completed_timestamp_seconds", **A1) == ts(
        "2026-11-13T18:35:00+00:00"
    )
    assert value(samples, "northflank_addon_backup_in_progress_started_timestamp_seconds", **A1) == ts(
        "2026-11-20T11:00:00+00:00"
    )


def test_schedule_values(samples: Samples) -> None:
    s1 = {**A1, "schedule": "s1"}
    info = {**s1, "interval": "weekly", "backup_type": "dump", "compression": "gz"}
    assert value(samples, "northflank_addon_backup_schedule_info", **info) == 1
    assert value(samples, "northflank_addon_backup_schedule_retention_seconds", **s1) == 7 * 86400
    assert value(samples, "northflank_addon_backup_schedule_next_run_timestamp_seconds", **s1) == ts(
        "2026-11-20T18:30:00+00:00"
    )
    assert value(samples, "northflank_addon_backup_schedule_previous_run_timestamp_seconds", **s1) == ts(
        "2026-11-13T18:30:00+00:00"
    )
    assert value(samples, "northflank_addon_backup_schedule_max_interval_seconds", **s1) == 604800
    # The run of 11-13 18:30 of this dump schedule is past the 2h grace, and the only backup initiated
    # for it, b2, is a snapshot: missed (a backup counts only for a schedule of its type).
    assert value(samples, "northflank_addon_backup_schedule_missed", **s1) == 1
    assert value(samples, "northflank_addon_backup_schedule_last_missed_run_timestamp_seconds", **s1) == ts(
        "2026-11-13T18:30:00+00:00"
    )
    assert value(samples, "northflank_addon_backup_schedule_covered", **A1) == 1
    assert value(samples, "northflank_addon_backup_schedule_covered", project="p1", addon="a3") == 0
    # a1 covered, a3 not, a2 unknown (its schedules could not be read): 1 of 2.
    assert value(samples, "northflank_project_backup_schedule_coverage_ratio", project="p1") == 0.5


def test_restore_and_destination_values(samples: Samples) -> None:
    assert value(samples, "northflank_addon_restores", **A1, status="completed") == 1
    assert value(samples, "northflank_addon_restores", **A1, status="failed") == 1
    assert value(samples, "northflank_addon_restore_last_timestamp_seconds", **A1, status="completed") == ts(
        "2026-11-19T20:10:00+00:00"
    )
    assert value(samples, "northflank_addon_restore_last_timestamp_seconds", **A1, status="failed") == ts(
        "2026-11-20T09:00:00+00:00"
    )
    d1 = {"destination": "d1"}
    assert value(samples, "northflank_backup_destination_info", **d1, destination_name="Offsite bucket") == 1
    assert value(samples, "northflank_backup_destination_size_bytes", **d1) == 1234
    assert value(samples, "northflank_backup_destination_backups", **d1, status="completed") == 1
    assert value(samples, "northflank_backup_destination_backups", **d1, status="failed") == 1
    assert value(
        samples,
        "northflank_backup_destination_last_completed_timestamp_seconds",
        **d1,
        project="p1",
        addon="a1",
    ) == ts("2026-11-19T18:41:00+00:00")


def test_faults_are_counted_and_isolated(samples: Samples) -> None:
    assert value(samples, "northflank_up") == 1
    info = "northflank_addon_info"
    assert (
        value(
            samples,
            info,
            project="p1",
            addon="a1",
            addon_name="Orders DB",
            project_name="Shop",
            addon_type="postgresql",
        )
        == 1
    )
    # The 404 addon is still listed: it stays, without backup data; the 403 project has no addons.
    assert (
        value(
            samples,
            info,
            project="p1",
            addon="a2",
            addon_name="Old DB",
            project_name="Shop",
            addon_type="mysql",
        )
        == 1
    )
    assert value(samples, "northflank_addon_backups", project="p1", addon="a2", status="completed") is None
    assert not [k for k in samples if k[0] == info and ("project", "p2") in k[1]]
    errors = "northflank_exporter_refresh_errors_total"
    assert value(samples, errors, resource="addons", reason="permission") == 1
    assert value(samples, errors, resource="backups", reason="not_found") == 1
    assert value(samples, errors, resource="schedules", reason="not_found") == 1
    assert value(samples, errors, resource="restores", reason="not_found") == 1
    assert value(samples, errors, resource="backups", reason="server_error") == 1
    requests = "northflank_api_requests_total"
    assert value(samples, requests, endpoint="/v1/projects", code="429") == 1
    assert value(samples, requests, endpoint="/v1/projects", code="200") == 1
    assert (
        value(samples, requests, endpoint="/v1/projects/{projectId}/addons/{addonId}/backups", code="200")
        == 3
    )
    assert value(samples, "northflank_api_rate_limit_limit") == 1000
    assert value(samples, "northflank_api_rate_limit_remaining") == 900
    assert value(samples, "northflank_api_rate_limit_reset_timestamp_seconds") == NOW + 1800

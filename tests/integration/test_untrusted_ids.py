"""Ids are untrusted (issue 8, section 4), over a real socket: the exporter against a stand-in API whose
listings hold ids that are no ids.

httpx resolves ``.`` and ``..`` path segments after percent-encoding, so ``..`` as a project id read
``GET /v1/addons`` with the bearer token, and an empty id another route. Every request path the stand-in
receives is recorded as sent on the wire (``raw_path``): the exact set must be the valid subjects' own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.clock import FixedClock
from tests.support import Samples, running_exporter, serve_asgi, value

TOKEN = "untrusted-ids-token-7d2a"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()
BAD_IDS = (".", "..", "", "a/b", "%2e%2e")


def listing(key: str | None, items: list[Any]) -> JSONResponse:
    data: Any = items if key is None else {key: items}
    return JSONResponse({"data": data, "pagination": {"hasNextPage": False, "count": len(items)}})


def standin(paths: list[bytes]) -> Starlette:
    """Answers every path; records each request's raw path. Only the valid subjects have content."""

    async def anything(request: Request) -> Response:
        paths.append(request.scope["raw_path"])
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": {"status": 401, "message": "Unauthorized"}}, status_code=401)
        path = request.url.path
        addon = {"name": "db", "tags": [], "spec": {"type": "postgresql"}, "status": "running"}
        backup = {
            "id": "b1",
            "status": "completed",
            "createdAt": "2026-11-20T10:00:00Z",
            "completedAt": "2026-11-20T10:05:00Z",
            "config": {"size": "100"},
        }
        answers: dict[str, Response] = {
            "/v1/projects": listing(
                "projects", [{"id": "p1", "name": "Shop"}, *({"id": i, "name": "odd"} for i in BAD_IDS)]
            ),
            "/v1/projects/p1/addons": listing(
                "addons", [{**addon, "id": "a1"}, *({**addon, "id": i} for i in BAD_IDS)]
            ),
            "/v1/projects/p1/addons/a1/backups": listing("backups", [backup]),
            "/v1/projects/p1/addons/a1/backup-schedules": listing("schedules", []),
            "/v1/projects/p1/addons/a1/restores": listing("restores", []),
            "/v1/backup-destinations": listing(
                "backupDestinations",
                [{"id": "d1", "name": "bucket"}, *({"id": i, "name": "odd"} for i in BAD_IDS)],
            ),
            "/v1/backup-destinations/d1/backups": listing(None, []),
        }
        # Whatever else is asked (/v1/addons, /v1/backup-destinations//backups...) answers too, so that a
        # request that should never have been made is recorded rather than refused by routing.
        return answers.get(path, listing("addons", []))

    return Starlette(routes=[Route("/{path:path}", anything)])


@pytest.fixture
async def refreshed(caplog: pytest.LogCaptureFixture) -> AsyncIterator[tuple[list[bytes], Samples]]:
    caplog.set_level(logging.DEBUG)
    paths: list[bytes] = []
    async with (
        serve_asgi(standin(paths)) as url,
        running_exporter(api_url=url, token=TOKEN, clock=FixedClock(NOW)) as exporter,
    ):
        await exporter.scheduler.refresh()
        yield paths, await exporter.scrape()


async def test_only_the_valid_ids_are_requested(refreshed: tuple[list[bytes], Samples]) -> None:
    paths, _ = refreshed
    assert set(paths) == {
        b"/v1/projects",
        b"/v1/projects/p1/addons",
        b"/v1/projects/p1/addons/a1/backups",
        b"/v1/projects/p1/addons/a1/backup-schedules",
        b"/v1/projects/p1/addons/a1/restores",
        b"/v1/backup-destinations",
        b"/v1/backup-destinations/d1/backups",
    }
    assert len(paths) == 7  # and each once


async def test_the_items_with_invalid_ids_are_skipped_counted_and_the_rest_kept(
    refreshed: tuple[list[bytes], Samples], caplog: pytest.LogCaptureFixture
) -> None:
    _, samples = refreshed
    invalid = "northflank_exporter_invalid_items_total"
    for resource in ("projects", "addons", "backup_destinations"):
        assert value(samples, invalid, resource=resource) == len(BAD_IDS), resource
    for resource in ("backups", "schedules", "restores", "destination_backups"):
        assert value(samples, invalid, resource=resource) == 0, resource
    assert value(samples, "northflank_up") == 1
    addon = {"project": "p1", "addon": "a1"}
    assert value(samples, "northflank_addon_backup_last_completed_size_bytes", **addon) == 100
    assert value(samples, "northflank_backup_destination_backups", destination="d1", status="completed") == 0
    # No refresh failed: the odd ids never reached a request.
    errors = [v for (name, _), v in samples.items() if name == "northflank_exporter_refresh_errors_total"]
    assert errors
    assert sum(errors) == 0
    # One line per resource says so, with the field and the rule, not the value.
    warnings = [r.getMessage() for r in caplog.get_records("setup") if r.levelno == logging.WARNING]
    for resource in ("projects", "addons", "backup_destinations"):
        (line,) = [w for w in warnings if f"invalid {resource} item" in w]
        assert "id must match ^[A-Za-z0-9-]+$" in line
        assert "%2e%2e" not in line

"""The data tells the truth (issue 8, section 7), over real sockets: the exporter against a stand-in API
served by uvicorn on 127.0.0.1.

- Future-dated backups: an addon whose hourly backups stopped 10 hours ago, plus one backup dated 6 hours
  ahead, shows its real age and its missed run, and the future-dated backup is counted.
- ``northflank_up`` follows every resource: a token refused for every backup listing makes it 0 (and
  ``northflank_exporter_resource_up{resource="backups"}`` says which); one deleted addon does not.

The stand-in's ``Date`` header is uvicorn's (the real time), so the injected clock starts at the real
time: the exporter's estimate of the API's clock offset is then about 0, as with a real API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.clock import FixedClock
from exporter.resources import RESOURCES
from tests.support import RunningExporter, Samples, running_exporter, serve_asgi, value

TOKEN = "truthful-data-token-5c1f"
HOUR = 3600
#: Addons of the stand-in's one project: ``stopped`` backed up hourly until 10 hours ago, ``healthy``
#: hourly until this hour, ``odd`` as healthy (the unclassified-fault tests give it odd values).
ADDONS = ("stopped", "healthy", "odd")
ERRORS = "northflank_exporter_refresh_errors_total"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z")


def backup(created: float, status: str = "completed", *, bid: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": bid or f"b{int(created)}",
        "name": "scheduled",
        "status": status,
        "createdAt": iso(created),
        "config": {"source": {"type": "snapshot"}, "size": "1000"},
    }
    if status == "completed":
        item["completedAt"] = iso(created + 300)
    return item


@dataclass
class StandinApi:
    """The stand-in's state: the tests change it between refreshes."""

    now: float
    #: Listings (``backups``, ``schedules``, ``restores``) that answer 403 for every addon.
    refused: set[str] = field(default_factory=set)
    #: Addons whose listings answer 404 (deleted after the addon listing was read).
    missing: set[str] = field(default_factory=set)
    backups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    restores: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        hour = self.now - self.now % HOUR
        self.backups = {
            "stopped": [backup(hour - k * HOUR) for k in range(10, 34)] + [backup(self.now + 6 * HOUR)],
            "healthy": [backup(hour - k * HOUR) for k in range(24)],
            "odd": [backup(hour - k * HOUR) for k in range(24)],
        }
        self.restores = {a: [] for a in ADDONS}

    @property
    def last_stopped_backup_completed(self) -> float:
        hour = self.now - self.now % HOUR
        return hour - 10 * HOUR + 300

    def app(self) -> Starlette:
        def page(items: list[Any], key: str) -> JSONResponse:
            return JSONResponse(
                {"data": {key: items}, "pagination": {"hasNextPage": False, "count": len(items)}}
            )

        def error(status: int, message: str) -> JSONResponse:
            return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)

        def listing(name: str, key: str, items: Any) -> Any:
            async def handler(request: Request) -> Response:
                if request.headers.get("authorization") != f"Bearer {TOKEN}":
                    return error(401, "Unauthorized")
                addon = request.path_params.get("addon")
                if addon is not None and addon in self.missing:
                    return error(404, "Addon not found")
                if name in self.refused:
                    return error(403, "Forbidden")
                return page(items(addon), key)

            return handler

        schedule = {
            "id": "hourly",
            "backupType": "snapshot",
            "scheduling": {"interval": "hourly", "minute": [0]},
            "retentionTime": 2,
            "createdAt": "2026-01-05T10:00:00.000Z",
        }
        addons = [{"id": a, "name": a.title(), "spec": {"type": "postgresql"}} for a in ADDONS]
        base = "/v1/projects/{project}/addons"
        return Starlette(
            routes=[
                Route(
                    "/v1/projects", listing("projects", "projects", lambda _: [{"id": "p1", "name": "Shop"}])
                ),
                Route(base, listing("addons", "addons", lambda _: addons)),
                Route(base + "/{addon}/backups", listing("backups", "backups", lambda a: self.backups[a])),
                Route(
                    base + "/{addon}/backup-schedules",
                    listing("schedules", "schedules", lambda _: [schedule]),
                ),
                Route(
                    base + "/{addon}/restores", listing("restores", "restores", lambda a: self.restores[a])
                ),
                Route("/v1/backup-destinations", listing("destinations", "backupDestinations", lambda _: [])),
            ]
        )


@dataclass
class Harness:
    api: StandinApi
    clock: FixedClock
    exporter: RunningExporter
    caplog: pytest.LogCaptureFixture

    async def refresh(self, advance: float = 60.0) -> Samples:
        self.clock.advance(advance)
        self.api.now = self.clock.now()
        self.caplog.clear()
        await self.exporter.scheduler.refresh()
        return await self.exporter.scrape()

    def no_traceback_above_debug(self) -> None:
        for record in self.caplog.records:
            if record.levelno >= logging.INFO:
                assert record.exc_info is None, record.getMessage()
                assert "Traceback" not in record.getMessage(), record.getMessage()


@pytest.fixture
async def harness(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Harness]:
    caplog.set_level(logging.DEBUG, logger="exporter")
    clock = FixedClock(float(int(time.time())))
    api = StandinApi(now=clock.now())
    async with (
        serve_asgi(api.app()) as url,
        running_exporter(api_url=url, token=TOKEN, clock=clock) as exporter,
    ):
        yield Harness(api, clock, exporter, caplog)


def addon(name: str) -> dict[str, str]:
    return {"project": "p1", "addon": name}


def resource_up(samples: Samples) -> dict[str, float | None]:
    return {r: value(samples, "northflank_exporter_resource_up", resource=r) for r in RESOURCES}


# -- future-dated backups ------------------------------------------------------------------------------


async def test_a_backup_from_the_future_does_not_hide_that_backups_stopped(harness: Harness) -> None:
    samples = await harness.refresh(advance=0)
    now = harness.clock.now()
    stopped = addon("stopped")

    last = harness.api.last_stopped_backup_completed
    assert value(samples, "northflank_addon_backup_last_completed_timestamp_seconds", **stopped) == last
    age = value(samples, "northflank_addon_backup_last_completed_age_seconds", **stopped)
    assert age == now - last
    assert age is not None
    assert age > 10 * HOUR - 300  # NorthflankBackupTooOld: an hourly schedule allows 2 h
    assert value(samples, "northflank_addon_backup_schedule_missed", **stopped, schedule="hourly") == 1
    assert value(samples, "northflank_addon_backups_future_dated", **stopped) == 1
    assert value(samples, "northflank_addon_backups", **stopped, status="completed") == 24

    healthy = addon("healthy")
    assert value(samples, "northflank_addon_backups_future_dated", **healthy) == 0
    assert value(samples, "northflank_addon_backup_schedule_missed", **healthy, schedule="hourly") == 0
    assert value(samples, "northflank_up") == 1


# -- northflank_up follows every resource --------------------------------------------------------------


async def test_a_token_refused_for_every_backup_listing_makes_the_api_down(harness: Harness) -> None:
    good = await harness.refresh()
    assert value(good, "northflank_up") == 1
    assert set(resource_up(good).values()) == {1}

    harness.api.refused.add("backups")
    refused = await harness.refresh()
    assert value(refused, "northflank_up") == 0
    assert resource_up(refused) == {r: 0 if r == "backups" else 1 for r in RESOURCES}
    assert value(refused, ERRORS, resource="backups", reason="permission") == len(ADDONS)
    # The values stay, as after any failed refresh.
    stopped = addon("stopped")
    assert value(refused, "northflank_addon_backups_future_dated", **stopped) == 1

    harness.api.refused.clear()
    after = await harness.refresh()
    assert value(after, "northflank_up") == 1
    assert set(resource_up(after).values()) == {1}
    harness.no_traceback_above_debug()


async def test_one_deleted_addon_leaves_the_api_up(harness: Harness) -> None:
    await harness.refresh()
    harness.api.missing.add("odd")
    samples = await harness.refresh()
    assert value(samples, ERRORS, resource="backups", reason="not_found") == 1
    assert value(samples, "northflank_up") == 1
    assert set(resource_up(samples).values()) == {1}

"""The Refresher classifies every failure and tells the truth about the API's health (issue 8, §5, §7).

- Any exception, not only the client's NorthflankError, raised while reading or summarising a listing is
  counted as reason ``unexpected``, logged once per fault class with its type and no traceback (the
  traceback at debug level), leaves the last good data and does not stop the polling.
- ``northflank_up`` and ``northflank_exporter_resource_up`` follow every resource, not only discovery:
  a resource the API refuses for every subject takes them to 0; one deleted addon does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import exporter.poller
from exporter.clock import FixedClock
from exporter.collector import SnapshotRenderer
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import (
    AuthError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from exporter.northflank.models import Addon, Backup, Project
from exporter.poller import Refresher
from exporter.resources import RESOURCES
from exporter.snapshot import SnapshotStore, summarize_restores
from tests.support import Samples, parse_samples, refresh_everything, value

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ADDONS = ("a1", "a2", "a3")

Raise = Callable[[], BaseException]


def _backup(hours_ago: float) -> Backup:
    created = NOW - timedelta(hours=hours_ago)
    return Backup.model_validate(
        {
            "id": f"b{hours_ago}",
            "status": "completed",
            "createdAt": created.isoformat(),
            "completedAt": (created + timedelta(minutes=5)).isoformat(),
        }
    )


class FakeApi:
    """What NorthflankClient offers the Refresher. ``fail[(resource, subject)]`` makes the listing raise
    (subject ``*``: for every subject); addons are subjects by addon id, projects by project id."""

    def __init__(self, projects: dict[str, tuple[str, ...]] | None = None) -> None:
        self.projects = projects or {"p1": ADDONS}
        self.fail: dict[tuple[str, str], Raise] = {}
        self.backups: dict[str, list[Backup]] = {}
        self.server_time_offset = 0.0

    def _answer(self, resource: str, subject: str) -> None:
        raise_ = self.fail.get((resource, subject)) or self.fail.get((resource, "*"))
        if raise_ is not None:
            raise raise_()

    async def list_projects(self, *, team: str | None = None) -> list[Project]:
        self._answer("projects", "")
        return [Project(id=p, name=p.upper()) for p in self.projects]

    async def list_addons(self, project_id: str, *, team: str | None = None) -> list[Addon]:
        self._answer("addons", project_id)
        return [
            Addon.model_validate({"id": a, "name": a.upper(), "spec": {"type": "postgresql"}})
            for a in self.projects[project_id]
        ]

    async def list_backups(self, project_id: str, addon_id: str, *, team: str | None = None) -> list[Backup]:
        self._answer("backups", addon_id)
        return self.backups.get(addon_id, [_backup(1)])

    async def list_backup_schedules(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Any]:
        self._answer("schedules", addon_id)
        return []

    async def list_addon_restores(
        self, project_id: str, addon_id: str, *, team: str | None = None
    ) -> list[Any]:
        self._answer("restores", addon_id)
        return []

    async def list_backup_destinations(self, *, team: str | None = None) -> list[Any]:
        self._answer("backup_destinations", "")
        return []

    async def list_destination_backups(self, destination_id: str, *, team: str | None = None) -> list[Any]:
        return []


class World:
    def __init__(self, api: FakeApi, concurrency: int = 4) -> None:
        self.api = api
        self.clock = FixedClock(NOW.timestamp())
        self.store = SnapshotStore()
        self.registry = CollectorRegistry()
        self.refresher = Refresher(
            cast(NorthflankClient, api),
            self.store,
            clock=self.clock,
            registry=self.registry,
            concurrency=concurrency,
        )
        self.renderer = SnapshotRenderer(schedule_grace_seconds=7200, version="test")

    async def refresh(self, advance: float = 600.0) -> Samples:
        self.clock.advance(advance)
        await refresh_everything(self.refresher)
        return self.scrape()

    def scrape(self) -> Samples:
        samples = parse_samples(self.renderer.render(self.store.current, self.clock.now()).decode())
        return {**samples, **parse_samples(generate_latest(self.registry).decode())}


def errors(samples: Samples, resource: str, reason: str) -> float | None:
    return value(samples, "northflank_exporter_refresh_errors_total", resource=resource, reason=reason)


def resource_up(samples: Samples) -> dict[str, float | None]:
    return {r: value(samples, "northflank_exporter_resource_up", resource=r) for r in RESOURCES}


def no_traceback_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            assert record.exc_info is None, record.getMessage()
            assert "Traceback" not in record.getMessage()


# -- section 5: every failure is classified -----------------------------------------------------------

ARBITRARY: list[Raise] = [
    lambda: OverflowError("date value out of range"),
    lambda: ValueError("invalid literal for int() with base 10: '²'"),
    lambda: KeyError("createdAt"),
    lambda: RuntimeError("a bug"),
    lambda: ZeroDivisionError("division by zero"),
    lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
]


A1 = {"project": "p1", "addon": "a1"}
LAST_COMPLETED = "northflank_addon_backup_last_completed_timestamp_seconds"
REFRESHED = "northflank_exporter_last_refresh_timestamp_seconds"


@pytest.mark.parametrize("raise_", ARBITRARY, ids=lambda r: type(r()).__name__)
async def test_an_arbitrary_exception_from_a_listing_is_counted_logged_once_and_survived(
    caplog: pytest.LogCaptureFixture, raise_: Raise
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    world = World(FakeApi())
    good = await world.refresh()
    assert value(good, "northflank_up") == 1
    kept = value(good, LAST_COMPLETED, **A1)
    assert kept is not None

    world.api.fail[("backups", "a1")] = raise_
    caplog.clear()
    for _ in range(3):  # the fault persists pass after pass: still one line
        during = await world.refresh()

    assert errors(during, "backups", "unexpected") == 3
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    warnings = [r.getMessage() for r in records]
    assert len(warnings) == 1, warnings
    assert type(raise_()).__name__ in warnings[0]
    # The context is in fields (logfmt fields, JSON keys), not in the message.
    fields = {k: getattr(records[0], k, None) for k in ("resource", "reason", "project", "addon")}
    assert fields == {"resource": "backups", "reason": "unexpected", "project": "p1", "addon": "a1"}
    assert str(raise_()) not in warnings[0], "the message may quote what the API sent"
    no_traceback_above_debug(caplog)
    assert any(r.levelno == logging.DEBUG and r.exc_info is not None for r in caplog.records)
    # The last good data stays, with its refresh time; one addon failing is not the API failing.
    assert value(during, LAST_COMPLETED, **A1) == kept
    assert value(during, REFRESHED, **A1, resource="backups") == value(
        good, REFRESHED, **A1, resource="backups"
    )
    assert value(during, "northflank_up") == 1

    # Polling went on: once the fault is gone, the addon is read again and the recovery is logged.
    del world.api.fail[("backups", "a1")]
    caplog.clear()
    after = await world.refresh()
    assert errors(after, "backups", "unexpected") == 3
    assert value(after, REFRESHED, **A1, resource="backups") == world.clock.now()
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_a_failure_while_summarising_is_counted_and_keeps_the_last_good_data(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    world = World(FakeApi())
    good = await world.refresh()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OverflowError("timestamp out of range")

    monkeypatch.setattr(exporter.poller, "summarize_restores", broken)
    caplog.clear()
    during = await world.refresh()
    assert errors(during, "restores", "unexpected") == len(ADDONS)
    for addon in ADDONS:
        labels = {"project": "p1", "addon": addon, "resource": "restores"}
        assert value(during, REFRESHED, **labels) == value(good, REFRESHED, **labels)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "OverflowError" in warnings[0]
    no_traceback_above_debug(caplog)

    # A listing that reads fine but cannot be summarised has not recovered: no "works again", no new
    # warning on the next pass either.
    caplog.clear()
    await world.refresh()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    monkeypatch.setattr(exporter.poller, "summarize_restores", summarize_restores)
    after = await world.refresh()
    assert errors(after, "restores", "unexpected") == 2 * len(ADDONS)


async def test_an_unexpected_failure_of_discovery_makes_northflank_up_0(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter")
    world = World(FakeApi())
    await world.refresh()
    world.api.fail[("projects", "*")] = lambda: ValueError("bad header")
    during = await world.refresh()
    assert errors(during, "projects", "unexpected") == 1
    assert value(during, "northflank_up") == 0
    assert resource_up(during)["projects"] == 0
    info = {"addon_name": "A1", "project_name": "P1", "addon_type": "postgresql"}
    assert value(during, "northflank_addon_info", **A1, **info) == 1, "the last good data is kept"
    no_traceback_above_debug(caplog)


def test_unexpected_is_a_reason_every_resource_starts_with() -> None:
    world = World(FakeApi())
    samples = world.scrape()
    for resource in RESOURCES:
        assert errors(samples, resource, "unexpected") == 0


# -- section 7: the API's health covers every resource ------------------------------------------------


def _denied() -> BaseException:
    return PermissionDeniedError(
        "Forbidden", endpoint="/v1/projects/{projectId}/addons/{addonId}/backups", status_code=403
    )


def _gone() -> BaseException:
    return NotFoundError(
        "Addon not found", endpoint="/v1/projects/{projectId}/addons/{addonId}/backups", status_code=404
    )


@pytest.mark.parametrize(
    "raise_",
    [
        _denied,
        lambda: AuthError("Unauthorized", endpoint="/v1/x", status_code=401),
        lambda: ServerError("server error", endpoint="/v1/x", status_code=503),
        lambda: TransportError("connection refused", endpoint="/v1/x"),
    ],
    ids=["permission", "auth", "server_error", "connection"],
)
async def test_a_resource_refused_for_every_subject_makes_the_api_down(raise_: Raise) -> None:
    world = World(FakeApi())
    good = await world.refresh()
    assert value(good, "northflank_up") == 1
    assert set(resource_up(good).values()) == {1}

    world.api.fail[("backups", "*")] = raise_
    during = await world.refresh()
    assert value(during, "northflank_up") == 0
    assert resource_up(during) == {r: (0 if r == "backups" else 1) for r in RESOURCES}

    # One addon read again is enough to say the API serves the resource.
    world.api.fail[("backups", "a2")] = lambda: _gone()
    world.api.fail[("backups", "a1")] = lambda: InvalidResponseError("bad", endpoint="/v1/x")
    del world.api.fail[("backups", "*")]
    world.api.fail[("backups", "a3")] = raise_
    mixed = await world.refresh()
    assert resource_up(mixed)["backups"] == 0, "a 404 and a bad body say nothing about the resource"
    del world.api.fail[("backups", "a3")]
    after = await world.refresh()
    assert value(after, "northflank_up") == 1
    assert resource_up(after)["backups"] == 1


@pytest.mark.parametrize("concurrency", [1, 2, 16])
async def test_a_deleted_addon_or_a_refused_project_does_not_make_the_api_down(concurrency: int) -> None:
    """However the reads interleave: one addon answering 404 (even the only one of its fleet), one
    project refused while another is readable, a rate limit on everything."""
    world = World(FakeApi({"p1": ("a1", "a2"), "p2": ("b1", "b2")}), concurrency=concurrency)
    await world.refresh()
    for subject in ("a1", "a2"):
        for resource in ("backups", "schedules", "restores"):
            world.api.fail[(resource, subject)] = _denied
    world.api.fail[("addons", "p1")] = _denied
    world.api.fail[("backups", "b2")] = _gone
    for _ in range(2):
        during = await world.refresh()
        assert value(during, "northflank_up") == 1
        assert set(resource_up(during).values()) == {1}

    world.api.fail.clear()
    world.api.fail[("backups", "*")] = lambda: RateLimitedError("slow down", endpoint="/v1/x")
    held = await world.refresh()
    assert value(held, "northflank_up") == 1

    alone = World(FakeApi({"p1": ("a1",)}), concurrency=concurrency)
    await alone.refresh()
    alone.api.fail[("backups", "a1")] = _gone
    assert value(await alone.refresh(), "northflank_up") == 1


async def test_an_addon_that_is_gone_no_longer_speaks_for_its_resource() -> None:
    """a1 was read fine, then deleted; a2 is refused: nothing readable is left, the resource is down."""
    world = World(FakeApi({"p1": ("a1", "a2")}))
    await world.refresh()
    world.api.projects = {"p1": ("a2",)}
    world.api.fail[("backups", "a2")] = _denied
    during = await world.refresh()
    assert resource_up(during)["backups"] == 0
    assert value(during, "northflank_up") == 0


async def test_the_backups_are_summarised_at_the_api_servers_time() -> None:
    """A backup dated 2 h after our clock, from an API whose Date header runs 3 h ahead: not future-dated."""
    api = FakeApi({"p1": ("a1",)})
    ahead = _backup(-2)
    api.backups["a1"] = [ahead]
    world = World(api)
    samples = await world.refresh(advance=0)
    labels = {"project": "p1", "addon": "a1"}
    assert value(samples, "northflank_addon_backups_future_dated", **labels) == 1
    api.server_time_offset = 3 * 3600.0
    samples = await world.refresh(advance=0)
    assert value(samples, "northflank_addon_backups_future_dated", **labels) == 0
    assert (
        value(samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels)
        == (NOW + timedelta(hours=2, minutes=5)).timestamp()
    )
    # An offset no clock skew explains (a broken Date header) does not let the future pass.
    for absurd in (10 * 365 * 86400.0, float("inf"), float("nan")):
        api.server_time_offset = absurd
        samples = await world.refresh(advance=0)
        assert value(samples, "northflank_addon_backups_future_dated", **labels) == 1

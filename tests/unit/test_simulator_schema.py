"""The simulator's payloads against the official SDK's TypedDicts and the exporter's models, for every route.

Where the documented API and the SDK disagree, the simulator follows the documentation (its example
responses), and each check below names that exception and applies it to that one field only:

- restore ``id``: an integer (unix ms) in the documented example, ``str`` in the SDK;
- destination backup ``expiredBy``: a string (``"1729232400000.0"``) in the documented example,
  ``float`` in the SDK;
- ``completedAt``: required in both, but a backup in flight has not completed (shared doc): only
  in-flight items may lack it;
- the destinations listing's ``id``: absent from the SDK's TypedDict, present in the js-client's.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import pytest
import typing_extensions
from northflank import _types as sdk
from pydantic import BaseModel, TypeAdapter

from exporter.clock import FixedClock
from exporter.northflank import models
from exporter.simulator import SIMULATED_ACCESS_KEY, SIMULATED_SECRET_KEY, Simulator
from exporter.simulator.routes import (
    ADDON_RESTORES,
    ADDONS,
    API_ROUTES,
    BACKUP_RESTORES,
    BACKUPS,
    DESTINATION_BACKUPS,
    DESTINATIONS,
    PROJECTS,
    SCHEDULES,
)

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z

SDK_SHAPES: dict[str, Any] = {
    PROJECTS: sdk.ListProjectsResponse,
    ADDONS: sdk.ListAddonsResponse,
    BACKUPS: sdk.GetAddonBackupsResponse,
    SCHEDULES: sdk.GetAddonBackupSchedulesResponse,
    ADDON_RESTORES: sdk.GetAddonRestoresResponse,
    BACKUP_RESTORES: sdk.GetAddonBackupRestoresResponse,
    DESTINATIONS: sdk.ListBackupDestinationsResponse,
    DESTINATION_BACKUPS: list[sdk.ListBackupDestinationsBackupsResponse],  # ``data`` is a list here
}
EXPORTER_MODELS: dict[str, tuple[str | None, type[BaseModel]]] = {
    PROJECTS: ("projects", models.Project),
    ADDONS: ("addons", models.Addon),
    BACKUPS: ("backups", models.Backup),
    SCHEDULES: ("schedules", models.Schedule),
    ADDON_RESTORES: ("restores", models.Restore),
    BACKUP_RESTORES: ("restores", models.Restore),
    DESTINATIONS: ("backupDestinations", models.BackupDestination),
    DESTINATION_BACKUPS: (None, models.DestinationBackup),
}
#: Keys the simulator sends that the SDK's TypedDicts do not declare (see the module docstring).
UNDECLARED_ALLOWED = {(DESTINATIONS, "backupDestinations[].id")}


def _items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return data
    assert isinstance(data, dict)
    assert len(data) == 1
    (items,) = data.values()
    assert isinstance(items, list)
    return items


def documented_exceptions(route: str, data: Any) -> Any:
    """The documented-vs-SDK exceptions, applied narrowly to a copy of ``data``."""
    items = [dict(item) for item in _items(data)]
    for item in items:
        if route in (ADDON_RESTORES, BACKUP_RESTORES):
            assert isinstance(item["id"], int)  # documented: an integer, unix ms
            item["id"] = str(item["id"])  # the SDK says str
        if route == DESTINATION_BACKUPS:
            assert isinstance(item["expiredBy"], str)  # the documented example sends a string
            item["expiredBy"] = float(item["expiredBy"])  # the SDK says float
        if route in (BACKUPS, DESTINATION_BACKUPS):
            if item["status"] == "in-progress":
                assert "completedAt" not in item
                item["completedAt"] = "in flight: not completed"  # any str satisfies the SDK
            else:
                assert "completedAt" in item
    return items if isinstance(data, list) else {next(iter(data)): items}


def undeclared_keys(value: Any, shape: Any, path: str = "") -> list[str]:
    """Keys in ``value`` that the TypedDict ``shape`` (recursively) does not declare."""
    origin = typing.get_origin(shape)
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006 - the SDK uses List
        (inner,) = typing.get_args(shape)
        return [k for item in value for k in undeclared_keys(item, inner, path + "[]")]
    if origin in (typing.Union, types.UnionType):
        return []
    # The SDK's TypedDicts are typing_extensions' (typing.is_typeddict does not see them on 3.11).
    if typing_extensions.is_typeddict(shape) and isinstance(value, dict):
        hints = typing_extensions.get_type_hints(shape)
        found: list[str] = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in hints:
                found.append(where)
            else:
                found.extend(undeclared_keys(item, hints[key], where))
        return found
    return []


def item_urls(sim: Simulator) -> dict[str, list[str]]:
    """A URL per route for every project, addon, backup and destination of the fleet."""
    urls: dict[str, list[str]] = {route: [] for route in API_ROUTES}
    urls[PROJECTS].append("/v1/projects")
    urls[DESTINATIONS].append("/v1/backup-destinations")
    for destination in sim.fleet.destinations:
        urls[DESTINATION_BACKUPS].append(f"/v1/backup-destinations/{destination.id}/backups")
    for project in sim.fleet.projects:
        urls[ADDONS].append(f"/v1/projects/{project.id}/addons")
        for addon in sim.fleet.addons_of(project.id):
            base = f"/v1/projects/{project.id}/addons/{addon.id}"
            urls[BACKUPS].append(base + "/backups")
            urls[SCHEDULES].append(base + "/backup-schedules")
            urls[ADDON_RESTORES].append(base + "/restores")
            restored = {r.backup_id for r in _restores(sim, addon.id)}
            backups = sim.backups_at(addon, sim.clock.now())
            # Restores of a backup that has some, and of one that has none.
            for backup in [b for b in backups if b.id in restored][:1] + backups[:1]:
                urls[BACKUP_RESTORES].append(f"{base}/backups/{backup.id}/restores")
    return urls


def _restores(sim: Simulator, addon_id: str) -> list[Any]:
    from exporter.simulator.history import addon_restores

    addon = sim.fleet.addon(addon_id)
    assert addon is not None
    return addon_restores(sim.fleet, addon, sim.seed, sim.clock.now())


async def fetch_all(sim: Simulator) -> dict[str, list[Any]]:
    """Every route's ``data``, for every URL of the fleet, walking all pages."""
    found: dict[str, list[Any]] = {route: [] for route in API_ROUTES}
    async with sim.client() as client:
        for route, urls in item_urls(sim).items():
            for url in urls:
                cursor: str | None = None
                while True:
                    params = {"per_page": "100"} | ({"cursor": cursor} if cursor else {})
                    response = await client.get(url, params=params)
                    assert response.status_code == 200, (url, response.text)
                    body = response.json()
                    assert set(body) == {"data", "pagination"}
                    found[route].append(body["data"])
                    models.Pagination.model_validate(body["pagination"])
                    if not body["pagination"]["hasNextPage"]:
                        break
                    cursor = body["pagination"]["cursor"]
    return found


@pytest.fixture(scope="module", params=["demo", "e2e"])
def payloads(request: pytest.FixtureRequest) -> dict[str, list[Any]]:
    import asyncio

    sim = Simulator.from_scenario(request.param, clock=FixedClock(T0), seed=7)
    return asyncio.run(fetch_all(sim))


def test_every_route_has_payloads(payloads: dict[str, list[Any]]) -> None:
    for route in API_ROUTES:
        assert any(_items(data) for data in payloads[route]), route


@pytest.mark.parametrize("route", API_ROUTES)
def test_payloads_validate_against_the_sdk_typeddicts(payloads: dict[str, list[Any]], route: str) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(SDK_SHAPES[route])
    for data in payloads[route]:
        adapter.validate_python(documented_exceptions(route, data), strict=True)


@pytest.mark.parametrize("route", API_ROUTES)
def test_payloads_send_no_field_the_sdk_does_not_know(payloads: dict[str, list[Any]], route: str) -> None:
    for data in payloads[route]:
        extra = set(undeclared_keys(data, SDK_SHAPES[route]))
        assert {(route, key) for key in extra} <= UNDECLARED_ALLOWED, extra


@pytest.mark.parametrize("route", API_ROUTES)
def test_payloads_parse_with_the_exporter_models(payloads: dict[str, list[Any]], route: str) -> None:
    key, model = EXPORTER_MODELS[route]
    parsed = [model.model_validate(item) for data in payloads[route] for item in _items(data)]
    assert parsed
    if route == BACKUPS:
        backups = typing.cast(list[models.Backup], parsed)
        assert all(b.status is not models.BackupStatus.UNKNOWN for b in backups)
        done = [b for b in backups if b.status is models.BackupStatus.COMPLETED]
        assert done
        assert all(b.config.size and b.config.size > 0 and b.duration_seconds for b in done)
        running = [b for b in backups if b.status is models.BackupStatus.IN_PROGRESS]
        assert all(b.config.size == 0 and b.completed_at is None for b in running)
    if route == DESTINATION_BACKUPS:
        for b in typing.cast(list[models.DestinationBackup], parsed):
            assert b.expired_by is not None
            assert b.expired_by > b.created_at
    if route in (ADDON_RESTORES, BACKUP_RESTORES):
        assert all(r.id.isdigit() for r in typing.cast(list[models.Restore], parsed))
    del key


def test_backup_sizes_are_strings_of_digits(payloads: dict[str, list[Any]]) -> None:
    for route in (BACKUPS, DESTINATION_BACKUPS):
        for data in payloads[route]:
            for item in _items(data):
                assert isinstance(item["config"]["size"], str)
                assert item["config"]["size"].isdigit()


def test_destinations_carry_the_distinctive_credentials(payloads: dict[str, list[Any]]) -> None:
    for data in payloads[DESTINATIONS]:
        for item in _items(data):
            assert item["credentials"]["accessKey"] == SIMULATED_ACCESS_KEY
            assert item["credentials"]["secretKey"] == SIMULATED_SECRET_KEY
            parsed = models.BackupDestination.model_validate(item)
            assert SIMULATED_SECRET_KEY not in repr(parsed) + parsed.model_dump_json()


def test_the_documented_examples_pass_the_same_checks() -> None:
    """The checks themselves: the docs' own example responses must pass them unchanged."""
    examples: dict[str, Any] = {
        BACKUP_RESTORES: {
            "restores": [
                {
                    "id": 1693287033325,
                    "restoreTimestamp": "2021-01-20T11:19:54.494Z",
                    "status": "completed",
                    "completedAt": "2021-01-20T11:19:54.494Z",
                }
            ]
        },
        DESTINATION_BACKUPS: [
            {
                "id": "example-backup",
                "name": "Example Backup",
                "status": "completed",
                "project": {"id": "example-project", "name": "Example Project"},
                "addon": {"id": "example-addon", "name": "Example Addon"},
                "config": {
                    "addonVersion": "4.4.8",
                    "addonType": "mongodb",
                    "source": {"type": "global"},
                    "size": "1234",
                },
                "schedules": [{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
                "expiredBy": "1729232400000.0",
                "createdAt": "2021-01-20T11:19:53.175Z",
                "completedAt": "2021-01-20T11:19:54.494Z",
            }
        ],
    }
    for route, data in examples.items():
        TypeAdapter(SDK_SHAPES[route]).validate_python(documented_exceptions(route, data), strict=True)
        assert undeclared_keys(data, SDK_SHAPES[route]) == []


def test_the_undeclared_key_check_catches_an_invented_field() -> None:
    check: Callable[[Any, Any], list[str]] = undeclared_keys
    data = {"backups": [{"id": "b", "config": {"size": "1", "sizeBytes": 1}, "invented": True}]}
    assert sorted(check(data, sdk.GetAddonBackupsResponse)) == [
        "backups[].config.sizeBytes",
        "backups[].invented",
    ]

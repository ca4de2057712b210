"""Hostile API payloads for the renderer's tests: strategies, a fixed worst case, and the path from API-shaped
dicts through the pydantic models and the snapshot's summaries to a Snapshot, as the poller takes it.

Whatever the models let through must render; what they reject is simply not part of the snapshot (other
layers decide what to reject), so a payload item that fails validation is left out here. The models bound
what they accept (ids, sizes, retention, times); ``worst_case_snapshot`` then puts the values they refuse
straight into the summaries, since the renderer must write whatever a snapshot holds.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from exporter.northflank.models import (
    Addon,
    Backup,
    BackupDestination,
    DestinationBackup,
    Project,
    Restore,
    Schedule,
)
from exporter.schedule import HOUR, ScheduleCalendar
from exporter.snapshot import (
    Fetched,
    ScheduleSummary,
    Snapshot,
    summarize_backups,
    summarize_destination_backups,
    summarize_restores,
    summarize_schedules,
)

Payload = dict[str, Any]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: A lone surrogate (what the JSON escape "\udc80" decodes to), controls, quotes, backslashes, newlines.
NASTY = '\udc80a\ud800"\\\n\r\t\x00\x7f\u2028\ufffe\U0001f600'
HUGE_INT = 10**400

_characters = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates: left out by st.characters() itself
    st.characters(categories=["Cc"]),
    st.sampled_from('"\\\n{}=,# '),
)
hostile_text = st.one_of(
    st.text(_characters, max_size=12),
    st.text(_characters, min_size=1, max_size=4).map(lambda s: (s * 10_240)[:10_240]),  # ~10 KB
    st.just(NASTY),
)
# Ids that reach a URL must match the documented pattern (the models skip the rest): mostly valid ones, so
# that the fleets are not all rejected, and now and then a hostile one, which must then be left out.
hostile_id = st.integers(0, 7).flatmap(
    lambda i: hostile_text if i == 0 else st.from_regex(r"[A-Za-z0-9-]{1,24}", fullmatch=True)
)
hostile_number: st.SearchStrategy[object] = st.one_of(
    st.integers(),
    st.integers(min_value=-HUGE_INT, max_value=HUGE_INT),
    st.floats(),
    st.sampled_from(
        [
            HUGE_INT,
            -HUGE_INT,
            10**330,
            2**53 + 1,
            sys.float_info.max,
            -sys.float_info.max,
            5e-324,
            float("nan"),
            float("inf"),
            float("-inf"),
            -1,
            0,
        ]
    ),
    st.floats().map(repr),
    st.sampled_from(["1e308", "1e400", "-1e400", "nan", "inf", "-0", "1" * 400, "²", "0x10", "1_000", ""]),
    st.none(),
    st.booleans(),
)
_valid_time = st.sampled_from(
    [
        "2026-11-27T10:00:00Z",
        "2026-11-28T07:59:59.999999+00:00",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2026-11-27T10:00:00",
    ]
)
# Mostly valid: an item the models reject never reaches the renderer, and the renderer is under test.
hostile_time = st.integers(0, 3).flatmap(lambda i: _valid_time if i else hostile_text)
_known_status = st.sampled_from(
    ["completed", "failed", "in-progress", "scheduled", "aborted", "not-supported"]
)
statuses = st.integers(0, 3).flatmap(
    lambda i: [hostile_text, _known_status][i] if i < 2 else st.just("completed")
)


def _backup(draw: st.DrawFn) -> Payload:
    return {
        "id": draw(hostile_text),
        "name": draw(hostile_text),
        "status": draw(statuses),
        "createdAt": draw(hostile_time),
        "completedAt": draw(hostile_time),
        "config": {"size": draw(hostile_number)},
    }


@dataclass
class AddonPayloads:
    addon: Payload
    backups: list[Payload] = field(default_factory=list)
    schedules: list[Payload] = field(default_factory=list)
    restores: list[Payload] = field(default_factory=list)


@dataclass
class FleetPayloads:
    """What the API answered, item by item, per listing."""

    projects: list[tuple[Payload, list[AddonPayloads]]] = field(default_factory=list)
    destinations: list[tuple[Payload, list[Payload]]] = field(default_factory=list)


@st.composite
def fleets(draw: st.DrawFn, max_addons: int = 3) -> FleetPayloads:
    fleet = FleetPayloads()
    for _ in range(draw(st.integers(1, 2))):
        addons = []
        for _ in range(draw(st.integers(1, max_addons))):
            addon = AddonPayloads(
                {
                    "id": draw(hostile_id),
                    "name": draw(hostile_text),
                    "spec": {"type": draw(hostile_text)},
                    "status": draw(hostile_text),
                }
            )
            addon.backups = [_backup(draw) for _ in range(draw(st.integers(0, 4)))]
            addon.schedules = [
                {
                    "id": draw(hostile_text),
                    "backupType": draw(st.one_of(st.sampled_from(["dump", "snapshot"]), hostile_text)),
                    "backupCompressionType": draw(hostile_text),
                    "scheduling": draw(
                        st.sampled_from(
                            [
                                {"interval": "hourly", "minute": [0, 30]},
                                {"interval": "daily", "minute": [15], "hour": [3]},
                                {"interval": "weekly", "minute": [0], "hour": [23], "day": [0, 6]},
                            ]
                        )
                    ),
                    "retentionTime": draw(hostile_number),
                    "createdAt": draw(hostile_time),
                }
                for _ in range(draw(st.integers(0, 2)))
            ]
            addon.restores = [
                {
                    "id": draw(st.one_of(hostile_text, st.integers(min_value=-HUGE_INT, max_value=HUGE_INT))),
                    "restoreTimestamp": draw(hostile_time),
                    "status": draw(statuses),
                    "completedAt": draw(hostile_time),
                }
                for _ in range(draw(st.integers(0, 2)))
            ]
            addons.append(addon)
        fleet.projects.append(({"id": draw(hostile_id), "name": draw(hostile_text)}, addons))
    for _ in range(draw(st.integers(0, 2))):
        backups = [
            {
                **_backup(draw),
                "project": {"id": draw(hostile_text)},
                "addon": {"id": draw(hostile_text)},
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        fleet.destinations.append(({"id": draw(hostile_id), "name": draw(hostile_text)}, backups))
    return fleet


def worst_case_fleet() -> FleetPayloads:
    """Every hostile value at once, in every field the exposition shows (ids distinct, so every series
    stays apart once escaped)."""

    def text(tag: str) -> str:
        return f"{tag}-{NASTY}"

    def backup(tag: str, size: object, created: str, completed: str, status: str = "completed") -> Payload:
        return {
            "id": text(tag),
            "status": status,
            "createdAt": created,
            "completedAt": completed,
            "config": {"size": size},
        }

    sizes: list[object] = [HUGE_INT, HUGE_INT, sys.float_info.max, "1" * 400, "1e308"]
    addon = AddonPayloads(
        {"id": "addon", "name": text("name") * 500, "spec": {"type": text("type")}},
        backups=[
            backup(f"b{i}", size, "2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z")
            for i, size in enumerate(sizes)
        ]
        + [backup("failed", -HUGE_INT, "2026-11-27T12:00:00Z", "", "failed")],
        schedules=[
            {
                "id": text("schedule"),
                "backupType": "dump",
                "backupCompressionType": text("compression"),
                "scheduling": {"interval": "hourly", "minute": [0]},
                "retentionTime": 10**330,
            }
        ],
        restores=[
            {
                "id": 10**300,
                "restoreTimestamp": "2026-11-27T12:00:00Z",
                "status": "completed",
                "completedAt": "2026-11-27T12:30:00Z",
            }
        ],
    )
    plain = AddonPayloads({"id": "plain", "name": "plain", "spec": {"type": "postgresql"}})
    destination_backups = [
        {
            **backup(f"d{i}", HUGE_INT, "2026-11-27T10:00:00Z", "2026-11-27T11:00:00Z"),
            "addon": {"id": text("a")},
        }
        for i in range(3)
    ]
    return FleetPayloads(
        projects=[({"id": "project", "name": text("project name")}, [addon, plain])],
        destinations=[({"id": "destination", "name": text("bucket")}, destination_backups)],
    )


def worst_case_snapshot(*, now: float) -> Snapshot:
    """``worst_case_fleet`` as the poller would hold it, plus the numbers the models refuse (sizes past
    float64, a retention of 10**330 days) put straight into its summaries."""
    snapshot = build_snapshot(worst_case_fleet(), now=now)
    addons = dict(snapshot.addons)
    key = ("project", "addon")
    addon = addons[key]
    if addon.backups is not None:
        huge = dataclasses.replace(
            addon.backups.value, last_completed_size_bytes=HUGE_INT, completed_size_bytes=HUGE_INT
        )
        addon = dataclasses.replace(addon, backups=dataclasses.replace(addon.backups, value=huge))
    schedule = ScheduleSummary(
        id=f"schedule-{NASTY}",
        interval="hourly",
        backup_type="dump",
        compression=f"compression-{NASTY}",
        retention_seconds=10**330 * 86_400,
        calendar=ScheduleCalendar(HOUR, (0,)),
        active_since=None,
    )
    addon = dataclasses.replace(addon, schedules=Fetched((schedule,), now))
    addons[key] = addon
    destinations = dict(snapshot.destinations)
    stored = destinations["destination"]
    if stored.backups is not None:
        bigger = dataclasses.replace(stored.backups.value, completed_size_bytes=HUGE_INT)
        stored = dataclasses.replace(stored, backups=dataclasses.replace(stored.backups, value=bigger))
    destinations["destination"] = stored
    return dataclasses.replace(snapshot, addons=addons, destinations=destinations)


def _valid(model: type[M], payloads: Sequence[Payload]) -> list[M]:
    valid = []
    for payload in payloads:
        try:
            valid.append(model.model_validate(payload))
        except (ValidationError, OverflowError):
            # Rejected by the models (an OverflowError is theirs to turn into a rejection): not rendered.
            continue
    return valid


def _summary(summarize: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    try:
        return summarize(*args, **kwargs)
    except OverflowError:  # the snapshot's to handle, not the renderer's
        return None


def build_snapshot(fleet: FleetPayloads, *, now: float) -> Snapshot:
    """The snapshot the poller would hold after reading ``fleet`` successfully at ``now``."""
    snapshot = Snapshot()
    projects = [(p, addons) for p, addons in fleet.projects if _valid(Project, [p])]
    snapshot = snapshot.with_projects([(None, _valid(Project, [p])[0]) for p, _ in projects], at=now)
    for payload, addons in projects:
        project_id = _valid(Project, [payload])[0].id
        listed = _valid(Addon, [a.addon for a in addons])
        snapshot = snapshot.with_project_addons(project_id, listed, at=now)
        for addon_payload in addons:
            valid = _valid(Addon, [addon_payload.addon])
            if not valid:
                continue
            key = (project_id, valid[0].id)
            backups = _summary(summarize_backups, _valid(Backup, addon_payload.backups), now=now)
            if backups is not None:
                snapshot = snapshot.with_addon_backups(key, backups, at=now)
            schedules = _summary(summarize_schedules, _valid(Schedule, addon_payload.schedules))
            if schedules is not None:
                snapshot = snapshot.with_addon_schedules(key, schedules, at=now)
            restores = _summary(summarize_restores, _valid(Restore, addon_payload.restores), now=now)
            if restores is not None:
                snapshot = snapshot.with_addon_restores(key, restores, at=now)
    destinations = _valid(BackupDestination, [d for d, _ in fleet.destinations])
    snapshot = snapshot.with_destinations(destinations, at=now)
    for payload, stored in fleet.destinations:
        valid_destination = _valid(BackupDestination, [payload])
        if not valid_destination or valid_destination[0].id is None:
            continue
        summary = _summary(summarize_destination_backups, _valid(DestinationBackup, stored), now=now)
        if summary is not None:
            snapshot = snapshot.with_destination_backups(valid_destination[0].id, summary, at=now)
    return snapshot.with_ready()

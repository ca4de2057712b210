"""What the simulated Northflank account contains: the frozen specs a :class:`Fleet` is made of.

A :class:`Fleet` is plain, frozen data: projects, addons (with their backup schedules and behaviour),
backup destinations. What backups exist at a given instant is computed from it by :mod:`.history`.

Times that describe a behaviour (``failing_since``, ``stopped_since``...) are offsets in seconds
relative to the fleet's ``start`` instant (negative = before it). A fleet built without ``start`` is
anchored by the :class:`~exporter.simulator.app.Simulator` to its clock's reading when it is created.

The named scenarios built from them are in :mod:`.scenarios` and :mod:`.reference_fleet`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Literal

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0

#: Every destination's credentials carry these values: distinctive so that tests can prove they never
#: leak out of the API client (into a log line, a metric, a label, an error message...).
SIMULATED_ACCESS_KEY = "AKIASIMULATEDACCESSKEY"
SIMULATED_SECRET_KEY = "sim-secret-key-DO-NOT-LEAK-9c4f2e7a1b"  # noqa: S105 - a fake, on purpose
SIMULATED_SECRETS: tuple[str, ...] = (SIMULATED_ACCESS_KEY, SIMULATED_SECRET_KEY)

#: An offset meaning "since forever" (e.g. ``failing_since=ALWAYS``: no attempt ever succeeded).
ALWAYS = -math.inf

Interval = Literal["hourly", "daily", "weekly"]
BackupType = Literal["dump", "snapshot"]
Compression = Literal["gz", "zstd"]

ADDON_VERSIONS: Mapping[str, str] = {
    "postgresql": "16.4.0",
    "mysql": "8.0.39",
    "mongodb": "7.0.14",
    "redis": "7.2.5",
    "minio": "2024.9.22",
    "rabbitmq": "3.13.7",
}


class Behaviour(StrEnum):
    """A label naming what an addon is set up to show (the parameters below make it so)."""

    HEALTHY = "healthy"
    FAILING = "failing"
    STALE = "stale"
    UNSCHEDULED = "unscheduled"
    NEVER_COMPLETED = "never-completed"
    STUCK = "stuck"
    SIZE_DROP = "size-drop"
    FAILED_RESTORE = "failed-restore"
    MISSED_RUNS = "missed-runs"


@dataclass(frozen=True)
class AdditionalDestinationSpec:
    destination_id: str
    retention_days: int | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """One backup schedule. It fires at every (day, hour, minute) of its lists, in UTC; day 0 is Monday."""

    id: str
    interval: Interval
    minutes: tuple[int, ...]
    hours: tuple[int, ...] = ()
    days: tuple[int, ...] = ()
    backup_type: BackupType = "dump"
    compression: Compression = "gz"
    retention_days: int = 7
    custom_destination_id: str | None = None
    additional_destinations: tuple[AdditionalDestinationSpec, ...] = ()
    #: When the schedule was created, relative to the fleet's start: no run before it.
    created_offset: float = -120 * DAY

    def __post_init__(self) -> None:
        if not self.minutes or any(not 0 <= m <= 59 for m in self.minutes):
            raise ValueError(f"schedule {self.id}: minutes must be a non-empty list of 0-59")
        if any(not 0 <= h <= 23 for h in self.hours) or any(not 0 <= d <= 6 for d in self.days):
            raise ValueError(f"schedule {self.id}: hours are 0-23 and days 0-6")
        if self.interval == "hourly" and (self.hours or self.days):
            raise ValueError(f"schedule {self.id}: an hourly schedule has neither hours nor days")
        if self.interval == "daily" and (not self.hours or self.days):
            raise ValueError(f"schedule {self.id}: a daily schedule has hours and no days")
        if self.interval == "weekly" and (not self.hours or not self.days):
            raise ValueError(f"schedule {self.id}: a weekly schedule has hours and days")
        if self.retention_days < 1:
            raise ValueError(f"schedule {self.id}: retention is at least one day")

    @property
    def runs_per_week(self) -> int:
        hours = len(self.hours) if self.hours else 24
        days = len(self.days) if self.days else 7
        return len(self.minutes) * hours * days

    def targets(self, destination_id: str) -> int | None:
        """The retention (days) of this schedule's copies in that destination; None if not a target."""
        if self.custom_destination_id == destination_id:
            return self.retention_days
        for extra in self.additional_destinations:
            if extra.destination_id == destination_id:
                return extra.retention_days or self.retention_days
        return None


@dataclass(frozen=True)
class AddonSpec:
    id: str
    name: str
    project_id: str
    type: str
    schedules: tuple[ScheduleSpec, ...] = ()
    version: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    status: str = "running"
    #: Median duration of one backup, seconds; each run varies around it (log-normal, sigma 0.3).
    typical_duration: float = 300.0
    #: Size of a backup around the start instant, bytes; grows slowly with time.
    typical_size: int = 500_000_000
    #: Probability that one run fails, independently of the others.
    failure_rate: float = 0.03
    behaviour: Behaviour = Behaviour.HEALTHY
    #: Every attempt from this offset on fails (``ALWAYS``: none ever succeeded).
    failing_since: float | None = None
    #: No backup is initiated from this offset on: the schedule's runs are missed.
    stopped_since: float | None = None
    #: Probability that a scheduled run starts no backup at all, independently of the others: single
    #: missed runs, which no "stopped since" shows.
    miss_rate: float = 0.0
    #: The first run at or after this offset never finishes; the runs after it are skipped.
    stuck_since: float | None = None
    #: Backups of runs from this offset on are ``size_drop_factor`` times their usual size.
    size_drop_since: float | None = None
    size_drop_factor: float = 0.05
    #: Without a schedule: one manual backup a day at a pseudo-random time (False: none at all).
    manual_backups: bool = True
    manual_retention_days: int = 14
    #: How many restores happened before the start (each of the latest backup completed before it).
    restores: int = 0
    restore_failure_rate: float = 0.1
    #: The most recent restore failed.
    failed_restore: bool = False
    created_offset: float = -180 * DAY

    @property
    def addon_version(self) -> str:
        return self.version or ADDON_VERSIONS.get(self.type, "1.0.0")


@dataclass(frozen=True)
class ProjectSpec:
    id: str
    name: str
    description: str | None = None


@dataclass(frozen=True)
class DestinationSpec:
    id: str
    name: str
    bucket: str
    description: str | None = None
    region: str = "eu-west-2"
    endpoint: str = "https://s3.eu-west-2.amazonaws.com"
    prefix: str = "northflank"
    usage: Literal["globalBackups", "containerSnapshots"] = "globalBackups"


@dataclass(frozen=True)
class Fleet:
    projects: tuple[ProjectSpec, ...]
    addons: tuple[AddonSpec, ...]
    destinations: tuple[DestinationSpec, ...] = ()
    #: Unix time the behaviours' offsets are relative to (None: not anchored yet).
    start: float | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        project_ids = [p.id for p in self.projects]
        addon_ids = [a.id for a in self.addons]
        destination_ids = [d.id for d in self.destinations]
        for kind, ids in (("project", project_ids), ("addon", addon_ids), ("destination", destination_ids)):
            if len(set(ids)) != len(ids):
                raise ValueError(f"duplicate {kind} ids")
        for addon in self.addons:
            if addon.project_id not in project_ids:
                raise ValueError(f"addon {addon.id} is in unknown project {addon.project_id}")
            for schedule in addon.schedules:
                targets = [schedule.custom_destination_id] + [
                    d.destination_id for d in schedule.additional_destinations
                ]
                for target in targets:
                    if target is not None and target not in destination_ids:
                        raise ValueError(f"schedule {schedule.id} targets unknown destination {target}")

    def anchored(self, start: float) -> Fleet:
        return replace(self, start=start)

    @property
    def anchor(self) -> float:
        if self.start is None:
            raise ValueError("the fleet has no start instant: call fleet.anchored(start) first")
        return self.start

    @cached_property
    def _projects_by_id(self) -> dict[str, ProjectSpec]:
        return {p.id: p for p in self.projects}

    @cached_property
    def _addons_by_id(self) -> dict[str, AddonSpec]:
        return {a.id: a for a in self.addons}

    @cached_property
    def _addons_by_project(self) -> dict[str, tuple[AddonSpec, ...]]:
        grouped: dict[str, list[AddonSpec]] = {p.id: [] for p in self.projects}
        for addon in self.addons:
            grouped[addon.project_id].append(addon)
        return {k: tuple(v) for k, v in grouped.items()}

    @cached_property
    def _destinations_by_id(self) -> dict[str, DestinationSpec]:
        return {d.id: d for d in self.destinations}

    def project(self, project_id: str) -> ProjectSpec | None:
        return self._projects_by_id.get(project_id)

    def addon(self, addon_id: str) -> AddonSpec | None:
        return self._addons_by_id.get(addon_id)

    def addons_of(self, project_id: str) -> tuple[AddonSpec, ...]:
        return self._addons_by_project.get(project_id, ())

    def destination(self, destination_id: str) -> DestinationSpec | None:
        return self._destinations_by_id.get(destination_id)


def schedule_id(seed: int | str, *parts: object) -> str:
    """A schedule id as the API spells one (24 hex digits), stable for the same seed and parts."""
    rng = random.Random(f"schedule-id|{seed}|{'|'.join(map(str, parts))}")
    return f"{rng.getrandbits(96):024x}"


__all__ = [
    "ALWAYS",
    "DAY",
    "HOUR",
    "MINUTE",
    "SIMULATED_ACCESS_KEY",
    "SIMULATED_SECRETS",
    "SIMULATED_SECRET_KEY",
    "AdditionalDestinationSpec",
    "AddonSpec",
    "Behaviour",
    "DestinationSpec",
    "Fleet",
    "ProjectSpec",
    "ScheduleSpec",
    "schedule_id",
]

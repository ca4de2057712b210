"""What the simulated Northflank account contains, and the named scenarios.

A :class:`Fleet` is plain, frozen data: projects, addons (with their backup schedules and behaviour),
backup destinations. What backups exist at a given instant is computed from it by :mod:`.history`.

Times that describe a behaviour (``failing_since``, ``stopped_since``...) are offsets in seconds
relative to the fleet's ``start`` instant (negative = before it). A fleet built without ``start`` is
anchored by the :class:`~exporter.simulator.app.Simulator` to its clock's reading when it is created.

Scenarios (see :func:`scenario`):

``demo``
    3 projects, 12 addons (postgresql, mysql, mongodb, redis) and 2 destinations, with a mix of every
    behaviour: healthy, failing, stale, unscheduled, never completed, stuck, size drop, failed restore,
    missed runs (one run in ten starts no backup).

``e2e``
    Exactly five addons, with no random failures, ids fixed:

    ============================  ==========  ===============  =========================================
    project / addon               type        schedule         behaviour
    ============================  ==========  ===============  =========================================
    ``e2e-project/e2e-healthy``   postgresql  hourly at :05    healthy; dumps to destination ``e2e-s3``;
                                                               one completed restore
    ``e2e-project/e2e-failing``   mysql       hourly at :20    every run since start - 6 h fails
                                                               (completed ones before that)
    ``e2e-other/e2e-stale``       mongodb     hourly at :35    no backup initiated since start - 6 h:
                                                               the schedule's runs are missed
    ``e2e-other/e2e-unscheduled`` redis       none             about one manual backup a day
    ``e2e-other/e2e-stuck``       postgresql  hourly at :50    a backup in progress since the first run
                                                               after start - 8 h
                                                               (it blocks the schedule's later runs)
    ============================  ==========  ===============  =========================================

    Retention is 3 days for the healthy addon (72 backups: more than one page at the default
    ``per_page``), 2 days for the other hourly schedules, 14 days for manual backups. Typical durations: 60 s
    (healthy), 90 s (failing), 120 s (stale), 45 s (unscheduled).

``reference``
    :func:`reference` — the fleet model the benchmarks are measured against, fixed in code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
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


# --------------------------------------------------------------------------------------------------
# Named scenarios
# --------------------------------------------------------------------------------------------------


def _schedule_id(seed: int | str, *parts: object) -> str:
    rng = random.Random(f"schedule-id|{seed}|{'|'.join(map(str, parts))}")
    return f"{rng.getrandbits(96):024x}"


def e2e(seed: int = 0, start: float | None = None) -> Fleet:
    """The end-to-end scenario: four addons, one of each basic behaviour. See the module docstring."""
    del seed  # fixed by design: the e2e tests rely on exact ids and behaviours
    destination = DestinationSpec(
        id="e2e-s3", name="E2E offsite bucket", bucket="e2e-backups", description="For the e2e tests"
    )
    projects = (
        ProjectSpec(id="e2e-project", name="E2E Project", description="Healthy and failing addons"),
        ProjectSpec(id="e2e-other", name="E2E Other", description="Stale and unscheduled addons"),
    )
    addons = (
        AddonSpec(
            id="e2e-healthy",
            name="e2e-healthy",
            project_id="e2e-project",
            type="postgresql",
            schedules=(
                ScheduleSpec(
                    id="65e2e0000000000000000001",
                    interval="hourly",
                    minutes=(5,),
                    retention_days=3,
                    custom_destination_id="e2e-s3",
                ),
            ),
            typical_duration=60.0,
            typical_size=250_000_000,
            failure_rate=0.0,
            behaviour=Behaviour.HEALTHY,
            restores=1,
            restore_failure_rate=0.0,
        ),
        AddonSpec(
            id="e2e-failing",
            name="e2e-failing",
            project_id="e2e-project",
            type="mysql",
            schedules=(
                ScheduleSpec(
                    id="65e2e0000000000000000002", interval="hourly", minutes=(20,), retention_days=2
                ),
            ),
            typical_duration=90.0,
            typical_size=120_000_000,
            failure_rate=0.0,
            behaviour=Behaviour.FAILING,
            failing_since=-6 * HOUR,
        ),
        AddonSpec(
            id="e2e-stale",
            name="e2e-stale",
            project_id="e2e-other",
            type="mongodb",
            schedules=(
                ScheduleSpec(
                    id="65e2e0000000000000000003", interval="hourly", minutes=(35,), retention_days=2
                ),
            ),
            typical_duration=120.0,
            typical_size=800_000_000,
            failure_rate=0.0,
            behaviour=Behaviour.STALE,
            stopped_since=-6 * HOUR,
        ),
        AddonSpec(
            id="e2e-unscheduled",
            name="e2e-unscheduled",
            project_id="e2e-other",
            type="redis",
            typical_duration=45.0,
            typical_size=40_000_000,
            failure_rate=0.0,
            behaviour=Behaviour.UNSCHEDULED,
        ),
        AddonSpec(
            id="e2e-stuck",
            name="e2e-stuck",
            project_id="e2e-other",
            type="postgresql",
            schedules=(
                ScheduleSpec(
                    id="65e2e0000000000000000005", interval="hourly", minutes=(50,), retention_days=2
                ),
            ),
            typical_duration=300.0,
            typical_size=60_000_000,
            failure_rate=0.0,
            behaviour=Behaviour.STUCK,
            stuck_since=-8 * HOUR,
        ),
    )
    return Fleet(projects=projects, addons=addons, destinations=(destination,), start=start, name="e2e")


def demo(seed: int = 0, start: float | None = None) -> Fleet:
    """A small, varied account: every behaviour the exporter must report, for ``--demo`` and for people."""

    def schedule(
        name: str,
        interval: Interval,
        minutes: tuple[int, ...],
        hours: tuple[int, ...] = (),
        days: tuple[int, ...] = (),
        *,
        retention_days: int,
        backup_type: BackupType = "dump",
        compression: Compression = "gz",
        custom_destination_id: str | None = None,
        additional_destinations: tuple[AdditionalDestinationSpec, ...] = (),
    ) -> ScheduleSpec:
        return ScheduleSpec(
            id=_schedule_id(seed, name, interval, backup_type),
            interval=interval,
            minutes=minutes,
            hours=hours,
            days=days,
            backup_type=backup_type,
            compression=compression,
            retention_days=retention_days,
            custom_destination_id=custom_destination_id,
            additional_destinations=additional_destinations,
        )

    projects = (
        ProjectSpec(id="shop-prod", name="Shop (production)", description="The web shop"),
        ProjectSpec(id="analytics", name="Analytics", description="Event pipeline and warehouse"),
        ProjectSpec(id="internal-tools", name="Internal tools"),
    )
    destinations = (
        DestinationSpec(id="offsite-s3", name="Off-site S3", bucket="acme-offsite-backups"),
        DestinationSpec(
            id="archive-s3",
            name="Long-term archive",
            bucket="acme-archive",
            region="eu-central-1",
            endpoint="https://s3.eu-central-1.amazonaws.com",
            prefix="archive",
        ),
    )
    addons = (
        AddonSpec(
            id="shop-postgres",
            name="shop-postgres",
            project_id="shop-prod",
            type="postgresql",
            tags=("prod",),
            schedules=(
                schedule(
                    "shop-postgres",
                    "daily",
                    (30,),
                    (2,),
                    retention_days=14,
                    custom_destination_id="offsite-s3",
                ),
                schedule("shop-postgres", "hourly", (0,), backup_type="snapshot", retention_days=2),
            ),
            typical_duration=8 * MINUTE,
            typical_size=6_400_000_000,
            restores=2,
        ),
        AddonSpec(
            id="shop-redis",
            name="shop-redis",
            project_id="shop-prod",
            type="redis",
            schedules=(schedule("shop-redis", "hourly", (10,), retention_days=1),),
            typical_duration=40.0,
            typical_size=90_000_000,
            # About two runs a day start no backup: single misses, which the next run does not hide.
            behaviour=Behaviour.MISSED_RUNS,
            miss_rate=0.1,
        ),
        AddonSpec(
            id="orders-mysql",
            name="orders-mysql",
            project_id="shop-prod",
            type="mysql",
            tags=("prod",),
            schedules=(
                schedule("orders-mysql", "daily", (15,), (1, 13), retention_days=7, compression="zstd"),
            ),
            typical_duration=6 * MINUTE,
            typical_size=2_100_000_000,
            behaviour=Behaviour.FAILING,
            failing_since=-30 * HOUR,
        ),
        AddonSpec(
            id="catalog-mongo",
            name="catalog-mongo",
            project_id="shop-prod",
            type="mongodb",
            schedules=(schedule("catalog-mongo", "daily", (45,), (0, 6, 12, 18), retention_days=7),),
            typical_duration=4 * MINUTE,
            typical_size=1_300_000_000,
            behaviour=Behaviour.SIZE_DROP,
            size_drop_since=-13 * HOUR,
        ),
        AddonSpec(
            id="events-postgres",
            name="events-postgres",
            project_id="analytics",
            type="postgresql",
            schedules=(
                schedule("events-postgres", "daily", (0,), (4,), retention_days=7),
                schedule(
                    "events-postgres",
                    "weekly",
                    (0,),
                    (5,),
                    (6,),
                    backup_type="snapshot",
                    retention_days=56,
                    additional_destinations=(AdditionalDestinationSpec("archive-s3", 120),),
                ),
            ),
            typical_duration=25 * MINUTE,
            typical_size=38_000_000_000,
            restores=1,
        ),
        AddonSpec(
            id="warehouse-mysql",
            name="warehouse-mysql",
            project_id="analytics",
            type="mysql",
            schedules=(schedule("warehouse-mysql", "hourly", (50,), retention_days=2),),
            typical_duration=12 * MINUTE,
            typical_size=9_000_000_000,
            behaviour=Behaviour.STUCK,
            stuck_since=-3 * HOUR,
        ),
        AddonSpec(
            id="cache-redis",
            name="cache-redis",
            project_id="analytics",
            type="redis",
            typical_duration=30.0,
            typical_size=25_000_000,
            behaviour=Behaviour.UNSCHEDULED,
        ),
        AddonSpec(
            id="metrics-mongo",
            name="metrics-mongo",
            project_id="analytics",
            type="mongodb",
            schedules=(schedule("metrics-mongo", "daily", (20,), (3,), retention_days=14),),
            typical_duration=9 * MINUTE,
            typical_size=4_700_000_000,
            behaviour=Behaviour.STALE,
            stopped_since=-3 * DAY,
        ),
        AddonSpec(
            id="wiki-postgres",
            name="wiki-postgres",
            project_id="internal-tools",
            type="postgresql",
            schedules=(schedule("wiki-postgres", "daily", (5,), (22,), retention_days=30),),
            typical_duration=2 * MINUTE,
            typical_size=310_000_000,
            behaviour=Behaviour.FAILED_RESTORE,
            restores=2,
            failed_restore=True,
        ),
        AddonSpec(
            id="auth-mysql",
            name="auth-mysql",
            project_id="internal-tools",
            type="mysql",
            schedules=(schedule("auth-mysql", "daily", (40,), (5,), retention_days=7),),
            typical_duration=3 * MINUTE,
            typical_size=150_000_000,
            behaviour=Behaviour.NEVER_COMPLETED,
            failing_since=ALWAYS,
        ),
        AddonSpec(
            id="sessions-redis",
            name="sessions-redis",
            project_id="internal-tools",
            type="redis",
            schedules=(schedule("sessions-redis", "hourly", (15, 45), retention_days=1),),
            typical_duration=20.0,
            typical_size=12_000_000,
        ),
        AddonSpec(
            id="audit-mongo",
            name="audit-mongo",
            project_id="internal-tools",
            type="mongodb",
            schedules=(
                schedule(
                    "audit-mongo",
                    "weekly",
                    (30,),
                    (23,),
                    (0,),
                    backup_type="snapshot",
                    retention_days=28,
                    additional_destinations=(AdditionalDestinationSpec("archive-s3"),),
                ),
            ),
            typical_duration=15 * MINUTE,
            typical_size=3_300_000_000,
            restores=1,
        ),
    )
    # No random failures: what the demo shows is exactly the behaviours named above.
    quiet = tuple(replace(a, failure_rate=0.0, restore_failure_rate=0.0) for a in addons)
    return Fleet(projects=projects, addons=quiet, destinations=destinations, start=start, name="demo")


#: The reference fleet model. Changing any of these changes what the benchmarks measure.
REFERENCE_MIX: Mapping[str, float] = {"hourly": 0.10, "daily": 0.75, "weekly": 0.10, "unscheduled": 0.05}
REFERENCE_MEDIAN_DURATION = 5 * MINUTE
REFERENCE_DURATION_SPREAD = 0.9  # sigma of the log-normal: a spread factor of e^0.9
REFERENCE_DURATION_BOUNDS = (1 * MINUTE, 60 * MINUTE)
REFERENCE_FAILURE_RATE = 0.03
#: Share of scheduled runs that start no backup at all (single missed runs).
REFERENCE_MISS_RATE = 0.01
REFERENCE_OWN_PROJECT_EVERY = 20
REFERENCE_ADDONS_PER_SHARED_PROJECT = 40
REFERENCE_MAX_SHARED_PROJECTS = 5
REFERENCE_RETENTION_DAYS: Mapping[str, int] = {"hourly": 2, "daily": 7, "weekly": 28}
REFERENCE_TYPES: tuple[tuple[str, float], ...] = (
    ("postgresql", 0.5),
    ("mysql", 0.2),
    ("mongodb", 0.15),
    ("redis", 0.15),
)


def _exact_counts(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split n by the weights, largest remainder first, so the proportions are as exact as n allows."""
    raw = {k: n * w / sum(weights.values()) for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in raw.items()}
    by_remainder = sorted(raw, key=lambda k: (-(raw[k] - counts[k]), list(weights).index(k)))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def generate_fleet(
    seed: int,
    n_addons: int,
    *,
    start: float | None = None,
    mix: Mapping[str, float] = REFERENCE_MIX,
    median_duration: float = REFERENCE_MEDIAN_DURATION,
    duration_spread: float = REFERENCE_DURATION_SPREAD,
    duration_bounds: tuple[float, float] = REFERENCE_DURATION_BOUNDS,
    failure_rate: float = REFERENCE_FAILURE_RATE,
    miss_rate: float = REFERENCE_MISS_RATE,
    own_project_every: int = REFERENCE_OWN_PROJECT_EVERY,
    addons_per_shared_project: int = REFERENCE_ADDONS_PER_SHARED_PROJECT,
    max_shared_projects: int = REFERENCE_MAX_SHARED_PROJECTS,
    restores_per_addon: int = 1,
    name: str = "generated",
) -> Fleet:
    """A fleet of healthy addons drawn from a seeded generator (a local RNG: no global random state).

    ``mix`` gives the share of addons per kind (``hourly``, ``daily``, ``weekly``, ``unscheduled``),
    applied exactly (largest remainder), then shuffled. Hourly addons run once or twice an hour.
    ``miss_rate`` of the scheduled runs start no backup at all.
    Each addon's typical backup duration is log-normal (median ``median_duration``, sigma
    ``duration_spread``) clamped to ``duration_bounds``. One addon in ``own_project_every`` is alone in
    its project; the others share ``ceil(rest / addons_per_shared_project)`` (at most
    ``max_shared_projects``) projects.
    """
    if n_addons < 0:
        raise ValueError("n_addons must be >= 0")
    rng = random.Random(f"fleet|{seed}|{n_addons}")
    counts = _exact_counts(n_addons, mix)
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)

    own = set(rng.sample(range(n_addons), n_addons // own_project_every)) if own_project_every else set()
    n_shared = max(1, min(max_shared_projects, math.ceil((n_addons - len(own)) / addons_per_shared_project)))
    projects: list[ProjectSpec] = [
        ProjectSpec(id=f"shared-{k + 1}", name=f"Shared project {k + 1}") for k in range(n_shared)
    ]
    destination = DestinationSpec(id="fleet-s3", name="Fleet off-site bucket", bucket=f"fleet-{seed}")
    type_names = [t for t, _ in REFERENCE_TYPES]
    type_weights = [w for _, w in REFERENCE_TYPES]
    low, high = duration_bounds

    addons: list[AddonSpec] = []
    for i, kind in enumerate(kinds):
        addon_id = f"addon-{i + 1:05d}"
        if i in own:
            project_id = f"solo-{i + 1:05d}"
            projects.append(ProjectSpec(id=project_id, name=f"Solo project {i + 1}"))
        else:
            project_id = f"shared-{rng.randrange(n_shared) + 1}"
        addon_type = rng.choices(type_names, type_weights)[0]
        duration = median_duration * math.exp(rng.gauss(0.0, duration_spread))
        duration = min(high, max(low, duration))
        # Sizes: log-uniform between 20 MB and 20 GB.
        size = int(math.exp(rng.uniform(math.log(20e6), math.log(20e9))))
        backup_type: BackupType = "snapshot" if rng.random() < 0.2 else "dump"
        schedules: tuple[ScheduleSpec, ...] = ()
        if kind != "unscheduled":
            interval: Interval = "hourly" if kind == "hourly" else "daily" if kind == "daily" else "weekly"
            minutes: tuple[int, ...]
            if interval == "hourly" and rng.random() < 0.5:
                first = rng.randrange(30)
                minutes = (first, first + 30)
            else:
                minutes = (rng.randrange(60),)
            hours = () if interval == "hourly" else (rng.randrange(24),)
            days = (rng.randrange(7),) if interval == "weekly" else ()
            target = destination.id if backup_type == "dump" and rng.random() < 0.05 else None
            schedules = (
                ScheduleSpec(
                    id=_schedule_id(seed, addon_id, interval),
                    interval=interval,
                    minutes=minutes,
                    hours=hours,
                    days=days,
                    backup_type=backup_type,
                    compression="zstd" if rng.random() < 0.3 else "gz",
                    retention_days=REFERENCE_RETENTION_DAYS[interval],
                    custom_destination_id=target,
                ),
            )
        addons.append(
            AddonSpec(
                id=addon_id,
                name=f"{addon_type}-{i + 1}",
                project_id=project_id,
                type=addon_type,
                schedules=schedules,
                typical_duration=round(duration, 3),
                typical_size=size,
                failure_rate=failure_rate,
                miss_rate=miss_rate,
                behaviour=Behaviour.HEALTHY if schedules else Behaviour.UNSCHEDULED,
                restores=rng.randrange(restores_per_addon + 1),
            )
        )
    return Fleet(
        projects=tuple(projects), addons=tuple(addons), destinations=(destination,), start=start, name=name
    )


def reference(n_addons: int, seed: int = 0, start: float | None = None) -> Fleet:
    """The reference fleet model, fixed in code: the ``REFERENCE_*`` constants and :func:`generate_fleet`.

    10% of addons hourly (once or twice an hour), 75% daily, 10% weekly, 5% unscheduled with about one
    manual backup a day; typical duration log-normal, median 5 min, spread factor e^0.9, clamped to
    1-60 min; each run varies around it (log-normal, sigma 0.3) and starts 0-2 min after its
    scheduled minute; 3% of runs fail and 1% start no backup at all; one addon in 20 in its own
    project, the rest share a few.
    """
    return generate_fleet(seed, n_addons, start=start, name="reference")


ScenarioFactory = Callable[[int, "float | None"], Fleet]

#: Scenario name -> factory(seed, start). ``reference`` here has 100 addons; use :func:`scenario` for more.
SCENARIOS: Mapping[str, ScenarioFactory] = {
    "demo": demo,
    "e2e": e2e,
    "reference": lambda seed, start: reference(100, seed, start),
}


def scenario(name: str, seed: int = 0, start: float | None = None, *, n_addons: int | None = None) -> Fleet:
    """The named scenario's fleet. ``n_addons`` sizes ``reference`` (default 100); others ignore it."""
    if name == "reference":
        return reference(100 if n_addons is None else n_addons, seed, start)
    try:
        factory = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None
    return factory(seed, start)


__all__ = [
    "ALWAYS",
    "DAY",
    "HOUR",
    "MINUTE",
    "SCENARIOS",
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
    "demo",
    "e2e",
    "generate_fleet",
    "reference",
    "scenario",
]

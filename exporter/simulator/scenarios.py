"""The named scenarios, the fleets people and tests run the simulator with (see :func:`scenario`):

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
    :func:`~.reference_fleet.reference` — the fleet model the benchmarks are measured against, fixed in code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from .fleet import (
    ALWAYS,
    DAY,
    HOUR,
    MINUTE,
    AdditionalDestinationSpec,
    AddonSpec,
    BackupType,
    Behaviour,
    Compression,
    DestinationSpec,
    Fleet,
    Interval,
    ProjectSpec,
    ScheduleSpec,
    schedule_id,
)
from .reference_fleet import reference


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
            id=schedule_id(seed, name, interval, backup_type),
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


__all__ = ["SCENARIOS", "ScenarioFactory", "demo", "e2e", "scenario"]

"""The reference fleet model the benchmarks are measured against, fixed in code, and the seeded
generator of healthy fleets of any size it is made with."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from .fleet import (
    MINUTE,
    AddonSpec,
    BackupType,
    Behaviour,
    DestinationSpec,
    Fleet,
    Interval,
    ProjectSpec,
    ScheduleSpec,
    schedule_id,
)

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
                    id=schedule_id(seed, addon_id, interval),
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


__all__ = [
    "REFERENCE_ADDONS_PER_SHARED_PROJECT",
    "REFERENCE_DURATION_BOUNDS",
    "REFERENCE_DURATION_SPREAD",
    "REFERENCE_FAILURE_RATE",
    "REFERENCE_MAX_SHARED_PROJECTS",
    "REFERENCE_MEDIAN_DURATION",
    "REFERENCE_MISS_RATE",
    "REFERENCE_MIX",
    "REFERENCE_OWN_PROJECT_EVERY",
    "REFERENCE_RETENTION_DAYS",
    "REFERENCE_TYPES",
    "generate_fleet",
    "reference",
]

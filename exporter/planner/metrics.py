"""What the planner exposes, computed at scrape time from its plans and the snapshot. The families are
declared in :mod:`exporter.metrics` with every other one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.clock import Clock
from exporter.exposition import format_value, label_set
from exporter.metrics import (
    INITIAL_READ_RATIO,
    NEXT_REFRESH,
    PLANNED_INTERVAL,
    PLANNED_REFRESHES,
    STALEST_REFRESH_AGE,
)
from exporter.planner.loop import PlanningLoop
from exporter.planner.policy import Target
from exporter.resources import ADDON_RESOURCES, Resource
from exporter.snapshot import Snapshot


class PlannerCollector(Collector):
    """The planner's account-wide metrics, computed at scrape time from its plans and the snapshot. The
    per-resource next refresh times are rendered by :class:`NextRefreshRenderer`."""

    def __init__(self, planner: PlanningLoop, snapshot: Callable[[], Snapshot], *, clock: Clock) -> None:
        self._planner = planner
        self._snapshot = snapshot
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        now = self._clock.now()
        planner, addons = self._planner, self._snapshot().addons
        stalest: float | None = None
        for key in planner.addon_keys():
            addon = addons.get(key)
            at = addon.backups.at if addon is not None and addon.backups is not None else None
            if at is None:
                at = planner.known_since(Target(Resource.BACKUPS, *key))
            if at is not None and (stalest is None or at < stalest):
                stalest = at
        age = GaugeMetricFamily(STALEST_REFRESH_AGE.name, STALEST_REFRESH_AGE.help)
        if stalest is not None:
            age.add_metric([], max(0.0, now - stalest))
        yield age
        started = CounterMetricFamily(
            PLANNED_REFRESHES.name, PLANNED_REFRESHES.help, labels=PLANNED_REFRESHES.labels
        )
        for tier, count in planner.started().items():
            started.add_metric([tier.label], count)
        yield started
        interval = GaugeMetricFamily(
            PLANNED_INTERVAL.name, PLANNED_INTERVAL.help, labels=PLANNED_INTERVAL.labels
        )
        cadence = planner.cadence
        for name, seconds in (
            ("floor", cadence.floor),
            ("floor_unscheduled", cadence.floor_unscheduled),
            ("discovery", cadence.discovery),
            ("schedules", cadence.schedules),
            ("restores", cadence.restores),
        ):
            interval.add_metric([name], seconds)
        pushed_floor = planner.pushed_floor()
        if pushed_floor is not None:  # addons the webhook covers are floored this far apart
            interval.add_metric(["floor_pushed"], pushed_floor)
        yield interval
        yield initial_read_ratio(self._snapshot())


#: The order of the next refresh samples within a project and addon: the order they have always had
#: (alphabetical by the names the targets had before the resources had one vocabulary), so that the
#: exposition does not churn. Sample order carries no meaning.
_SAMPLE_ORDER: Mapping[Resource, int] = {
    Resource.ADDONS: 0,
    Resource.BACKUPS: 1,
    Resource.BACKUP_DESTINATIONS: 2,
    Resource.PROJECTS: 3,
    Resource.RESTORES: 4,
    Resource.SCHEDULES: 5,
}


def _sample_prefix(target: Target) -> str:
    labels = label_set(NEXT_REFRESH.labels, (target.project, target.addon, target.resource))
    return f"{NEXT_REFRESH.name}{{{labels}}} "


class NextRefreshRenderer:
    """The ``northflank_exporter_next_refresh_timestamp_seconds`` family in the text format: one sample per
    target, rendered directly (label sets escaped once per target, kept until a target comes or goes),
    since a large fleet has thousands of them and prometheus_client's exposition costs ~10 µs a sample."""

    def __init__(self, planner: PlanningLoop) -> None:
        self._planner = planner
        self._version: int | None = None
        self._prefixes: list[tuple[Target, str]] = []

    def render(self) -> str:
        planner = self._planner
        if planner.targets_version != self._version:
            self._version = planner.targets_version
            targets = sorted(
                (target for target, _ in planner.plans()),
                key=lambda t: (_SAMPLE_ORDER[t.resource], t.project, t.addon),
            )
            self._prefixes = [(t, _sample_prefix(t)) for t in targets]
        samples = []
        for target, prefix in self._prefixes:
            plan = planner.plan_of(target)
            if plan is not None:
                samples.append(f"{prefix}{format_value(plan.due)}\n")
        return NEXT_REFRESH.header + "".join(samples)


def initial_read_ratio(snapshot: Snapshot) -> GaugeMetricFamily:
    """``northflank_exporter_initial_read_ratio``: of the addons discovery found, the share whose
    listing of each resource has been read successfully at least once. 0 before projects were ever
    listed (nothing is known), 1 for a discovered fleet without addons (nothing is missing)."""
    family = GaugeMetricFamily(
        INITIAL_READ_RATIO.name, INITIAL_READ_RATIO.help, labels=INITIAL_READ_RATIO.labels
    )
    addons = snapshot.addons.values()
    for resource in ADDON_RESOURCES:
        if snapshot.projects_at is None:
            ratio = 0.0
        elif not addons:
            ratio = 1.0
        else:
            ratio = sum(1 for a in addons if a.refreshed_at(resource) is not None) / len(addons)
        family.add_metric([resource], ratio)
    return family


__all__ = ["NEXT_REFRESH", "NextRefreshRenderer", "PlannerCollector", "initial_read_ratio"]

"""The planner as the exporter runs it: the planning loop, and the metrics it hands over through the
scheduler protocol (:class:`~exporter.poller.RefreshScheduler`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector

from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.planner.loop import PlanningLoop
from exporter.planner.metrics import NextRefreshRenderer, PlannerCollector
from exporter.planner.policy import PlannerSettings
from exporter.snapshot import Snapshot

if TYPE_CHECKING:  # the planner reads Settings; it needs nothing else of the flags' module
    from exporter.config import Settings


def planner_settings(settings: Settings) -> PlannerSettings:
    """The planner's knobs, from the exporter's settings: the one place they are copied."""
    return PlannerSettings(
        max_staleness=settings.max_staleness,
        discovery_interval=settings.discovery_interval,
        schedules_interval=settings.schedules_interval,
        restores_interval=settings.restores_interval,
        concurrency=settings.concurrency,
    )


class Planner(PlanningLoop):
    """A ``RefreshScheduler`` that plans every refresh and spends the request budget by priority."""

    def __init__(
        self, budget: RequestBudget, *, clock: Clock, settings: PlannerSettings | None = None
    ) -> None:
        super().__init__(budget, clock=clock, settings=settings)
        self._metrics_clock = clock
        self._next_refresh = NextRefreshRenderer(self)

    @classmethod
    def from_settings(cls, settings: Settings, *, budget: RequestBudget, clock: Clock) -> Planner:
        """The planner the flags ask for."""
        return cls(budget, clock=clock, settings=planner_settings(settings))

    def collector(self, snapshot: Callable[[], Snapshot]) -> Collector:
        return PlannerCollector(self, snapshot, clock=self._metrics_clock)

    def render_extra(self) -> bytes:
        return self.render_next_refresh().encode()

    def render_next_refresh(self) -> str:
        """When each target is next read, in the text format (see :class:`NextRefreshRenderer`)."""
        return self._next_refresh.render()


__all__ = ["Planner", "planner_settings"]

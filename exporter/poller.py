"""Reads the API and swaps new snapshots in: fetch -> validate (in the client) -> summarise -> swap.

``Refresher`` knows how to refresh each resource and what a failure means for it; *when* to refresh is
decided by a ``RefreshScheduler`` (the one seam a budget-aware planner replaces). Every refresh applies
its result to the current snapshot as soon as it arrives, so one slow or failing addon delays nothing
else, and a failure leaves the last good data (and its refresh time) in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter

from exporter.clock import Clock
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import NorthflankError
from exporter.northflank.models import Project
from exporter.snapshot import (
    ADDON_RESOURCES,
    AddonKey,
    AddonResource,
    Snapshot,
    SnapshotStore,
    summarize_backups,
    summarize_destination_backups,
    summarize_restores,
    summarize_schedules,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Resources whose failures are counted, as the ``resource`` label of the error counter.
RESOURCES = (
    "projects",
    "addons",
    "backups",
    "schedules",
    "restores",
    "backup_destinations",
    "destination_backups",
)


class FaultLog:
    """One log line per class of fault (resource, reason), not one per request or per addon.

    A class is logged at WARNING when it first appears and again at most once per ``repeat_seconds``
    while it persists; every occurrence is logged at DEBUG. The counter says how many there were.
    """

    def __init__(self, clock: Clock, repeat_seconds: float = 3600.0) -> None:
        self._clock = clock
        self._repeat = repeat_seconds
        self._last_logged: dict[tuple[str, str], float] = {}

    def fault(self, resource: str, subject: str, error: NorthflankError) -> None:
        key = (resource, error.reason)
        now = self._clock.now()
        last = self._last_logged.get(key)
        if last is None or now - last >= self._repeat:
            self._last_logged[key] = now
            log.warning(
                "refreshing %s failed (%s) for %s: %s; keeping the last good data; "
                "further %s failures of %s are logged at debug level",
                resource,
                error.reason,
                subject or "the account",
                error,
                error.reason,
                resource,
            )
        else:
            log.debug("refreshing %s failed (%s) for %s: %s", resource, error.reason, subject, error)

    def recovered(self, resource: str) -> None:
        for key in [k for k in self._last_logged if k[0] == resource]:
            del self._last_logged[key]
            log.info("refreshing %s works again after %s failures", resource, key[1])


class Refresher:
    """Refreshes one resource at a time into the snapshot store."""

    def __init__(
        self,
        client: NorthflankClient,
        store: SnapshotStore,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        teams: Sequence[str] = (),
        concurrency: int = 4,
    ) -> None:
        self._client = client
        self._store = store
        self._clock = clock
        self._teams: tuple[str | None, ...] = tuple(teams) or (None,)
        self._limit = asyncio.Semaphore(concurrency)
        self._faults = FaultLog(clock)
        self._errors = Counter(
            "northflank_exporter_refresh_errors",
            "Failed refreshes of a resource from the Northflank API, by resource and reason. The "
            "resource keeps its last good data meanwhile.",
            ["resource", "reason"],
            registry=registry,
        )
        self._failing: set[str] = set()

    @property
    def store(self) -> SnapshotStore:
        return self._store

    async def _read(self, resource: str, subject: str, call: Callable[[], Awaitable[T]]) -> T | None:
        async with self._limit:
            try:
                result = await call()
            except NorthflankError as error:
                self._errors.labels(resource, error.reason).inc()
                self._faults.fault(resource, subject, error)
                self._failing.add(resource)
                return None
        if resource in self._failing:
            self._failing.discard(resource)
            self._faults.recovered(resource)
        return result

    async def refresh_projects(self) -> bool:
        """Discovery. Returns whether it succeeded; ``northflank_up`` follows it."""
        found: list[tuple[str | None, Project]] = []
        for team in self._teams:
            listing = partial(self._client.list_projects, team=team)
            projects = await self._read("projects", team or "", listing)
            if projects is None:
                self._store.update(Snapshot.with_discovery_failed)
                return False
            found.extend((team, p) for p in projects)
        at = self._clock.now()
        self._store.update(lambda s: s.with_projects(found, at))
        return True

    async def refresh_project_addons(self, project_id: str) -> None:
        project = self._store.current.projects.get(project_id)
        if project is None:
            return
        addons = await self._read(
            "addons", project_id, lambda: self._client.list_addons(project_id, team=project.team)
        )
        if addons is not None:
            at = self._clock.now()
            self._store.update(lambda s: s.with_project_addons(project_id, addons, at))

    async def refresh_addon(self, key: AddonKey, resource: AddonResource) -> None:
        project_id, addon_id = key
        project = self._store.current.projects.get(project_id)
        if project is None or key not in self._store.current.addons:
            return
        subject = f"{project_id}/{addon_id}"
        team = project.team
        if resource == "backups":
            backups = await self._read(
                resource, subject, lambda: self._client.list_backups(project_id, addon_id, team=team)
            )
            if backups is not None:
                summary, at = summarize_backups(backups), self._clock.now()
                self._store.update(lambda s: s.with_addon_backups(key, summary, at))
        elif resource == "schedules":
            schedules = await self._read(
                resource, subject, lambda: self._client.list_backup_schedules(project_id, addon_id, team=team)
            )
            if schedules is not None:
                schedule_summary, at = summarize_schedules(schedules), self._clock.now()
                self._store.update(lambda s: s.with_addon_schedules(key, schedule_summary, at))
        else:
            restores = await self._read(
                resource, subject, lambda: self._client.list_addon_restores(project_id, addon_id, team=team)
            )
            if restores is not None:
                restore_summary, at = summarize_restores(restores), self._clock.now()
                self._store.update(lambda s: s.with_addon_restores(key, restore_summary, at))

    async def refresh_destinations(self) -> None:
        destinations = await self._read(
            "backup_destinations", "", lambda: self._client.list_backup_destinations()
        )
        if destinations is not None:
            at = self._clock.now()
            self._store.update(lambda s: s.with_destinations(destinations, at))
        await asyncio.gather(*(self.refresh_destination_backups(d) for d in self._store.current.destinations))

    async def refresh_destination_backups(self, destination_id: str) -> None:
        backups = await self._read(
            "destination_backups",
            destination_id,
            lambda: self._client.list_destination_backups(destination_id),
        )
        if backups is not None:
            summary, at = summarize_destination_backups(backups), self._clock.now()
            self._store.update(lambda s: s.with_destination_backups(destination_id, summary, at))

    async def refresh_all(self) -> None:
        """One complete pass over everything, then the snapshot is marked ready."""
        if await self.refresh_projects():
            await asyncio.gather(*(self.refresh_project_addons(p) for p in self._store.current.projects))
        await asyncio.gather(
            self.refresh_destinations(),
            *(
                self.refresh_addon(key, resource)
                for key in self._store.current.addons
                for resource in ADDON_RESOURCES
            ),
        )
        self._store.update(Snapshot.with_ready)


class RefreshScheduler(Protocol):
    """Decides when to refresh what. The only seam between the refresh logic and its timing."""

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None: ...


class FixedIntervalScheduler:
    """A complete refresh every ``interval`` seconds, never two at once; a slow pass delays the next."""

    def __init__(self, interval: float) -> None:
        self._interval = interval

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await refresher.refresh_all()
            except Exception:
                # A bug in one pass must not end the polling: the next pass may well succeed.
                log.exception("refresh pass failed unexpectedly; keeping the last good data")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                continue

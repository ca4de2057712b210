"""Reads the API and swaps new snapshots in: fetch -> validate (in the client) -> summarise -> swap.

``Refresher`` knows how to refresh each resource and what a failure means for it; *when* to refresh is
decided by a ``RefreshScheduler``: the budget-aware :class:`~exporter.planner.Planner`, or the
deprecated :class:`FixedIntervalScheduler`. Every refresh applies
its result to the current snapshot as soon as it arrives, so one slow or failing addon delays nothing
else, and a failure leaves the last good data (and its refresh time) in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter

from exporter.clock import Clock
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import REASONS, AuthError, NorthflankError, RateLimitedError
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
    while it persists; every occurrence is logged at DEBUG (the counter says how many there were). A class
    has ended when every subject (addon, project...) that had it has been read successfully again: only
    then is the recovery logged, and a later occurrence is news again.
    """

    def __init__(self, clock: Clock, repeat_seconds: float = 3600.0) -> None:
        self._clock = clock
        self._repeat = repeat_seconds
        self._last_logged: dict[tuple[str, str], float] = {}
        self._subjects: dict[tuple[str, str], set[str]] = {}

    def fault(self, resource: str, subject: str, error: NorthflankError) -> None:
        key = (resource, error.reason)
        self._subjects.setdefault(key, set()).add(subject)
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

    def recovered(self, resource: str, subject: str) -> None:
        for key in [k for k in self._subjects if k[0] == resource]:
            subjects = self._subjects[key]
            subjects.discard(subject)
            if not subjects:
                del self._subjects[key]
                self._last_logged.pop(key, None)
                log.info("refreshing %s works again after %s failures", resource, key[1])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one refresh gave, for a scheduler deciding what to do next."""

    #: The error that ended the refresh; None when it succeeded.
    error: NorthflankError | None = None
    #: The thing to refresh is no longer in the snapshot (its project or addon disappeared): nothing
    #: was read, and there is nothing left to refresh.
    gone: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.gone


OK = Outcome()
GONE = Outcome(gone=True)


class Refresher:
    """Refreshes one resource at a time into the snapshot store. Each ``refresh_*`` returns an
    :class:`Outcome`; the errors themselves are counted and logged here."""

    def __init__(
        self,
        client: NorthflankClient,
        store: SnapshotStore,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        teams: Sequence[str] = (),
        concurrency: int = 4,
        on_rate_limited: Callable[[float | None], None] | None = None,
    ) -> None:
        self._client = client
        #: Told when a listing is given up on a 429 (with when the API said to come back): the request
        #: budget then holds every other request too.
        self._on_rate_limited = on_rate_limited
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
        # Every (resource, reason) from the start, at 0: rate() and increase() need a series that
        # exists before the first failure, or the first failure is invisible to them.
        for resource in RESOURCES:
            for reason in REASONS:
                self._errors.labels(resource, reason)

    @property
    def store(self) -> SnapshotStore:
        return self._store

    async def _read(
        self, resource: str, subject: str, call: Callable[[], Awaitable[T]]
    ) -> T | NorthflankError:
        async with self._limit:
            try:
                result = await call()
            except NorthflankError as error:
                if isinstance(error, RateLimitedError) and self._on_rate_limited is not None:
                    self._on_rate_limited(error.retry_at)
                self._errors.labels(resource, error.reason).inc()
                self._faults.fault(resource, subject, error)
                return error
        self._faults.recovered(resource, subject)
        return result

    async def refresh_projects(self) -> Outcome:
        """Discovery; ``northflank_up`` follows whether it succeeded."""
        found: list[tuple[str | None, Project]] = []
        for team in self._teams:
            listing = partial(self._client.list_projects, team=team)
            projects = await self._read("projects", team or "", listing)
            if isinstance(projects, NorthflankError):
                self._store.update(Snapshot.with_discovery_failed)
                return Outcome(projects)
            found.extend((team, p) for p in projects)
        at = self._clock.now()
        self._store.update(lambda s: s.with_projects(found, at))
        return OK

    async def refresh_project_addons(self, project_id: str) -> Outcome:
        project = self._store.current.projects.get(project_id)
        if project is None:
            return GONE
        addons = await self._read(
            "addons", project_id, lambda: self._client.list_addons(project_id, team=project.team)
        )
        if isinstance(addons, NorthflankError):
            return Outcome(addons)
        at = self._clock.now()
        self._store.update(lambda s: s.with_project_addons(project_id, addons, at))
        return OK

    async def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Outcome:
        project_id, addon_id = key
        project = self._store.current.projects.get(project_id)
        if project is None or key not in self._store.current.addons:
            return GONE
        subject = f"{project_id}/{addon_id}"
        team = project.team
        if resource == "backups":
            backups = await self._read(
                resource, subject, lambda: self._client.list_backups(project_id, addon_id, team=team)
            )
            if isinstance(backups, NorthflankError):
                return Outcome(backups)
            summary, at = summarize_backups(backups), self._clock.now()
            self._store.update(lambda s: s.with_addon_backups(key, summary, at))
        elif resource == "schedules":
            schedules = await self._read(
                resource, subject, lambda: self._client.list_backup_schedules(project_id, addon_id, team=team)
            )
            if isinstance(schedules, NorthflankError):
                return Outcome(schedules)
            schedule_summary, at = summarize_schedules(schedules), self._clock.now()
            self._store.update(lambda s: s.with_addon_schedules(key, schedule_summary, at))
        else:
            restores = await self._read(
                resource, subject, lambda: self._client.list_addon_restores(project_id, addon_id, team=team)
            )
            if isinstance(restores, NorthflankError):
                return Outcome(restores)
            restore_summary, at = summarize_restores(restores), self._clock.now()
            self._store.update(lambda s: s.with_addon_restores(key, restore_summary, at))
        return OK

    async def refresh_destinations(self) -> Outcome:
        """The destination listing, then the backups of every destination it lists. The outcome is the
        listing's: a destination whose backups fail keeps its last good data (and is counted)."""
        destinations = await self._read(
            "backup_destinations", "", lambda: self._client.list_backup_destinations()
        )
        outcome = OK
        if isinstance(destinations, NorthflankError):
            outcome = Outcome(destinations)
        else:
            at = self._clock.now()
            self._store.update(lambda s: s.with_destinations(destinations, at))
        await asyncio.gather(*(self.refresh_destination_backups(d) for d in self._store.current.destinations))
        return outcome

    async def refresh_destination_backups(self, destination_id: str) -> Outcome:
        backups = await self._read(
            "destination_backups",
            destination_id,
            lambda: self._client.list_destination_backups(destination_id),
        )
        if isinstance(backups, NorthflankError):
            return Outcome(backups)
        summary, at = summarize_destination_backups(backups), self._clock.now()
        self._store.update(lambda s: s.with_destination_backups(destination_id, summary, at))
        return OK

    async def refresh_all(self) -> None:
        """One complete pass over everything, then the snapshot is marked ready."""
        discovery = await self.refresh_projects()
        if isinstance(discovery.error, AuthError):
            # The token is rejected: every other listing would be refused too. One request says it.
            self._store.update(Snapshot.with_ready)
            return
        if discovery.ok:
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
    """A complete refresh every ``interval`` seconds, never two at once; a slow pass delays the next.

    DEPRECATED (``--northflank.refresh-interval``): it reads everything whether or not anything can have
    changed. The request budget still holds it (a pass that does not fit waits), but the planner gets
    fresher data for a fraction of the requests.
    """

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

"""Reads the API and swaps new snapshots in: fetch -> validate (in the client) -> summarise -> swap.

``Refresher`` knows how to refresh each resource and what a failure means for it; *when* to refresh is
decided by a ``RefreshScheduler``: the budget-aware :class:`~exporter.planner.Planner`. Every refresh
applies its result to the current snapshot as soon as it arrives, so one slow or failing addon delays nothing
else, and a failure leaves the last good data (and its refresh time) in place.

No failure goes unclassified: whatever a read or a summary raises is counted by resource and reason
(``unexpected`` for anything outside the client's taxonomy) and logged once per fault class, and which
resources fail for every subject is kept in the snapshot for ``northflank_up`` (:class:`ResourceHealth`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.registry import Collector

from exporter import defaults
from exporter.clock import Clock
from exporter.first_read import FirstCompleteRead
from exporter.metrics import REFRESH_ERRORS
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import REASONS, AuthError, NorthflankError, RateLimitedError
from exporter.northflank.models import (
    Addon,
    BackupDestination,
    DestinationBackup,
    Project,
)
from exporter.resources import ADDON_RESOURCES, RESOURCES, Resource
from exporter.snapshot import (
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
S = TypeVar("S")

#: Reasons that say the API will not or cannot serve a resource to the exporter (the token is refused,
#: the server fails, the network is down), as opposed to one item being gone or malformed (not_found,
#: invalid_response, unexpected) or the request budget holding back (rate_limited).
WHOLESALE_REASONS = frozenset({"auth", "permission", "server_error", "timeout", "connection"})
#: The largest offset between the API's clock and ours taken as skew (seconds).
MAX_CLOCK_OFFSET = 86400.0


class UnexpectedError(NorthflankError):
    """A refresh failed outside the client's taxonomy: a bug, or an exception a library let through
    (an OverflowError from a timestamp, a ValueError from a header). It names the exception's type only:
    its message may quote what the API sent."""

    reason = "unexpected"

    def __init__(self, step: str, error: Exception) -> None:
        super().__init__(f"{type(error).__name__} while {step} (its traceback is logged at debug level)")
        self.error = error


class ResourceHealth:
    """Which resources the API serves to nobody: the state behind ``northflank_exporter_resource_up``.

    The latest read of each subject (project, addon, destination) of a resource is remembered as ok, or
    as failed with one of WHOLESALE_REASONS; a read that failed for another reason forgets the subject (a
    404 from a deleted addon, a malformed body, a 429 say nothing about the resource as a whole). A
    resource is failing while at least one subject's latest read failed that way and no subject's latest
    read succeeded. So one deleted or timing-out addon among readable ones never makes its resource fail
    (however the reads interleave), and a token refused for every backup listing does.
    """

    def __init__(self) -> None:
        self._latest: dict[str, dict[Hashable, bool]] = {}
        #: Per resource, how many subjects' latest reads [failed, succeeded].
        self._counts: dict[str, list[int]] = {}

    def record(self, resource: str, subject: Hashable, error: NorthflankError | None) -> None:
        """The outcome of a read of ``resource`` for ``subject``: None when it succeeded."""
        if error is None:
            self._set(resource, subject, True)
        else:
            self._set(resource, subject, False if error.reason in WHOLESALE_REASONS else None)

    def forget(self, resources: Collection[str], keep: Callable[[Hashable], bool]) -> None:
        """Subjects that are gone (an addon deleted, a project moved away) no longer speak for anything."""
        for resource in resources:
            for subject in [s for s in self._latest.get(resource, {}) if not keep(s)]:
                self._set(resource, subject, None)

    def _set(self, resource: str, subject: Hashable, ok: bool | None) -> None:
        latest = self._latest.setdefault(resource, {})
        counts = self._counts.setdefault(resource, [0, 0])
        previous = latest.pop(subject, None)
        if previous is not None:
            counts[previous] -= 1
        if ok is not None:
            latest[subject] = ok
            counts[ok] += 1

    def failing(self) -> frozenset[str]:
        return frozenset(r for r, (failed, ok) in self._counts.items() if failed and not ok)


#: A refused token (401) is logged at WARNING again this often while it lasts, for whichever resource:
#: it stops every read, and a warning an hour ago scrolled away is easy to miss.
TOKEN_REFUSED_REPEAT_SECONDS = 300.0
#: The fault class of a refused token: one for the whole account, whatever resource saw the 401.
_TOKEN_REFUSED = ("*", "auth")


def subject_fields(resource: str, subject: str) -> dict[str, str]:
    """The subject of a read as log fields: the project and addon, the destination or the team."""
    if resource in ADDON_RESOURCES:
        project, _, addon = subject.partition("/")
        return {"project": project, "addon": addon}
    if resource == Resource.ADDONS:
        return {"project": subject}
    if resource == Resource.DESTINATION_BACKUPS:
        return {"destination": subject}
    return {"team": subject} if resource == Resource.PROJECTS and subject else {}


class FaultLog:
    """One log line per class of fault (resource, reason), not one per request or per addon.

    A class is logged at WARNING when it first appears and again at most once per ``repeat_seconds``
    (a refused token: every TOKEN_REFUSED_REPEAT_SECONDS, whatever resource saw it) while it persists;
    every occurrence is logged at DEBUG (the counter says how many there were). A class has ended when
    every subject (addon, project...) that had it has been read successfully again (a refused token: when
    any read succeeds): only then is the recovery logged, and a later occurrence is news again. The
    resource, reason and subject are log fields, not words of the message.
    """

    def __init__(self, clock: Clock, repeat_seconds: float = 3600.0) -> None:
        self._clock = clock
        self._repeat = repeat_seconds
        self._last_logged: dict[tuple[str, str], float] = {}
        self._subjects: dict[tuple[str, str], set[str]] = {}

    def fault(self, resource: str, subject: str, error: NorthflankError) -> None:
        refused = isinstance(error, AuthError)
        key = _TOKEN_REFUSED if refused else (resource, error.reason)
        repeat = TOKEN_REFUSED_REPEAT_SECONDS if refused else self._repeat
        self._subjects.setdefault(key, set()).add(subject)
        now = self._clock.now()
        last = self._last_logged.get(key)
        fields = {"resource": str(resource), "reason": error.reason, **subject_fields(resource, subject)}
        if last is None or now - last >= repeat:
            self._last_logged[key] = now
            if refused:
                log.warning(
                    "the Northflank API refuses the token: %s; nothing can be read until it accepts one "
                    "(/-/ready says 503 meanwhile); keeping the last good data; repeated every %gs while "
                    "it lasts",
                    error,
                    repeat,
                    extra=fields,
                )
            else:
                log.warning(
                    "refresh failed: %s; keeping the last good data; further failures of this resource "
                    "for this reason are logged at debug level for %gs",
                    error,
                    repeat,
                    extra=fields,
                )
        else:
            log.debug("refresh failed: %s", error, extra=fields)

    def recovered(self, resource: str, subject: str) -> None:
        if self._subjects.pop(_TOKEN_REFUSED, None) is not None:
            self._last_logged.pop(_TOKEN_REFUSED, None)
            log.info("the Northflank API accepts the token again", extra={"resource": str(resource)})
        for key in [k for k in self._subjects if k[0] == resource]:
            subjects = self._subjects[key]
            subjects.discard(subject)
            if not subjects:
                del self._subjects[key]
                self._last_logged.pop(key, None)
                log.info("refreshing works again", extra={"resource": str(resource), "reason": key[1]})


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


@dataclass(frozen=True, slots=True)
class AddonListing(Generic[T, S]):
    """How one per-addon resource is read and kept: the one place that pairs a resource with its client
    call, its summariser and its snapshot update."""

    #: The client call: (client, project id, addon id, team) -> the listing.
    read: Callable[[NorthflankClient, str, str, str | None], Awaitable[Sequence[T]]]
    #: The summariser: (listing, the API's current time) -> what the snapshot keeps. The time is a
    #: callable as only some summaries need it.
    summarise: Callable[[Sequence[T], Callable[[], float]], S]
    #: The snapshot update: (snapshot, addon, summary, refresh time) -> the new snapshot.
    update: Callable[[Snapshot, AddonKey, S, float], Snapshot]


ADDON_LISTINGS: Mapping[Resource, AddonListing[Any, Any]] = {
    Resource.BACKUPS: AddonListing(
        lambda client, project, addon, team: client.list_backups(project, addon, team=team),
        lambda listed, api_now: summarize_backups(listed, now=api_now()),
        Snapshot.with_addon_backups,
    ),
    Resource.SCHEDULES: AddonListing(
        lambda client, project, addon, team: client.list_backup_schedules(project, addon, team=team),
        lambda listed, _: summarize_schedules(listed),
        Snapshot.with_addon_schedules,
    ),
    Resource.RESTORES: AddonListing(
        lambda client, project, addon, team: client.list_addon_restores(project, addon, team=team),
        lambda listed, api_now: summarize_restores(listed, now=api_now()),
        Snapshot.with_addon_restores,
    ),
}
if set(ADDON_LISTINGS) != set(ADDON_RESOURCES):
    raise RuntimeError("every per-addon resource needs exactly one entry in ADDON_LISTINGS")


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
        concurrency: int = defaults.CONCURRENCY,
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
        self._first_read = FirstCompleteRead(clock)
        self._health = ResourceHealth()
        self._errors = Counter(
            REFRESH_ERRORS.name, REFRESH_ERRORS.help, REFRESH_ERRORS.labels, registry=registry
        )
        # Every (resource, reason) from the start, at 0: rate() and increase() need a series that
        # exists before the first failure, or the first failure is invisible to them.
        for resource in RESOURCES:
            for reason in REASONS:
                self._errors.labels(resource, reason)

    @property
    def store(self) -> SnapshotStore:
        return self._store

    def _api_now(self) -> float:
        """The API server's current time: ours plus how far its clock is ahead (0 until it is known).

        An offset of more than a day is not clock skew but a broken clock or header: ignored, it leaves
        the API's fresh backups future-dated (loud), where obeyed it would let any backup from the
        future pass for the newest one (silent)."""
        offset = getattr(self._client, "server_time_offset", 0.0)
        if not isinstance(offset, int | float) or not math.isfinite(offset) or abs(offset) > MAX_CLOCK_OFFSET:
            offset = 0.0
        return self._clock.now() + offset

    def _fail(self, resource: str, subject: str, error: NorthflankError) -> None:
        self._errors.labels(resource, error.reason).inc()
        self._faults.fault(resource, subject, error)

    def _unexpected(self, resource: str, subject: str, step: str, error: Exception) -> UnexpectedError:
        failure = UnexpectedError(step, error)
        self._fail(resource, subject, failure)
        # The traceback is for whoever debugs the exporter; at warning level it would bury the one line.
        log.debug(
            "the unexpected failure of a refresh:",
            exc_info=error,
            extra={"resource": str(resource), "reason": failure.reason, **subject_fields(resource, subject)},
        )
        return failure

    def _health_after(self, resource: str, subject: Hashable, error: NorthflankError | None) -> None:
        self._health.record(resource, subject, error)
        failing = self._health.failing()
        if failing != self._store.current.failing_resources:
            self._store.update(lambda s: s.with_failing_resources(failing))

    async def _read(
        self, resource: str, subject: str, call: Callable[[], Awaitable[T]]
    ) -> T | NorthflankError:
        """The listing, or the error that ended it: counted and logged, whatever it was."""
        async with self._limit:
            try:
                result = await call()
            except NorthflankError as error:
                if isinstance(error, RateLimitedError) and self._on_rate_limited is not None:
                    self._on_rate_limited(error.retry_at)
                if isinstance(error, AuthError):
                    self._store.update(lambda s: s.with_token_refused(True))
                self._fail(resource, subject, error)
                return error
            except Exception as error:
                return self._unexpected(resource, subject, "reading the listing", error)
            # Any answer that reads means the API took the token (a 401 is about the token, not one path).
            if self._store.current.token_refused:
                self._store.update(lambda s: s.with_token_refused(False))
            return result

    async def _refresh(
        self,
        resource: str,
        subject: str,
        key: Hashable,
        call: Callable[[], Awaitable[T]],
        apply: Callable[[T], None],
    ) -> Outcome:
        """Read a listing, then ``apply`` it (summarise it into the snapshot). A failure of either step
        is counted and leaves the snapshot's last good data; the fault has ended only once both worked."""
        result = await self._read(resource, subject, call)
        if not isinstance(result, NorthflankError):
            try:
                apply(result)
            except Exception as error:
                result = self._unexpected(resource, subject, "summarising the listing", error)
        if isinstance(result, NorthflankError):
            self._health_after(resource, key, result)
            return Outcome(result)
        self._faults.recovered(resource, subject)
        self._health_after(resource, key, None)
        self._first_read.observe(self._store.current)
        return OK

    async def refresh_projects(self) -> Outcome:
        """Discovery; ``northflank_up`` is 0 while it fails."""
        found: list[tuple[str | None, Project]] = []
        subjects = [team or "" for team in self._teams]
        for team, subject in zip(self._teams, subjects, strict=True):
            listing = partial(self._client.list_projects, team=team)
            projects = await self._read(Resource.PROJECTS, subject, listing)
            if isinstance(projects, NorthflankError):
                self._store.update(Snapshot.with_discovery_failed)
                return Outcome(projects)
            found.extend((team, p) for p in projects)
        at = self._clock.now()
        try:
            self._store.update(lambda s: s.with_projects(found, at))
            current = self._store.current
            self._health.forget([Resource.ADDONS], lambda p: p in current.projects)
            self._health.forget(ADDON_RESOURCES, lambda k: k in current.addons)
        except Exception as error:
            # Attributed to the last team read, so that its next good discovery ends the fault.
            failure = self._unexpected(Resource.PROJECTS, subjects[-1], "summarising the listing", error)
            self._store.update(Snapshot.with_discovery_failed)
            return Outcome(failure)
        for subject in subjects:
            self._faults.recovered(Resource.PROJECTS, subject)
        self._first_read.observe(self._store.current)
        return OK

    async def refresh_project_addons(self, project_id: str) -> Outcome:
        project = self._store.current.projects.get(project_id)
        if project is None:
            return GONE

        def apply(addons: Sequence[Addon]) -> None:
            at = self._clock.now()
            current = self._store.update(lambda s: s.with_project_addons(project_id, addons, at))
            self._health.forget(ADDON_RESOURCES, lambda k: k in current.addons)

        return await self._refresh(
            Resource.ADDONS,
            project_id,
            project_id,
            lambda: self._client.list_addons(project_id, team=project.team),
            apply,
        )

    async def refresh_addon(self, key: AddonKey, resource: AddonResource) -> Outcome:
        project_id, addon_id = key
        project = self._store.current.projects.get(project_id)
        if project is None or key not in self._store.current.addons:
            return GONE
        subject = f"{project_id}/{addon_id}"
        team = project.team
        listing = ADDON_LISTINGS[Resource(resource)]

        def apply(listed: Sequence[Any]) -> None:
            summary, at = listing.summarise(listed, self._api_now), self._clock.now()
            self._store.update(lambda s: listing.update(s, key, summary, at))

        return await self._refresh(
            resource, subject, key, lambda: listing.read(self._client, project_id, addon_id, team), apply
        )

    async def refresh_destinations(self) -> Outcome:
        """The destination listing, then the backups of every destination it lists. The outcome is the
        listing's: a destination whose backups fail keeps its last good data (and is counted)."""

        def apply(destinations: Sequence[BackupDestination]) -> None:
            at = self._clock.now()
            current = self._store.update(lambda s: s.with_destinations(destinations, at))
            self._health.forget([Resource.DESTINATION_BACKUPS], lambda d: d in current.destinations)

        outcome = await self._refresh(
            Resource.BACKUP_DESTINATIONS, "", "", lambda: self._client.list_backup_destinations(), apply
        )
        await asyncio.gather(*(self.refresh_destination_backups(d) for d in self._store.current.destinations))
        return outcome

    async def refresh_destination_backups(self, destination_id: str) -> Outcome:
        def apply(backups: Sequence[DestinationBackup]) -> None:
            summary, at = summarize_destination_backups(backups, now=self._api_now()), self._clock.now()
            self._store.update(lambda s: s.with_destination_backups(destination_id, summary, at))

        return await self._refresh(
            Resource.DESTINATION_BACKUPS,
            destination_id,
            destination_id,
            lambda: self._client.list_destination_backups(destination_id),
            apply,
        )


class RefreshScheduler(Protocol):
    """Decides when to refresh what. The only seam between the refresh logic and its timing; it also
    hands over what it exposes, so that the composition root needs to know no scheduler by name."""

    async def run(self, refresher: Refresher, stop: asyncio.Event) -> None: ...

    def collector(self, snapshot: Callable[[], Snapshot]) -> Collector | None:
        """Its account-wide metrics, computed at scrape time (None: it has none)."""
        ...

    def render_extra(self) -> bytes:
        """Families it renders itself in the text format, appended to /metrics (empty: none)."""
        ...


class WithoutMetrics:
    """For a ``RefreshScheduler`` that exposes nothing of its own."""

    def collector(self, snapshot: Callable[[], Snapshot]) -> Collector | None:
        return None

    def render_extra(self) -> bytes:
        return b""

"""The immutable picture of the fleet that /metrics renders.

The poller never edits a snapshot: each refresh result goes through one of the ``with_*`` methods, which
return a new snapshot sharing everything that did not change, and the new one is swapped in. A listing
is summarised as soon as it is read (``summarize_*``), so the snapshot holds a few numbers per addon
instead of every backup the API returned: memory stays flat however long the retention is.

A failed refresh changes nothing but the error counters: the last good summary stays, with the time it
was read, so a consumer can tell stale data from fresh data.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Generic, TypeVar

from exporter.northflank.models import (
    Addon,
    Backup,
    BackupDestination,
    BackupStatus,
    DestinationBackup,
    Project,
    Restore,
    Schedule,
)

# ADDON_RESOURCES and RESOURCES re-exported for the planner until it imports exporter.resources itself.
from exporter.resources import ADDON_RESOURCES as ADDON_RESOURCES
from exporter.resources import RESOURCES as RESOURCES
from exporter.resources import Resource
from exporter.schedule import EARLY_START_SECONDS, MAX_LOOKBACK_SECONDS, ScheduleCalendar

#: A resource read once per addon (one of ADDON_RESOURCES); the names live in exporter.resources.
AddonResource = Resource

StatusCounts = Mapping[BackupStatus, int]


def _count_statuses(statuses: Iterable[BackupStatus]) -> StatusCounts:
    counts = dict.fromkeys(BackupStatus, 0)
    for status in statuses:
        counts[status] += 1
    return MappingProxyType(counts)


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What an addon's backup listing says, reduced to what the metrics need."""

    counts: StatusCounts
    last_completed_at: float | None = None
    last_completed_size_bytes: int | None = None
    last_completed_duration_seconds: float | None = None
    last_failed_at: float | None = None
    consecutive_failures: int = 0
    #: None when a completed backup's size is unknown (not a number): a total that silently counted it
    #: as 0 would understate the retained size, down to 0 bytes when every size is unreadable.
    completed_size_bytes: int | None = 0
    oldest_completed_at: float | None = None
    in_progress_started_at: float | None = None
    last_initiated_at: float | None = None
    #: Median duration of the newest completed backups: when a refresh after a scheduled run pays off.
    typical_duration_seconds: float | None = None
    #: Backups dated after the API's current time (beyond FUTURE_TOLERANCE_SECONDS): counted here and
    #: left out of everything above.
    future_dated: int = 0
    #: When each backup was initiated, ascending, by the schedule backupType it can be a run of ("dump",
    #: "snapshot", or ANY_BACKUP_TYPE when the listing does not say): what judging every scheduled run
    #: needs. Complete from ``initiations_since`` on; nothing older is kept.
    initiations: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: MappingProxyType({}))
    initiations_since: float | None = None
    #: The API's time when the listing was read: backups initiated a retention before it have expired.
    listed_at: float | None = None

    def initiated_for(self, backup_type: str) -> tuple[float, ...]:
        """The initiations that can be a run of a schedule of ``backup_type``, ascending: its own type
        and the backups of unknown type (all of them for a type this exporter does not know)."""
        if backup_type in _KNOWN_BACKUP_TYPES:
            lists = [self.initiations.get(backup_type, ()), self.initiations.get(ANY_BACKUP_TYPE, ())]
        else:
            lists = list(self.initiations.values())
        present = [times for times in lists if times]
        if len(present) == 1:
            # The usual case (one kind of backup): nothing to merge, and heapq.merge walks in Python.
            return present[0]
        return tuple(heapq.merge(*present))


def _finished_at(backup: Backup) -> float:
    # A final backup whose completedAt is missing still happened; its initiation is the best time we have.
    return (backup.completed_at or backup.created_at).timestamp()


#: config.source.type of a backup -> the schedule backupType whose run it can be. A backup without a
#: source type (the API documents it as optional) could be either; imports (fileUpload, externalDump,
#: sameAddon) are the run of no schedule, so they are not kept at all.
_SOURCE_BACKUP_TYPES: Mapping[str, str] = MappingProxyType({"snapshot": "snapshot", "liveInstance": "dump"})
_IMPORT_SOURCES = frozenset({"fileUpload", "externalDump", "sameAddon"})
_KNOWN_BACKUP_TYPES = frozenset(_SOURCE_BACKUP_TYPES.values())
ANY_BACKUP_TYPE = ""
#: At most this many initiation times are kept per addon (the newest): an hourly schedule with a long
#: retention holds hundreds of backups, and memory must stay flat however long the retention is.
MAX_INITIATIONS = 2000


def _initiations(backups: Sequence[Backup], *, now: float) -> tuple[dict[str, tuple[float, ...]], float]:
    """The initiation times worth keeping, by backup type, and the time from which they are complete."""
    since = now - MAX_LOOKBACK_SECONDS - EARLY_START_SECONDS
    kept: list[tuple[float, str]] = []
    for b in backups:
        at = b.created_at.timestamp()
        source = b.config.source.type if b.config.source is not None else None
        if at < since or source in _IMPORT_SOURCES:
            continue
        kept.append((at, _SOURCE_BACKUP_TYPES.get(source or "", ANY_BACKUP_TYPE)))
    kept.sort()
    if len(kept) > MAX_INITIATIONS:
        kept = kept[-MAX_INITIATIONS:]
        since = kept[0][0]
    by_type: dict[str, list[float]] = {}
    for at, backup_type in kept:
        by_type.setdefault(backup_type, []).append(at)
    return {k: tuple(v) for k, v in by_type.items()}, since


#: How far a backup's time may be ahead of the API's current time and still be taken as true: clocks
#: and the measured offset between them disagree by seconds, a backup from the future by hours.
FUTURE_TOLERANCE_SECONDS = 300.0


def summarize_backups(backups: Sequence[Backup], *, now: float) -> BackupSummary:
    """``now``: the API server's current time (our clock plus its measured offset), with no default: a
    default could only be a time that lets the future pass for the past. A backup initiated or completed
    after it (beyond the tolerance) is only counted as future-dated: taken as the newest backup, it would
    show an addon whose backups stopped as freshly backed up (age 0, no run missed) for hours."""
    limit = now + FUTURE_TOLERANCE_SECONDS
    dated = [b for b in backups if _finished_at(b) <= limit and b.created_at.timestamp() <= limit]
    future_dated = len(backups) - len(dated)
    backups = dated
    completed = [b for b in backups if b.status is BackupStatus.COMPLETED]
    failures = [b for b in backups if b.status.is_failure]
    running = [b for b in backups if b.status.is_running]

    last = max(completed, key=_finished_at, default=None)
    # Failures count from the newest completed backup on, by initiation time: an attempt that started
    # after the last good backup and did not produce one.
    since = last.created_at if last is not None else None
    consecutive = sum(1 for b in failures if since is None or b.created_at > since)
    initiations, initiations_since = _initiations(backups, now=now)

    return BackupSummary(
        counts=_count_statuses(b.status for b in backups),
        last_completed_at=_finished_at(last) if last is not None else None,
        last_completed_size_bytes=last.config.size if last is not None else None,
        last_completed_duration_seconds=last.duration_seconds if last is not None else None,
        last_failed_at=max((_finished_at(b) for b in failures), default=None),
        consecutive_failures=consecutive,
        completed_size_bytes=_total_size(completed),
        oldest_completed_at=min((_finished_at(b) for b in completed), default=None),
        in_progress_started_at=min((b.created_at.timestamp() for b in running), default=None),
        last_initiated_at=max((b.created_at.timestamp() for b in backups), default=None),
        typical_duration_seconds=_typical_duration(completed),
        future_dated=future_dated,
        initiations=MappingProxyType(initiations),
        initiations_since=initiations_since,
        listed_at=now,
    )


def _total_size(completed: Sequence[Backup]) -> int | None:
    sizes = [b.config.size for b in completed]
    return None if None in sizes else sum(s for s in sizes if s is not None)


#: How many of the newest completed backups the typical duration is learned from.
TYPICAL_DURATION_SAMPLE = 10


def _typical_duration(completed: Sequence[Backup]) -> float | None:
    newest = sorted(completed, key=lambda b: b.created_at, reverse=True)[:TYPICAL_DURATION_SAMPLE]
    durations = [d for b in newest if (d := b.duration_seconds) is not None]
    return statistics.median(durations) if durations else None


@dataclass(frozen=True, slots=True)
class ScheduleSummary:
    id: str
    interval: str
    backup_type: str
    compression: str
    retention_seconds: int
    calendar: ScheduleCalendar
    #: The schedule's creation: runs before it cannot have been missed.
    active_since: float | None


def summarize_schedules(schedules: Sequence[Schedule]) -> tuple[ScheduleSummary, ...]:
    return tuple(
        ScheduleSummary(
            id=s.id,
            interval=s.scheduling.interval,
            backup_type=s.backup_type,
            compression=s.compression,
            retention_seconds=s.retention_seconds,
            calendar=ScheduleCalendar.from_scheduling(s.scheduling),
            active_since=s.created_at.timestamp() if s.created_at is not None else None,
        )
        for s in sorted(schedules, key=lambda s: s.id)
    )


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    counts: StatusCounts
    #: Newest restore time per status seen (completion when known, else when it was asked for).
    last_at: Mapping[BackupStatus, float]


def summarize_restores(restores: Sequence[Restore], *, now: float) -> RestoreSummary:
    """``now``: the API server's current time, as for ``summarize_backups``: a restore dated after it
    (beyond the tolerance) is counted by status but never taken as the newest, or a restore that failed
    yesterday could be hidden behind one "completed" next year."""
    last: dict[BackupStatus, float] = {}
    limit = now + FUTURE_TOLERANCE_SECONDS
    for r in restores:
        at = (r.completed_at or r.restore_timestamp).timestamp()
        if at <= limit and at > last.get(r.status, float("-inf")):
            last[r.status] = at
    return RestoreSummary(counts=_count_statuses(r.status for r in restores), last_at=MappingProxyType(last))


@dataclass(frozen=True, slots=True)
class DestinationSummary:
    counts: StatusCounts
    completed_size_bytes: int
    #: Newest completed backup per (project id, addon id) stored in the destination.
    last_completed_at: Mapping[tuple[str, str], float]


def summarize_destination_backups(backups: Sequence[DestinationBackup], *, now: float) -> DestinationSummary:
    """``now``: the API server's current time, as for ``summarize_backups``: a backup dated after it
    (beyond the tolerance) never counts as an addon's newest in the destination, or a destination that
    stopped receiving backups would look fresh (NorthflankBackupDestinationStale silent)."""
    last: dict[tuple[str, str], float] = {}
    size = 0
    limit = now + FUTURE_TOLERANCE_SECONDS
    for b in backups:
        if b.status is not BackupStatus.COMPLETED:
            continue
        size += b.config.size or 0
        key = ((b.project.id if b.project else None) or "", (b.addon.id if b.addon else None) or "")
        at = (b.completed_at or b.created_at).timestamp()
        if at <= limit and b.created_at.timestamp() <= limit and at > last.get(key, float("-inf")):
            last[key] = at
    return DestinationSummary(
        counts=_count_statuses(b.status for b in backups),
        completed_size_bytes=size,
        last_completed_at=MappingProxyType(last),
    )


T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """A summary and the time it was read from the API."""

    value: T
    at: float


@dataclass(frozen=True, slots=True)
class AddonSnapshot:
    project_id: str
    project_name: str
    addon_id: str
    addon_name: str
    addon_type: str
    backups: Fetched[BackupSummary] | None = None
    schedules: Fetched[tuple[ScheduleSummary, ...]] | None = None
    restores: Fetched[RestoreSummary] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.project_id, self.addon_id)

    def refreshed_at(self, resource: AddonResource) -> float | None:
        fetched: Fetched[object] | None = getattr(self, resource)
        return fetched.at if fetched is not None else None


@dataclass(frozen=True, slots=True)
class DestinationSnapshot:
    id: str
    name: str
    backups: Fetched[DestinationSummary] | None = None


@dataclass(frozen=True, slots=True)
class ProjectSnapshot:
    id: str
    name: str
    team: str | None = None
    #: When this project's addon listing was last read successfully.
    addons_at: float | None = None


AddonKey = tuple[str, str]


def _frozen(items: Mapping[K, V]) -> Mapping[K, V]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class Snapshot:
    #: None until the first discovery ran; then whether the last discovery of projects succeeded.
    up: bool | None = None
    #: What /-/ready says: set by the scheduler once discovery has succeeded (the planner: the projects
    #: listed and every project's addon listing answered; the fixed timer: after a complete pass), never
    #: before the projects were listed successfully (see :meth:`with_ready`); it then stays set, so that
    #: an API outage later does not take the last good data out of service.
    ready: bool = False
    projects_at: float | None = None
    destinations_at: float | None = None
    projects: Mapping[str, ProjectSnapshot] = field(default_factory=lambda: MappingProxyType({}))
    addons: Mapping[AddonKey, AddonSnapshot] = field(default_factory=lambda: MappingProxyType({}))
    destinations: Mapping[str, DestinationSnapshot] = field(default_factory=lambda: MappingProxyType({}))
    #: Resources other than the projects (whose health is ``up``) that the API refuses or cannot serve
    #: at all: the latest read of every subject (project, addon, destination) that has one failed with an
    #: access, server or transport error (see ``exporter.poller.ResourceHealth``).
    failing_resources: frozenset[str] = frozenset()
    #: The API's latest answer about the token was a 401 (no read has succeeded since): /-/ready says 503
    #: while it lasts, even once ready, as a token that is refused is a configuration to fix, not an
    #: outage to ride out.
    token_refused: bool = False

    def resource_up(self, resource: str) -> bool:
        if resource == Resource.PROJECTS:
            return self.up is True
        return resource not in self.failing_resources

    @property
    def api_up(self) -> bool:
        """Discovery succeeded and no resource fails for every subject: what ``northflank_up`` says."""
        return self.up is True and not self.failing_resources

    def with_failing_resources(self, failing: frozenset[str]) -> Snapshot:
        return self if failing == self.failing_resources else replace(self, failing_resources=failing)

    def with_discovery_failed(self) -> Snapshot:
        return replace(self, up=False)

    def with_projects(self, projects: Sequence[tuple[str | None, Project]], at: float) -> Snapshot:
        """A successful project listing (with the team each was found under). Gone projects are dropped."""
        current = {
            p.id: ProjectSnapshot(
                id=p.id,
                name=p.name,
                team=team,
                addons_at=self.projects[p.id].addons_at if p.id in self.projects else None,
            )
            for team, p in projects
        }
        addons = {k: a for k, a in self.addons.items() if k[0] in current}
        for key, addon in addons.items():
            name = current[key[0]].name
            if addon.project_name != name:
                addons[key] = replace(addon, project_name=name)
        return replace(self, up=True, projects_at=at, projects=_frozen(current), addons=_frozen(addons))

    def with_project_addons(self, project_id: str, listed: Sequence[Addon], at: float) -> Snapshot:
        """A successful addon listing: new addons appear, gone ones disappear, known ones keep their data."""
        project = self.projects.get(project_id)
        if project is None:
            return self
        addons = {k: a for k, a in self.addons.items() if k[0] != project_id}
        for item in listed:
            previous = self.addons.get((project_id, item.id))
            base = previous or AddonSnapshot(
                project_id=project_id,
                project_name=project.name,
                addon_id=item.id,
                addon_name=item.name,
                addon_type=item.spec.type,
            )
            addons[(project_id, item.id)] = replace(base, addon_name=item.name, addon_type=item.spec.type)
        projects = dict(self.projects)
        projects[project_id] = replace(project, addons_at=at)
        return replace(self, projects=_frozen(projects), addons=_frozen(addons))

    def with_addon_backups(self, key: AddonKey, summary: BackupSummary, at: float) -> Snapshot:
        return self._with_addon(key, backups=Fetched(summary, at))

    def with_addon_schedules(
        self, key: AddonKey, summary: tuple[ScheduleSummary, ...], at: float
    ) -> Snapshot:
        return self._with_addon(key, schedules=Fetched(summary, at))

    def with_addon_restores(self, key: AddonKey, summary: RestoreSummary, at: float) -> Snapshot:
        return self._with_addon(key, restores=Fetched(summary, at))

    def _with_addon(self, key: AddonKey, **changes: object) -> Snapshot:
        addon = self.addons.get(key)
        if addon is None:
            # The addon vanished from its listing while its data was being read: drop the result.
            return self
        addons = dict(self.addons)
        addons[key] = replace(addon, **changes)  # type: ignore[arg-type]
        return replace(self, addons=_frozen(addons))

    def with_destinations(self, listed: Sequence[BackupDestination], at: float) -> Snapshot:
        current = {
            d.id: DestinationSnapshot(
                id=d.id,
                name=d.name,
                backups=self.destinations[d.id].backups if d.id in self.destinations else None,
            )
            for d in listed
            if d.id is not None
        }
        return replace(self, destinations_at=at, destinations=_frozen(current))

    def with_destination_backups(
        self, destination_id: str, summary: DestinationSummary, at: float
    ) -> Snapshot:
        destination = self.destinations.get(destination_id)
        if destination is None:
            return self
        destinations = dict(self.destinations)
        destinations[destination_id] = replace(destination, backups=Fetched(summary, at))
        return replace(self, destinations=_frozen(destinations))

    def with_token_refused(self, refused: bool) -> Snapshot:
        return self if refused == self.token_refused else replace(self, token_refused=refused)

    def with_ready(self) -> Snapshot:
        """Ready, provided the projects were listed successfully at least once: before that (the token
        refused, the API unreachable) the exporter has nothing to serve, whatever its scheduler thinks."""
        if self.ready or self.projects_at is None:
            return self
        return replace(self, ready=True)


class SnapshotStore:
    """Holds the current snapshot. Readers take ``current``; the poller swaps in new ones.

    Everything runs on one event loop and ``update`` does not await, so a read-modify-write through it
    cannot interleave with another.
    """

    def __init__(self, initial: Snapshot | None = None) -> None:
        self._current = initial or Snapshot()

    @property
    def current(self) -> Snapshot:
        return self._current

    def update(self, change: Callable[[Snapshot], Snapshot]) -> Snapshot:
        self._current = change(self._current)
        return self._current

    def export_state(self) -> Snapshot:
        """The snapshot to save (--storage.path): immutable, so it may be encoded off the event loop."""
        return self._current

    def restore_state(self, snapshot: Snapshot) -> None:
        """At start, before the first read: the saved picture, with the times it was read (so that its
        age, and every alert on it, stays what it was)."""
        self._current = snapshot

"""The state <-> the state file's bytes: the snapshot, the planner's plans and the request budget, turned
into the file's models (:mod:`exporter.state.fileformat`) and back into the exporter's own typed values.

:func:`decode` parses the untrusted file (:func:`~exporter.state.fileformat.parse`), checks whose it is
(:meth:`~exporter.state.identity.StateIdentity.check`) and that it is not from the future, then builds the
typed state, checking what the models alone cannot (a refresh time after the save, an addon of an
unlisted project, a calendar out of order). A file it cannot use is refused as a whole with one sentence
saying why (:class:`StateFileError`): the caller logs it and starts afresh.

The names callers need with :func:`encode` and :func:`decode` (the identity, the error, the format's
constants) are re-exported here, so that :mod:`exporter.state.saver`, the tests and the benchmark import
from one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel

from exporter.northflank.models import BackupStatus
from exporter.northflank.ratelimit import RateLimitStatus
from exporter.planner.policy import Target, Tier
from exporter.schedule import ScheduleCalendar
from exporter.snapshot import (
    AddonSnapshot,
    BackupSummary,
    DestinationSnapshot,
    DestinationSummary,
    Fetched,
    ProjectSnapshot,
    RestoreSummary,
    ScheduleSummary,
    Snapshot,
)
from exporter.state.fileformat import (
    FORMAT,
    MAX_STATE_BYTES,
    SCHEMA_VERSION,
    AddonModel,
    BackupSummaryModel,
    BucketModel,
    BudgetModel,
    CalendarModel,
    DestinationLastModel,
    DestinationModel,
    DestinationSummaryModel,
    FetchedBackupsModel,
    FetchedDestinationModel,
    FetchedRestoresModel,
    FetchedSchedulesModel,
    PlannerModel,
    ProjectModel,
    RateLimitModel,
    RestoreSummaryModel,
    ScheduleModel,
    SnapshotModel,
    StateFileError,
    StateFileModel,
    TargetModel,
    parse,
)
from exporter.state.identity import StateIdentity, new_salt
from exporter.state.records import BucketLevel, BudgetState, PlannerState, TargetRecord

#: A saved time may be this far ahead of the clock (clocks disagree by seconds; a file from the future
#: means the clock went back, and its refresh times would make stale data look fresh).
CLOCK_TOLERANCE_SECONDS = 300.0


# -- the state, typed ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedState:
    """Everything a restart keeps, as the components export and restore it."""

    saved_at: float
    snapshot: Snapshot
    planner: PlannerState = field(default_factory=PlannerState)
    budget: BudgetState = field(default_factory=BudgetState)


T = TypeVar("T")


def _alike(kind: type[T], source: object, **changed: Any) -> T:
    """A ``kind`` (a file model or a typed value) from ``source`` (the other one), field by field by name:
    one list of the fields, the classes' own, for both ways. ``changed`` gives the fields that change on
    the way. A field one side lacks fails every round trip (AttributeError), and the models check every
    value strictly on encoding."""
    if issubclass(kind, BaseModel):
        names: tuple[str, ...] = tuple(kind.model_fields)
    elif is_dataclass(kind):
        names = tuple(f.name for f in fields(kind))
    else:
        raise TypeError(f"{kind.__name__} is neither a file model nor a dataclass")
    values = {name: getattr(source, name) for name in names if name not in changed}
    return kind(**values, **changed)


# -- encoding -----------------------------------------------------------------------------------------------


def encode(state: SavedState, identity: StateIdentity, *, salt: bytes | None = None) -> bytes:
    """The file's bytes for ``state``, belonging to ``identity`` (a fresh random salt unless given)."""
    salt = salt if salt is not None else new_salt()
    model = StateFileModel(
        format=FORMAT,
        schema=SCHEMA_VERSION,
        saved_at=state.saved_at,
        api_url=identity.api_url,
        token_salt=salt.hex(),
        token_hash=identity.token_hash(salt),
        snapshot=_snapshot_model(state.snapshot),
        planner=_planner_model(state.planner),
        budget=_budget_model(state.budget),
    )
    return model.model_dump_json(by_alias=True).encode()


def _status_map(values: Mapping[BackupStatus, int]) -> dict[BackupStatus, int]:
    return dict(values)


def _backups_model(fetched: Fetched[BackupSummary]) -> FetchedBackupsModel:
    s = fetched.value
    return FetchedBackupsModel(
        at=fetched.at,
        value=_alike(
            BackupSummaryModel,
            s,
            counts=_status_map(s.counts),
            initiations={k: list(v) for k, v in s.initiations.items()},
        ),
    )


def _schedules_model(fetched: Fetched[tuple[ScheduleSummary, ...]]) -> FetchedSchedulesModel:
    return FetchedSchedulesModel(
        at=fetched.at,
        value=[
            _alike(
                ScheduleModel,
                s,
                calendar=CalendarModel(
                    period_seconds=s.calendar.period_seconds, offsets=list(s.calendar.offsets)
                ),
            )
            for s in fetched.value
        ],
    )


def _snapshot_model(snapshot: Snapshot) -> SnapshotModel:
    return SnapshotModel(
        up=snapshot.up,
        ready=snapshot.ready,
        projects_at=snapshot.projects_at,
        destinations_at=snapshot.destinations_at,
        projects=[_alike(ProjectModel, p) for p in snapshot.projects.values()],
        addons=[
            _alike(
                AddonModel,
                a,
                backups=_backups_model(a.backups) if a.backups is not None else None,
                schedules=_schedules_model(a.schedules) if a.schedules is not None else None,
                restores=(
                    FetchedRestoresModel(
                        at=a.restores.at,
                        value=RestoreSummaryModel(
                            counts=_status_map(a.restores.value.counts),
                            last_at=dict(a.restores.value.last_at),
                        ),
                    )
                    if a.restores is not None
                    else None
                ),
            )
            for a in snapshot.addons.values()
        ],
        destinations=[
            DestinationModel(
                id=d.id,
                name=d.name,
                backups=(
                    FetchedDestinationModel(
                        at=d.backups.at,
                        value=DestinationSummaryModel(
                            counts=_status_map(d.backups.value.counts),
                            completed_size_bytes=d.backups.value.completed_size_bytes,
                            last_completed_at=[
                                DestinationLastModel(project=k[0], addon=k[1], at=at)
                                for k, at in d.backups.value.last_completed_at.items()
                            ],
                        ),
                    )
                    if d.backups is not None
                    else None
                ),
            )
            for d in snapshot.destinations.values()
        ],
    )


def _planner_model(planner: PlannerState) -> PlannerModel:
    return PlannerModel(
        ready=planner.ready,
        targets=[_alike(TargetModel, r) for r in planner.targets],
        buckets=[BucketModel(name=n, tokens=b.tokens, updated=b.updated) for n, b in planner.buckets],
    )


def _budget_model(budget: BudgetState) -> BudgetModel:
    status = budget.rate_limit
    return BudgetModel(
        sent=list(budget.sent),
        rate_limit=_alike(RateLimitModel, status) if status is not None else None,
        blocked_until=budget.blocked_until,
        announced=budget.announced,
    )


# -- decoding -----------------------------------------------------------------------------------------------


def decode(data: bytes, identity: StateIdentity, *, now: float) -> SavedState:
    """The state in ``data``, or :class:`StateFileError` saying in one sentence why it cannot be used."""
    model = parse(data)
    identity.check(api_url=model.api_url, token_salt=model.token_salt, token_hash=model.token_hash)
    if model.saved_at > now + CLOCK_TOLERANCE_SECONDS:
        raise StateFileError("it was saved after the current time (the clock went back)")
    try:
        return SavedState(
            saved_at=model.saved_at,
            snapshot=_snapshot(model.snapshot, model.saved_at),
            planner=_planner(model.planner),
            budget=_budget(model.budget),
        )
    except ValueError as error:
        raise StateFileError(f"it is inconsistent ({error})") from None


K = TypeVar("K")
V = TypeVar("V")


def _frozen(items: Mapping[K, V]) -> Mapping[K, V]:
    return MappingProxyType(dict(items))


def _counts(values: Mapping[BackupStatus, int]) -> Mapping[BackupStatus, int]:
    # Every status present, as the snapshot's own summaries have them.
    return _frozen({status: values.get(status, 0) for status in BackupStatus})


def _read_at(at: float, saved_at: float) -> float:
    """A time something was read: never after the file was saved (it would make stale data look fresh)."""
    if at > saved_at + CLOCK_TOLERANCE_SECONDS:
        raise ValueError("a refresh time after the time it was saved")
    return at


def _backups(model: FetchedBackupsModel, saved_at: float) -> Fetched[BackupSummary]:
    s = model.value
    return Fetched(
        _alike(
            BackupSummary,
            s,
            counts=_counts(s.counts),
            # Ascending, as summarize_backups leaves them: what judging the scheduled runs relies on.
            initiations=_frozen({k: tuple(sorted(v)) for k, v in s.initiations.items()}),
        ),
        _read_at(model.at, saved_at),
    )


def _schedules(model: FetchedSchedulesModel, saved_at: float) -> Fetched[tuple[ScheduleSummary, ...]]:
    return Fetched(
        tuple(
            _alike(
                ScheduleSummary,
                s,
                # Its own checks (offsets sorted, unique, within the period) raise ValueError.
                calendar=ScheduleCalendar(s.calendar.period_seconds, tuple(s.calendar.offsets)),
            )
            for s in model.value
        ),
        _read_at(model.at, saved_at),
    )


def _snapshot(model: SnapshotModel, saved_at: float) -> Snapshot:
    projects = {
        p.id: _alike(
            ProjectSnapshot,
            p,
            addons_at=_read_at(p.addons_at, saved_at) if p.addons_at is not None else None,
        )
        for p in model.projects
    }
    addons = {}
    for a in model.addons:
        if a.project_id not in projects:
            raise ValueError("an addon of a project it does not list")
        addons[(a.project_id, a.addon_id)] = _alike(
            AddonSnapshot,
            a,
            backups=_backups(a.backups, saved_at) if a.backups is not None else None,
            schedules=_schedules(a.schedules, saved_at) if a.schedules is not None else None,
            restores=(
                Fetched(
                    RestoreSummary(
                        counts=_counts(a.restores.value.counts), last_at=_frozen(a.restores.value.last_at)
                    ),
                    _read_at(a.restores.at, saved_at),
                )
                if a.restores is not None
                else None
            ),
        )
    destinations = {
        d.id: DestinationSnapshot(
            id=d.id,
            name=d.name,
            backups=(
                Fetched(
                    DestinationSummary(
                        counts=_counts(d.backups.value.counts),
                        completed_size_bytes=d.backups.value.completed_size_bytes,
                        last_completed_at=_frozen(
                            {(x.project, x.addon): x.at for x in d.backups.value.last_completed_at}
                        ),
                    ),
                    _read_at(d.backups.at, saved_at),
                )
                if d.backups is not None
                else None
            ),
        )
        for d in model.destinations
    }
    return Snapshot(
        up=model.up,
        # Ready means the projects were listed once (see Snapshot.with_ready): a file cannot say otherwise.
        ready=model.ready and model.projects_at is not None,
        projects_at=_read_at(model.projects_at, saved_at) if model.projects_at is not None else None,
        destinations_at=_read_at(model.destinations_at, saved_at)
        if model.destinations_at is not None
        else None,
        projects=_frozen(projects),
        addons=_frozen(addons),
        destinations=_frozen(destinations),
    )


def _planner(model: PlannerModel) -> PlannerState:
    records = []
    for t in model.targets:
        # Target and Tier check what the planner could not dispatch (an addon listing without a project).
        target = Target(t.resource, t.project, t.addon)
        records.append(
            _alike(
                TargetRecord,
                t,
                resource=target.resource,
                project=target.project,
                addon=target.addon,
                tier=int(Tier(t.tier)),
            )
        )
    return PlannerState(
        targets=tuple(records),
        ready=model.ready,
        buckets=tuple((b.name, BucketLevel(b.tokens, b.updated)) for b in model.buckets),
    )


def _budget(model: BudgetModel) -> BudgetState:
    status = model.rate_limit
    return BudgetState(
        sent=tuple(sorted(model.sent)),
        rate_limit=_alike(RateLimitStatus, status) if status is not None else None,
        blocked_until=model.blocked_until,
        announced=model.announced,
    )


__all__ = [
    "CLOCK_TOLERANCE_SECONDS",
    "FORMAT",
    "MAX_STATE_BYTES",
    "SCHEMA_VERSION",
    "SavedState",
    "StateFileError",
    "StateIdentity",
    "decode",
    "encode",
]

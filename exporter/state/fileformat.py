"""The state file's format: what ``state.json`` holds, as strict pydantic models, and the one place it is
parsed.

The file is untrusted input (another version wrote it, a disk filled up, someone edited it): it is parsed
once, by :func:`parse`, into these models (unknown keys, wrong types, non-finite numbers, implausible
times and oversized lists are refused). A file that is too large, not JSON, not this exporter's, or of
another schema version is refused as a whole with one sentence saying why (:class:`StateFileError`).
Whose file it is (API host, token) is :mod:`exporter.state.identity`'s check; turning the models into the
exporter's own typed values and back is :mod:`exporter.state.codec`'s.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.northflank.models import BackupStatus
from exporter.planner.policy import Tier
from exporter.resources import Resource
from exporter.snapshot import MAX_INITIATIONS

#: Moves on whenever the format changes in a way an older or newer exporter could misread.
SCHEMA_VERSION: Literal[1] = 1
FORMAT: Literal["northflank-backup-exporter-state"] = "northflank-backup-exporter-state"
#: A file larger than this is not read (a state of 1000 addons with hourly schedules is a few MB).
MAX_STATE_BYTES = 256 * 1024 * 1024
#: Unix seconds up to 2100-01-01: anything later in a file is not a time this exporter wrote.
_MAX_TIME = 4_102_444_800.0
_MAX_COUNT = 10**15
_MAX_ITEMS = 1_000_000

Time = Annotated[float, Field(ge=0, le=_MAX_TIME)]
Seconds = Annotated[float, Field(ge=0, le=_MAX_TIME)]
Count = Annotated[int, Field(ge=0, le=_MAX_COUNT)]
Id = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=1024)]
#: Whole bytes (an even number of digits): the salt is read back with ``bytes.fromhex``.
Hex = Annotated[str, Field(pattern=r"^(?:[0-9a-f]{2}){8,64}$")]
BackupType = Literal["", "dump", "snapshot"]


class StateFileError(ValueError):
    """A state file that cannot be used. The message says why in one sentence, never the token."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _FetchedAt(_Model):
    at: Time


class BackupSummaryModel(_Model):
    counts: dict[BackupStatus, Count]
    last_completed_at: Time | None = None
    last_completed_size_bytes: Count | None = None
    last_completed_duration_seconds: Seconds | None = None
    last_failed_at: Time | None = None
    consecutive_failures: Count = 0
    completed_size_bytes: Count | None = 0
    oldest_completed_at: Time | None = None
    in_progress_started_at: Time | None = None
    last_initiated_at: Time | None = None
    typical_duration_seconds: Seconds | None = None
    future_dated: Count = 0
    initiations: dict[BackupType, Annotated[list[Time], Field(max_length=MAX_INITIATIONS)]] = {}
    initiations_since: Time | None = None
    listed_at: Time | None = None


class FetchedBackupsModel(_FetchedAt):
    value: BackupSummaryModel


class CalendarModel(_Model):
    period_seconds: Annotated[int, Field(gt=0, le=10**8)]
    offsets: Annotated[list[Annotated[int, Field(ge=0, le=10**8)]], Field(min_length=1, max_length=100_000)]


class ScheduleModel(_Model):
    id: Id
    interval: Text
    backup_type: Text
    compression: Text
    retention_seconds: Count
    calendar: CalendarModel
    active_since: Time | None = None


class FetchedSchedulesModel(_FetchedAt):
    value: Annotated[list[ScheduleModel], Field(max_length=10_000)]


class RestoreSummaryModel(_Model):
    counts: dict[BackupStatus, Count]
    last_at: dict[BackupStatus, Time]


class FetchedRestoresModel(_FetchedAt):
    value: RestoreSummaryModel


class DestinationLastModel(_Model):
    project: Annotated[str, Field(max_length=256)]
    addon: Annotated[str, Field(max_length=256)]
    at: Time


class DestinationSummaryModel(_Model):
    counts: dict[BackupStatus, Count]
    completed_size_bytes: Count
    last_completed_at: Annotated[list[DestinationLastModel], Field(max_length=_MAX_ITEMS)]


class FetchedDestinationModel(_FetchedAt):
    value: DestinationSummaryModel


class ProjectModel(_Model):
    id: Id
    name: Text
    team: Text | None = None
    addons_at: Time | None = None


class AddonModel(_Model):
    project_id: Id
    project_name: Text
    addon_id: Id
    addon_name: Text
    addon_type: Text
    backups: FetchedBackupsModel | None = None
    schedules: FetchedSchedulesModel | None = None
    restores: FetchedRestoresModel | None = None


class DestinationModel(_Model):
    id: Id
    name: Text
    backups: FetchedDestinationModel | None = None


class SnapshotModel(_Model):
    up: bool | None = None
    ready: bool = False
    projects_at: Time | None = None
    destinations_at: Time | None = None
    projects: Annotated[list[ProjectModel], Field(max_length=_MAX_ITEMS)] = []
    addons: Annotated[list[AddonModel], Field(max_length=_MAX_ITEMS)] = []
    destinations: Annotated[list[DestinationModel], Field(max_length=_MAX_ITEMS)] = []


class TargetModel(_Model):
    resource: Resource
    project: Annotated[str, Field(max_length=256)] = ""
    addon: Annotated[str, Field(max_length=256)] = ""
    known_since: Time
    due: Time
    tier: Annotated[int, Field(ge=min(Tier), le=max(Tier))]
    last_attempt: Time | None = None
    last_success: Time | None = None
    failures: Count = 0
    cost: Annotated[int, Field(ge=1, le=100_000)] = 1
    forced: Time | None = None


class BucketModel(_Model):
    name: Annotated[str, Field(min_length=1, max_length=32)]
    tokens: Annotated[float, Field(ge=-_MAX_COUNT, le=_MAX_COUNT)]
    updated: Time


class PlannerModel(_Model):
    ready: bool = False
    targets: Annotated[list[TargetModel], Field(max_length=_MAX_ITEMS)] = []
    buckets: Annotated[list[BucketModel], Field(max_length=32)] = []


class RateLimitModel(_Model):
    limit: Count
    remaining: Count
    reset_at: Time
    observed_at: Time


class BudgetModel(_Model):
    sent: Annotated[list[Time], Field(max_length=_MAX_ITEMS)] = []
    rate_limit: RateLimitModel | None = None
    blocked_until: Time | None = None
    announced: Annotated[int, Field(ge=1, le=_MAX_COUNT)] | None = None


class HeaderModel(BaseModel):
    """What is read before anything else: whether the rest is this exporter's to read."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False)

    format: str
    schema_version: int = Field(alias="schema")


class StateFileModel(_Model):
    format: Literal["northflank-backup-exporter-state"]
    schema_version: Literal[1] = Field(alias="schema")
    saved_at: Time
    api_url: Annotated[str, Field(max_length=2048)]
    token_salt: Hex
    token_hash: Hex
    snapshot: SnapshotModel
    planner: PlannerModel
    budget: BudgetModel


def parse(data: bytes) -> StateFileModel:
    """The file in ``data``, validated, or :class:`StateFileError` saying in one sentence why it cannot be
    read (never a value from it: it could be anything, a token pasted in by mistake)."""
    if len(data) > MAX_STATE_BYTES:
        raise StateFileError(f"it is larger than {MAX_STATE_BYTES} bytes")
    try:
        header = HeaderModel.model_validate_json(data)
    except ValidationError:
        raise StateFileError("it is not a JSON state file (corrupt or truncated)") from None
    if header.format != FORMAT:
        raise StateFileError("it is not a state file of this exporter")
    if header.schema_version != SCHEMA_VERSION:
        raise StateFileError(
            f"it is of schema version {header.schema_version}, this exporter reads {SCHEMA_VERSION}"
        )
    try:
        return StateFileModel.model_validate_json(data)
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors()[0]["loc"])
        raise StateFileError(
            f"it is invalid ({error.error_count()} problems, the first at {where})"
        ) from None


__all__ = [
    "FORMAT",
    "MAX_STATE_BYTES",
    "SCHEMA_VERSION",
    "AddonModel",
    "BackupSummaryModel",
    "BucketModel",
    "BudgetModel",
    "CalendarModel",
    "DestinationLastModel",
    "DestinationModel",
    "DestinationSummaryModel",
    "FetchedBackupsModel",
    "FetchedDestinationModel",
    "FetchedRestoresModel",
    "FetchedSchedulesModel",
    "HeaderModel",
    "PlannerModel",
    "ProjectModel",
    "RateLimitModel",
    "RestoreSummaryModel",
    "ScheduleModel",
    "SnapshotModel",
    "StateFileError",
    "StateFileModel",
    "TargetModel",
    "parse",
]

"""Typed, frozen models of the Northflank API payloads the exporter reads.

JSON is validated into these once, in the API client; everything past the client works with them.
They accept the quirks real responses have (see ../shared/northflank-api.md):

- sizes are strings of digits (``"1234"``), sometimes ``"0"`` while in flight; a non-numeric size is
  read as unknown (``None``) rather than failing the listing;
- ``expiredBy`` is documented as a number but sent as a string (``"1729232400000.0"``);
- restore ids are integers (unix milliseconds);
- in-flight backups carry no meaningful ``completedAt`` (absent, null, empty, the epoch, or before
  ``createdAt``): read as ``None``;
- a status value outside the documented seven becomes ``BackupStatus.UNKNOWN`` instead of failing the
  whole listing.

Destination credentials are not modelled at all, so they are dropped at parse time and can never reach
a log line, a label or an error message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class BackupStatus(StrEnum):
    """Status of a backup or a restore. ``UNKNOWN`` stands for any value the API documents not (yet)."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABORTING = "aborting"
    ABORTED = "aborted"
    FAILED = "failed"
    NOT_SUPPORTED = "not-supported"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATUSES

    @property
    def is_failure(self) -> bool:
        return self in (BackupStatus.FAILED, BackupStatus.ABORTED)

    @property
    def is_running(self) -> bool:
        return self in (BackupStatus.SCHEDULED, BackupStatus.IN_PROGRESS, BackupStatus.ABORTING)


_FINAL_STATUSES = frozenset(
    {BackupStatus.COMPLETED, BackupStatus.ABORTED, BackupStatus.FAILED, BackupStatus.NOT_SUPPORTED}
)

#: The statuses the API documents, in its own order; every one is exported, with 0 when none.
DOCUMENTED_STATUSES: tuple[BackupStatus, ...] = tuple(
    s for s in BackupStatus if s is not BackupStatus.UNKNOWN
)


def _status(value: object) -> BackupStatus:
    if isinstance(value, BackupStatus):
        return value
    if not isinstance(value, str):
        raise ValueError("status must be a string")
    try:
        return BackupStatus(value)
    except ValueError:
        return BackupStatus.UNKNOWN


def _size(value: object) -> int | None:
    """Byte sizes come as strings of digits; anything that is not a non-negative number is unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) and number >= 0 else None
    return None


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            # fromisoformat's message quotes the input; validation messages must never carry values.
            raise ValueError("timestamp must be an ISO 8601 string") from None
    else:
        raise ValueError("timestamp must be an ISO 8601 string")
    if parsed.tzinfo is None:
        # The API speaks UTC; a timestamp without an offset is read as UTC, not as local time.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _optional_time(value: object) -> datetime | None:
    """For fields that are absent or meaningless while something is in flight: never fail on them."""
    if value is None or value == "":
        return None
    try:
        parsed = _parse_time(value)
    except ValueError:
        return None
    return None if parsed.timestamp() <= 0 else parsed


def _epoch_millis(value: object) -> datetime | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            millis = float(value)
        except ValueError:
            return None
        if math.isfinite(millis) and millis > 0:
            return datetime.fromtimestamp(millis / 1000, tz=UTC)
    return None


def _id_string(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("id must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise ValueError("id must be a non-empty string or an integer")


Status = Annotated[BackupStatus, BeforeValidator(_status)]
Size = Annotated[int | None, BeforeValidator(_size)]
Timestamp = Annotated[datetime, BeforeValidator(_parse_time)]
OptionalTimestamp = Annotated[datetime | None, BeforeValidator(_optional_time)]
EpochMillis = Annotated[datetime | None, BeforeValidator(_epoch_millis)]
IdString = Annotated[str, BeforeValidator(_id_string)]


class ApiModel(BaseModel):
    """Frozen, camelCase on the wire, unknown fields ignored (the API adds fields over time)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
    )


class Project(ApiModel):
    id: str
    name: str
    description: str | None = None


class AddonSpec(ApiModel):
    type: str


class Addon(ApiModel):
    id: str
    name: str
    app_id: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    spec: AddonSpec
    status: str | None = None


class BackupSource(ApiModel):
    type: str | None = None


class BackupConfig(ApiModel):
    source: BackupSource | None = None
    size: Size = None
    addon_version: str | None = None
    addon_type: str | None = None
    compression_type: str | None = None


class Backup(ApiModel):
    id: str
    name: str = ""
    status: Status
    created_at: Timestamp
    completed_at: OptionalTimestamp = None
    config: BackupConfig = Field(default_factory=BackupConfig)
    uid: str | None = None
    custom_destination_id: str | None = None

    @model_validator(mode="after")
    def _drop_meaningless_completion(self) -> Backup:
        if self.completed_at is not None and self.completed_at < self.created_at:
            # A completion before the initiation is a placeholder, not a time.
            object.__setattr__(self, "completed_at", None)
        return self

    @property
    def duration_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds()


Interval = Literal["hourly", "daily", "weekly"]


class Scheduling(ApiModel):
    interval: Interval
    minute: tuple[Annotated[int, Field(ge=0, le=59)], ...] = Field(min_length=1)
    hour: tuple[Annotated[int, Field(ge=0, le=23)], ...] | None = None
    day: tuple[Annotated[int, Field(ge=0, le=6)], ...] | None = None

    @model_validator(mode="after")
    def _required_lists(self) -> Scheduling:
        if self.interval in ("daily", "weekly") and not self.hour:
            raise ValueError(f"a {self.interval} schedule needs at least one hour")
        if self.interval == "weekly" and not self.day:
            raise ValueError("a weekly schedule needs at least one day")
        return self


class AdditionalDestination(ApiModel):
    destination_id: str
    retention_time: int | None = None
    type: str | None = None


class Schedule(ApiModel):
    id: str
    backup_type: str
    backup_compression_type: str | None = None
    additional_destinations: tuple[AdditionalDestination, ...] = ()
    custom_destination_id: str | None = None
    scheduling: Scheduling
    retention_time: int = Field(ge=0)
    created_at: OptionalTimestamp = None
    updated_at: OptionalTimestamp = None

    @property
    def retention_seconds(self) -> int:
        return self.retention_time * 86_400

    @property
    def compression(self) -> str:
        """The compression of dump backups; the API defaults it to gz. Snapshots have none."""
        if self.backup_type != "dump":
            return "none"
        return self.backup_compression_type or "gz"


class Restore(ApiModel):
    id: IdString
    backup_id: str | None = None
    restore_timestamp: Timestamp
    status: Status
    completed_at: OptionalTimestamp = None


class BackupDestination(ApiModel):
    # The SDK marks id optional on this listing; a destination without one cannot be asked for its backups.
    id: str | None = None
    name: str
    description: str | None = None
    type: str | None = None
    usage: str | None = None
    prefix: str | None = None


class Ref(ApiModel):
    id: str | None = None
    name: str | None = None


class DestinationBackup(ApiModel):
    id: str
    name: str = ""
    status: Status
    project: Ref | None = None
    addon: Ref | None = None
    config: BackupConfig = Field(default_factory=BackupConfig)
    schedules: tuple[Scheduling, ...] = ()
    expired_by: EpochMillis = None
    created_at: Timestamp
    completed_at: OptionalTimestamp = None


class Pagination(ApiModel):
    has_next_page: bool = False
    cursor: str | None = None
    count: int | None = None


class ApiErrorBody(ApiModel):
    """The ``error`` object of a non-2xx response. Every field is optional: proxies send anything."""

    status: int | None = None
    message: str | None = None
    id: str | None = Field(default=None, validation_alias=AliasChoices("id", "errorId"))
    details: Any = None


__all__ = [
    "DOCUMENTED_STATUSES",
    "AdditionalDestination",
    "Addon",
    "AddonSpec",
    "ApiErrorBody",
    "Backup",
    "BackupConfig",
    "BackupDestination",
    "BackupSource",
    "BackupStatus",
    "DestinationBackup",
    "Interval",
    "Pagination",
    "Project",
    "Ref",
    "Restore",
    "Schedule",
    "Scheduling",
]

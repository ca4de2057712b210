"""Typed, frozen models of the Northflank API payloads the exporter reads.

JSON is validated into these once, in the API client; everything past the client works with them.
They accept the quirks real responses have (seen in the API documentation's examples and the official
SDK's types, where the two disagree with each other or with the schema):

- sizes are strings of digits (``"1234"``), sometimes ``"0"`` while in flight; a size that is not
  ASCII digits (``"²"`` passes ``str.isdigit``), negative, or 2**63 and more is read as unknown
  (``None``) rather than failing the item;
- ``expiredBy`` is documented as a number but sent as a string (``"1729232400000.0"``);
- restore ids are integers (unix milliseconds);
- in-flight backups carry no meaningful ``completedAt`` (absent, null, empty, the epoch, or before
  ``createdAt``): read as ``None``;
- a status value outside the documented seven becomes ``BackupStatus.UNKNOWN`` instead of failing the
  whole listing;
- every timestamp is within 1970-01-01..2200-01-01 UTC, so that nothing downstream (``astimezone``,
  ``timestamp()``, arithmetic) can overflow: outside that range a required timestamp makes the item
  invalid and an optional one is unknown (``None``);
- ids used in request paths (projects, addons, destinations) match the documented ``^[A-Za-z0-9-]+$``:
  ``.``, ``..``, an empty id or one with ``/`` would make the client request another endpoint.

The API client validates each item of a listing on its own: an item these models reject is skipped and
counted, the rest of the listing is kept; a value read as unknown because it made no sense is noted in
the validation context (:data:`UNKNOWN_FIELDS`) for the client to count.

Destination credentials are not modelled at all, so they are dropped at parse time and can never reach
a log line, a label or an error message.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from exporter.northflank.routes import valid_id


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


def _status(value: object) -> BackupStatus:
    if isinstance(value, BackupStatus):
        return value
    if not isinstance(value, str):
        raise ValueError("status must be a string")
    try:
        return BackupStatus(value)
    except ValueError:
        return BackupStatus.UNKNOWN


#: Sizes are exported as float64 and summed: 2**63 bytes (8 EiB) and more is no real backup's size.
MAX_SIZE = 2**63 - 1
#: ASCII digits only: ``str.isdigit`` and ``float`` also take "²", "١٢" or "1_000".
_DECIMAL = re.compile(r"[0-9]{1,30}(?:\.[0-9]{0,30})?")
#: Every timestamp the exporter keeps lies in [MIN_TIME, MAX_TIME): far from datetime's limits (years 1
#: and 9999), so converting one to UTC or to a unix time never overflows, and far from any real backup.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
#: Longer than any ISO 8601 timestamp the API sends; longer strings are not parsed at all.
_MAX_TIME_CHARS = 64
#: Retention in days beyond a century is not a retention but a broken value.
MAX_RETENTION_DAYS = 36_500


#: The validation context key of a list to which the validators below append the name of every field
#: they read as unknown because its value made no sense (not a placeholder such as null or the epoch):
#: the API client counts them. Without that context (a plain model_validate) nothing is noted.
UNKNOWN_FIELDS = "unknown_fields"


def _note(info: ValidationInfo) -> None:
    context = info.context
    noted = context.get(UNKNOWN_FIELDS) if isinstance(context, dict) else None
    if isinstance(noted, list):
        noted.append(info.field_name or "?")


class _TimeError(ValueError):
    """A timestamp that is not one; ``early`` when it lies before 1970 (year 1 is Go's zero time, the
    epoch a common placeholder: for an optional field, "not yet" rather than nonsense)."""

    def __init__(self, message: str, *, early: bool = False) -> None:
        super().__init__(message)
        self.early = early


def _size(value: object, info: ValidationInfo) -> int | None:
    """Byte sizes come as strings of ASCII digits; anything that is not a plausible size is unknown."""
    if value is None:
        return None
    number = _plausible_size(value)
    if number is None:
        _note(info)
    return number


def _plausible_size(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    number: int | float
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        number = value
    elif isinstance(value, str):
        text = value.strip(" \t")
        if not _DECIMAL.fullmatch(text):
            return None
        number = float(text) if "." in text else int(text)
    else:
        return None
    if not 0 <= number <= MAX_SIZE:
        return None
    return int(number)


def _parse_time(value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TIME_CHARS or not text.isascii():
            raise _TimeError("timestamp must be an ISO 8601 string")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            # fromisoformat's message quotes the input; validation messages must never carry values.
            raise _TimeError("timestamp must be an ISO 8601 string") from None
    else:
        raise _TimeError("timestamp must be an ISO 8601 string")
    # Checked before any conversion: year 1 at +05:00 or year 9999 at -05:00 overflow astimezone().
    if not MIN_TIME.year - 1 <= parsed.year <= MAX_TIME.year:
        raise _TimeError("timestamp out of range (1970 to 2200)", early=parsed.year < MIN_TIME.year)
    if parsed.tzinfo is None:
        # The API speaks UTC; a timestamp without an offset is read as UTC, not as local time.
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # A tzinfo that is no fixed offset could do anything; an offset of a day or more is no offset.
        offset = parsed.utcoffset()
    except Exception:
        offset = None
    if offset is None or abs(offset) >= timedelta(days=1):
        raise _TimeError("timestamp has an invalid UTC offset")
    utc = (parsed - offset).replace(tzinfo=UTC)
    if not MIN_TIME <= utc < MAX_TIME:
        raise _TimeError("timestamp out of range (1970 to 2200)", early=utc < MIN_TIME)
    return utc


def _optional_time(value: object, info: ValidationInfo) -> datetime | None:
    """For fields that are absent or meaningless while something is in flight: never fail on them.
    A placeholder (null, empty, the epoch or before) is "not yet"; anything else unusable is noted."""
    if value is None or value == "":
        return None
    try:
        parsed = _parse_time(value)
    except _TimeError as error:
        if not error.early:
            _note(info)
        return None
    return None if parsed <= MIN_TIME else parsed


def _epoch_millis(value: object, info: ValidationInfo) -> datetime | None:
    if value is None or value == "" or value == 0:
        return None
    at = _plausible_millis(value)
    if at is None:
        _note(info)
    return at


def _plausible_millis(value: object) -> datetime | None:
    if isinstance(value, bool):
        return None
    millis: float
    if isinstance(value, int | float):
        millis = float(value) if not isinstance(value, int) or abs(value) < 10**30 else math.inf
    elif isinstance(value, str):
        text = value.strip(" \t")
        if not _DECIMAL.fullmatch(text):
            return None
        millis = float(text)
    else:
        return None
    if not (math.isfinite(millis) and 0 < millis < MAX_TIME.timestamp() * 1000):
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _path_id(value: object) -> str:
    """An id that goes into a request path: anything but the documented pattern would reach another
    endpoint (``..``) or none; the message names the pattern, never the value."""
    if not isinstance(value, str) or not valid_id(value):
        raise ValueError("id must match ^[A-Za-z0-9-]+$")
    return value


def _optional_count(value: object) -> int | None:
    """A count the exporter does not rely on: anything but a plausible non-negative integer is unknown."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SIZE:
        return value
    return None


def _not_bool(value: object) -> object:
    if isinstance(value, bool):  # pydantic reads true as 1
        raise ValueError("must be a number, not a boolean")
    return value


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
PathId = Annotated[str, BeforeValidator(_path_id)]
RetentionDays = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=MAX_RETENTION_DAYS)]


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
    id: PathId
    name: str
    description: str | None = None


class AddonSpec(ApiModel):
    type: str


class Addon(ApiModel):
    id: PathId
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
    retention_time: RetentionDays | None = None
    type: str | None = None


class Schedule(ApiModel):
    id: str
    backup_type: str
    backup_compression_type: str | None = None
    additional_destinations: tuple[AdditionalDestination, ...] = ()
    custom_destination_id: str | None = None
    scheduling: Scheduling
    retention_time: RetentionDays
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
    id: PathId | None = None
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
    #: Not relied upon: an odd count must not fail the page.
    count: Annotated[int | None, BeforeValidator(_optional_count)] = None


class ApiErrorBody(ApiModel):
    """The ``error`` object of a non-2xx response. Every field is optional: proxies send anything.

    ``details`` is not modelled: it is free-form, may echo the request (the token), and nothing uses it.
    """

    status: int | None = None
    message: str | None = None
    id: str | None = Field(default=None, validation_alias=AliasChoices("id", "errorId"))


__all__ = [
    "MAX_RETENTION_DAYS",
    "MAX_SIZE",
    "MAX_TIME",
    "MIN_TIME",
    "UNKNOWN_FIELDS",
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

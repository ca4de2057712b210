"""The status page's rows: one per addon, its health (exporter.health) with what the page, the JSON
document and the ``check`` table show of it, every text from the API cleaned. Pure: a function of the
addon and "now".
"""

from __future__ import annotations

import math
from typing import NamedTuple

from exporter.health import AddonHealth, Health, ScheduleHealth, assess
from exporter.snapshot import AddonSnapshot
from exporter.web.status_words import clean, schedule_words

# The rows are NamedTuples, not frozen dataclasses: as immutable, several times faster to build (see
# exporter/health.py), and a first visit builds one per addon and schedule.


class ScheduleRow(NamedTuple):
    id: str
    description: str
    interval: str
    backup_type: str
    retention_seconds: float
    next_run: float | None
    previous_run: float | None
    missed: bool | None
    missed_runs: int | None
    last_missed: float | None


class AddonRow(NamedTuple):
    project_id: str
    project_name: str
    addon_id: str
    addon_name: str
    addon_type: str
    health: AddonHealth
    last_completed_at: float | None
    last_completed_size_bytes: float | None
    last_completed_duration_seconds: float | None
    last_failed_at: float | None
    consecutive_failures: int | None
    in_progress_started_at: float | None
    schedules: tuple[ScheduleRow, ...]
    #: When the backups were last read, and the schedules (None: never).
    backups_read_at: float | None
    schedules_read_at: float | None

    @property
    def state(self) -> Health:
        return self.health.state

    @property
    def read_at(self) -> float | None:
        """How fresh the row is: the older of its two reads (None when either never happened)."""
        if self.backups_read_at is None or self.schedules_read_at is None:
            return None
        return min(self.backups_read_at, self.schedules_read_at)


def _schedule_row(health: ScheduleHealth) -> ScheduleRow:
    s = health.schedule
    try:
        words = schedule_words(s)
    except Exception:  # a schedule built without validation: its id still shows
        words = "?"
    return ScheduleRow(
        id=clean(s.id),
        description=words,
        interval=clean(s.interval),
        backup_type=clean(s.backup_type),
        retention_seconds=_number(s.retention_seconds) or 0.0,
        next_run=health.next_run,
        previous_run=health.previous_run,
        missed=health.newest_missed,
        missed_runs=health.missed_runs,
        last_missed=health.last_missed,
    )


def _number(value: float | None) -> float | None:
    """A finite float, or None: sizes past float64 and NaN are shown as unknown, never as a number."""
    if value is None:
        return None
    if type(value) is float:
        return value if math.isfinite(value) else None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def addon_row(addon: AddonSnapshot, *, now: float, grace: float) -> AddonRow:
    health = assess(addon, now=now, schedule_grace_seconds=grace)
    backups = addon.backups.value if addon.backups is not None else None
    return AddonRow(
        project_id=clean(addon.project_id),
        project_name=clean(addon.project_name),
        addon_id=clean(addon.addon_id),
        addon_name=clean(addon.addon_name),
        addon_type=clean(addon.addon_type),
        health=health,
        last_completed_at=_number(backups.last_completed_at) if backups else None,
        last_completed_size_bytes=_number(backups.last_completed_size_bytes) if backups else None,
        last_completed_duration_seconds=_number(backups.last_completed_duration_seconds) if backups else None,
        last_failed_at=_number(backups.last_failed_at) if backups else None,
        consecutive_failures=backups.consecutive_failures if backups else None,
        in_progress_started_at=_number(backups.in_progress_started_at) if backups else None,
        schedules=tuple(_schedule_row(h) for h in health.schedules),
        backups_read_at=addon.backups.at if addon.backups is not None else None,
        schedules_read_at=addon.schedules.at if addon.schedules is not None else None,
    )


__all__ = ["AddonRow", "ScheduleRow", "addon_row"]

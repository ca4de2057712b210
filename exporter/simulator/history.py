"""What exists at an instant: backups, restores and destination backups, as pure functions of
``(fleet, seed, now)``.

Nothing here keeps state or reads a clock: when ``now`` moves forward, new backups appear (each one
0-2 min after its schedule's run), progress (``in-progress``, size ``"0"``, no completion) and finish
(``completed`` with a size, or ``failed``); old ones leave the retention window. Every random choice is
derived from a hash of (seed, addon, run time, purpose), so a run's outcome never depends on when or
in which order it is asked about.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Literal

from .fleet import DAY, HOUR, AddonSpec, Fleet, ScheduleSpec

#: Each run's duration is log-normal around the addon's typical duration with this sigma.
RUN_DURATION_SIGMA = 0.3
#: A run is initiated between 0 and this many seconds after its scheduled minute.
MAX_START_DELAY = 120.0
#: Completed sizes vary run to run by this (log-normal sigma) and grow by this fraction a day.
SIZE_SIGMA = 0.02
SIZE_GROWTH_PER_DAY = 0.001
#: A failed run fails after this fraction (uniform in the range) of its would-be duration.
FAILURE_POINT = (0.05, 0.9)
#: Restores happen between these offsets before the fleet's start (at most 80% of the retention).
RESTORE_WINDOW = (2 * HOUR, 10 * DAY)

_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Northflank's day 0 is Monday
_NORMAL = NormalDist()

Status = Literal["in-progress", "completed", "failed"]


def unit(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) determined by (seed, parts) alone."""
    key = "|".join([str(seed), *map(str, parts)]).encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def normal(seed: int, *parts: object) -> float:
    """A standard normal number determined by (seed, parts) alone."""
    return _NORMAL.inv_cdf(min(max(unit(seed, *parts), 1e-12), 1 - 1e-12))


def hex_id(seed: int, *parts: object, length: int = 24) -> str:
    key = "|".join(["id", str(seed), *map(str, parts)]).encode()
    return hashlib.blake2b(key, digest_size=(length + 1) // 2).hexdigest()[:length]


def uuid_like(seed: int, *parts: object) -> str:
    h = hex_id(seed, "uuid", *parts, length=32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def iso(t: float) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, like the API."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def weekday(t: float) -> int:
    """Northflank's day of the week of a unix time (UTC): 0 is Monday, 6 is Sunday."""
    return (math.floor(t / DAY) + _EPOCH_WEEKDAY) % 7


def scheduled_runs(schedule: ScheduleSpec, lo: float, hi: float) -> list[int]:
    """The schedule's run instants t with lo <= t <= hi, ascending (UTC, whole seconds)."""
    if hi < lo:
        return []
    hours = schedule.hours if schedule.interval != "hourly" else tuple(range(24))
    days = set(schedule.days) if schedule.interval == "weekly" else None
    offsets = sorted({h * 3600 + m * 60 for h in hours for m in schedule.minutes})
    runs: list[int] = []
    for day in range(math.floor(lo / DAY), math.floor(hi / DAY) + 1):
        if days is not None and (day + _EPOCH_WEEKDAY) % 7 not in days:
            continue
        base = day * 86_400
        runs.extend(base + o for o in offsets if lo <= base + o <= hi)
    return runs


@dataclass(frozen=True)
class BackupRecord:
    id: str
    uid: str
    name: str
    project_id: str
    addon_id: str
    #: None for a manual backup.
    schedule_id: str | None
    #: The scheduled instant of the run (for a manual backup, its initiation).
    run_at: float
    created_at: float
    completed_at: float | None
    status: Status
    #: Bytes; 0 while in progress and for failures.
    size: int
    backup_type: str
    compression: str | None
    source_type: str
    addon_version: str
    custom_destination_id: str | None
    retention_days: int

    @property
    def expires_at(self) -> float:
        return self.created_at + self.retention_days * DAY


@dataclass(frozen=True)
class RestoreRecord:
    #: Unix milliseconds, as the API's restore ids are.
    id: int
    addon_id: str
    backup_id: str
    restore_at: float
    completed_at: float | None
    status: Status


@dataclass(frozen=True)
class DestinationBackupRecord:
    backup: BackupRecord
    destination_id: str
    schedule: ScheduleSpec
    expires_at: float


def _round_ms(t: float) -> float:
    return math.floor(t * 1000) / 1000


def _stuck_run(fleet: Fleet, addon: AddonSpec, schedule: ScheduleSpec) -> int | None:
    if addon.stuck_since is None:
        return None
    since = fleet.anchor + addon.stuck_since
    runs = scheduled_runs(schedule, since, since + 8 * DAY)
    return runs[0] if runs else None


def _missed_at_random(
    addon: AddonSpec, seed: int, *, key: str, run_at: int, schedule: ScheduleSpec | None
) -> bool:
    return (
        schedule is not None
        and addon.miss_rate > 0
        and unit(seed, addon.id, key, run_at, "missed") < addon.miss_rate
    )


def _run(
    fleet: Fleet,
    addon: AddonSpec,
    seed: int,
    now: float,
    *,
    key: str,
    run_at: int,
    schedule: ScheduleSpec | None,
    retention_days: int,
    stuck: bool = False,
) -> BackupRecord | None:
    """The backup of one run as it is at ``now``, or None if it does not exist (yet, or any more)."""
    start = fleet.anchor
    if addon.stopped_since is not None and run_at >= start + addon.stopped_since:
        return None
    if not stuck and _missed_at_random(addon, seed, key=key, run_at=run_at, schedule=schedule):
        return None
    delay = 0.0 if schedule is None else unit(seed, addon.id, key, run_at, "delay") * MAX_START_DELAY
    created = _round_ms(run_at + delay)
    if created > now or created + retention_days * DAY <= now:
        return None
    duration = addon.typical_duration * math.exp(
        RUN_DURATION_SIGMA * normal(seed, addon.id, key, run_at, "duration")
    )
    failed = (addon.failing_since is not None and run_at >= start + addon.failing_since) or unit(
        seed, addon.id, key, run_at, "fails"
    ) < addon.failure_rate
    if failed:
        lo, hi = FAILURE_POINT
        duration *= lo + (hi - lo) * unit(seed, addon.id, key, run_at, "failure-point")
    end = _round_ms(created + max(duration, 1.0))

    status: Status
    completed_at: float | None
    size = 0
    if stuck or now < end:
        status, completed_at = "in-progress", None
    elif failed:
        status, completed_at = "failed", end
    else:
        status, completed_at = "completed", end
        days = (run_at - start) / DAY
        growth = max(0.5, 1 + SIZE_GROWTH_PER_DAY * days)
        factor = growth * math.exp(SIZE_SIGMA * normal(seed, addon.id, key, run_at, "size"))
        if addon.size_drop_since is not None and run_at >= start + addon.size_drop_since:
            factor *= addon.size_drop_factor
        if schedule is not None and schedule.backup_type == "snapshot":
            factor *= 1.4  # a snapshot holds the whole volume, not a compressed dump
        size = max(1, int(addon.typical_size * factor))

    backup_type = schedule.backup_type if schedule is not None else "dump"
    stamp = datetime.fromtimestamp(run_at, UTC).strftime("%Y%m%d-%H%M")
    kind = schedule.interval if schedule is not None else "manual"
    return BackupRecord(
        id=hex_id(seed, addon.id, key, run_at),
        uid=uuid_like(seed, addon.id, key, run_at),
        name=f"{kind}-{backup_type}-{stamp}",
        project_id=addon.project_id,
        addon_id=addon.id,
        schedule_id=schedule.id if schedule is not None else None,
        run_at=float(run_at),
        created_at=created,
        completed_at=completed_at,
        status=status,
        size=size,
        backup_type=backup_type,
        compression=(schedule.compression if schedule is not None else "gz")
        if backup_type == "dump"
        else None,
        source_type="snapshot" if backup_type == "snapshot" else "liveInstance",
        addon_version=addon.addon_version,
        custom_destination_id=schedule.custom_destination_id if schedule is not None else None,
        retention_days=retention_days,
    )


def schedule_backups(
    fleet: Fleet,
    addon: AddonSpec,
    schedule: ScheduleSpec,
    seed: int,
    now: float,
    retention_days: int | None = None,
) -> list[BackupRecord]:
    """The backups of one schedule's runs that exist at ``now``, oldest run first."""
    start = fleet.anchor
    retention = schedule.retention_days if retention_days is None else retention_days
    lo = max(
        now - retention * DAY - MAX_START_DELAY, start + schedule.created_offset, start + addon.created_offset
    )
    stuck_run = _stuck_run(fleet, addon, schedule)
    records: list[BackupRecord] = []
    for run_at in scheduled_runs(schedule, lo, now):
        if stuck_run is not None and run_at > stuck_run:
            break  # the addon is busy with the stuck backup: later runs are skipped
        record = _run(
            fleet,
            addon,
            seed,
            now,
            key=schedule.id,
            run_at=run_at,
            schedule=schedule,
            retention_days=retention,
            stuck=run_at == stuck_run,
        )
        if record is not None:
            records.append(record)
    return records


def skipped_runs(
    fleet: Fleet, addon: AddonSpec, schedule: ScheduleSpec, seed: int, lo: float, hi: float
) -> list[int]:
    """The runs of the schedule with lo <= run <= hi that initiated no backup, ascending: the truth
    a missed-run report is checked against. A run is skipped at random (``miss_rate``), once the addon
    stopped (``stopped_since``), or while a stuck backup blocks the schedule (``stuck_since``). Runs
    before the schedule or the addon existed are no runs."""
    start = fleet.anchor
    lo = max(lo, start + schedule.created_offset, start + addon.created_offset)
    stuck_run = _stuck_run(fleet, addon, schedule)
    skipped: list[int] = []
    for run_at in scheduled_runs(schedule, lo, hi):
        if (
            (stuck_run is not None and run_at > stuck_run)
            or (addon.stopped_since is not None and run_at >= start + addon.stopped_since)
            or (
                run_at != stuck_run
                and _missed_at_random(addon, seed, key=schedule.id, run_at=run_at, schedule=schedule)
            )
        ):
            skipped.append(run_at)
    return skipped


def manual_backups(fleet: Fleet, addon: AddonSpec, seed: int, now: float) -> list[BackupRecord]:
    """An unscheduled addon's manual backups: one a day, at a pseudo-random time of that (UTC) day."""
    if addon.schedules or not addon.manual_backups:
        return []
    start = fleet.anchor
    lo = max(now - addon.manual_retention_days * DAY, start + addon.created_offset)
    records: list[BackupRecord] = []
    for day in range(math.floor(lo / DAY), math.floor(now / DAY) + 1):
        run_at = day * 86_400 + int(unit(seed, addon.id, "manual", day) * 86_400)
        if run_at < lo:
            continue
        record = _run(
            fleet,
            addon,
            seed,
            now,
            key="manual",
            run_at=run_at,
            schedule=None,
            retention_days=addon.manual_retention_days,
        )
        if record is not None:
            records.append(record)
    return records


def addon_backups(fleet: Fleet, addon: AddonSpec, seed: int, now: float) -> list[BackupRecord]:
    """Every backup of the addon that exists at ``now`` (scheduled runs and manual backups)."""
    records: list[BackupRecord] = []
    for schedule in addon.schedules:
        records.extend(schedule_backups(fleet, addon, schedule, seed, now))
    records.extend(manual_backups(fleet, addon, seed, now))
    return records


def addon_restores(fleet: Fleet, addon: AddonSpec, seed: int, now: float) -> list[RestoreRecord]:
    """The addon's restores that have begun by ``now``.

    Each of the addon's ``restores`` happened at a fixed time before the fleet's start and restored the
    latest backup completed by then (a restore with no such backup did not happen). They mostly
    complete; ``restore_failure_rate`` of them fail, and with ``failed_restore`` the latest one does.
    """
    start = fleet.anchor
    lo, hi = RESTORE_WINDOW
    # Within the retention, so that the restored backup usually still exists at the start.
    retention = max([s.retention_days for s in addon.schedules] or [addon.manual_retention_days]) * DAY
    hi = max(lo, min(hi, 0.8 * retention))
    times = sorted(
        _round_ms(start - (lo + (hi - lo) * unit(seed, addon.id, "restore", i)))
        for i in range(addon.restores)
    )
    records: list[RestoreRecord] = []
    for index, restore_at in enumerate(times):
        if restore_at > now:
            continue
        done = [
            b
            for b in addon_backups(fleet, addon, seed, restore_at)
            if b.status == "completed" and b.completed_at is not None
        ]
        if not done:
            continue
        backup = max(done, key=lambda b: (b.completed_at or 0.0, b.id))
        duration = (
            1.5
            * addon.typical_duration
            * math.exp(RUN_DURATION_SIGMA * normal(seed, addon.id, "restore-duration", restore_at))
        )
        end = _round_ms(restore_at + duration)
        failed = (addon.failed_restore and index == len(times) - 1) or unit(
            seed, addon.id, "restore-fails", restore_at
        ) < addon.restore_failure_rate
        status: Status = "in-progress" if now < end else "failed" if failed else "completed"
        records.append(
            RestoreRecord(
                id=round(restore_at * 1000),
                addon_id=addon.id,
                backup_id=backup.id,
                restore_at=restore_at,
                completed_at=None if status == "in-progress" else end,
                status=status,
            )
        )
    return records


def destination_backups(
    fleet: Fleet, destination_id: str, seed: int, now: float
) -> list[DestinationBackupRecord]:
    """The backups stored in a destination at ``now``: those of every schedule that targets it
    (``customDestinationId`` or ``additionalDestinations``), kept for that target's retention."""
    records: list[DestinationBackupRecord] = []
    for addon in fleet.addons:
        for schedule in addon.schedules:
            retention = schedule.targets(destination_id)
            if retention is None:
                continue
            for backup in schedule_backups(fleet, addon, schedule, seed, now, retention):
                records.append(
                    DestinationBackupRecord(
                        backup=backup,
                        destination_id=destination_id,
                        schedule=schedule,
                        expires_at=backup.created_at + retention * DAY,
                    )
                )
    return records


__all__ = [
    "MAX_START_DELAY",
    "RUN_DURATION_SIGMA",
    "BackupRecord",
    "DestinationBackupRecord",
    "RestoreRecord",
    "addon_backups",
    "addon_restores",
    "destination_backups",
    "hex_id",
    "iso",
    "manual_backups",
    "normal",
    "schedule_backups",
    "scheduled_runs",
    "skipped_runs",
    "unit",
    "uuid_like",
    "weekday",
]

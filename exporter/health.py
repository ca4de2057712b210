"""An addon's health: one state, from a snapshot's addon and "now", by the rules of the shipped alerts.

The status page, ``/api/v1/addons`` and the ``check`` subcommand all judge an addon here, with the
conditions and thresholds of the per-addon backup alerts in ``prometheus/alerts.yml`` (a test parses
that file and compares it with the constants below, so the two cannot drift). Pure: no clock, no I/O.

Which alerts this mirrors ("backup alerts", :data:`MIRRORED_ALERTS`): NorthflankBackupTooOld,
LastAttemptFailed, FailingRepeatedly, ScheduledRunMissed(Repeatedly), NoSchedule, NeverCompleted and
StuckInProgress. Not mirrored: SizeDropped (it needs seven days of history the exporter does not keep),
RestoreFailed (restores, not backups), FutureDated (a data anomaly, shown on /metrics), the per-destination
DestinationStale, and every NorthflankExporter* alert (the exporter's own health, shown at the top of the
page instead).

A state is shown as soon as its condition holds; the alert fires once it has held for the rule's
``for:``. :attr:`Problem.alert_at` says when that is, where the data tells when the condition began.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from exporter.schedule import judge_runs, judged_from, lookback_seconds
from exporter.snapshot import AddonSnapshot, BackupSummary, ScheduleSummary


class Health(enum.Enum):
    """Worst first: the order of the page and of the check's table."""

    STALE = "stale"
    NEVER_COMPLETED = "never_completed"
    FAILING_REPEATEDLY = "failing_repeatedly"
    SCHEDULED_RUN_MISSED = "scheduled_run_missed"
    LAST_ATTEMPT_FAILED = "last_attempt_failed"
    STUCK = "stuck"
    NO_SCHEDULE = "no_schedule"
    NOT_READ_YET = "not_read_yet"
    IN_PROGRESS = "in_progress"
    OK = "ok"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def is_problem(self) -> bool:
        """A condition of one of the mirrored alerts holds."""
        return self not in _NOT_PROBLEMS

    @property
    def is_ok(self) -> bool:
        """Nothing wrong that the data shows (a backup running counts as OK)."""
        return self in (Health.OK, Health.IN_PROGRESS)


_LABELS: Mapping[Health, str] = MappingProxyType(
    {
        Health.STALE: "stale",
        Health.NEVER_COMPLETED: "never completed",
        Health.FAILING_REPEATEDLY: "failing repeatedly",
        Health.SCHEDULED_RUN_MISSED: "scheduled run missed",
        Health.LAST_ATTEMPT_FAILED: "last attempt failed",
        Health.STUCK: "stuck",
        Health.NO_SCHEDULE: "no schedule",
        Health.NOT_READ_YET: "not read yet",
        Health.IN_PROGRESS: "in progress",
        Health.OK: "ok",
    }
)
_RANKS: Mapping[Health, int] = MappingProxyType({h: i for i, h in enumerate(Health)})
_NOT_PROBLEMS = frozenset({Health.OK, Health.IN_PROGRESS, Health.NOT_READ_YET})

# --- the thresholds of prometheus/alerts.yml (checked against it by tests/unit/test_health.py) -------

#: NorthflankBackupTooOld: the longest interval of the addon's schedules plus this share of it...
TOO_OLD_MARGIN_RATIO = 0.25
#: ... but at least this margin; an addon without a schedule may reach this age.
TOO_OLD_MIN_MARGIN_SECONDS = 3600.0
TOO_OLD_UNSCHEDULED_SECONDS = 129_600.0
#: NorthflankBackupFailingRepeatedly: this many consecutive failures.
FAILING_REPEATEDLY_THRESHOLD = 3
#: NorthflankBackupScheduledRunMissedRepeatedly: this many missed runs of one schedule in 24 h.
MISSED_REPEATEDLY_THRESHOLD = 3
#: NorthflankBackupStuckInProgress: a backup in progress for longer than this.
STUCK_SECONDS = 21_600.0

#: Each state's alert(s) and their ``for:`` in seconds.
ALERTS: Mapping[Health, tuple[str, ...]] = MappingProxyType(
    {
        Health.STALE: ("NorthflankBackupTooOld",),
        Health.NEVER_COMPLETED: ("NorthflankBackupNeverCompleted",),
        Health.FAILING_REPEATEDLY: ("NorthflankBackupFailingRepeatedly",),
        Health.SCHEDULED_RUN_MISSED: (
            "NorthflankBackupScheduledRunMissed",
            "NorthflankBackupScheduledRunMissedRepeatedly",
        ),
        Health.LAST_ATTEMPT_FAILED: ("NorthflankBackupLastAttemptFailed",),
        Health.STUCK: ("NorthflankBackupStuckInProgress",),
        Health.NO_SCHEDULE: ("NorthflankBackupNoSchedule",),
    }
)
FOR_SECONDS: Mapping[str, float] = MappingProxyType(
    {
        "NorthflankBackupTooOld": 900.0,
        "NorthflankBackupLastAttemptFailed": 600.0,
        "NorthflankBackupFailingRepeatedly": 300.0,
        "NorthflankBackupScheduledRunMissed": 300.0,
        "NorthflankBackupScheduledRunMissedRepeatedly": 300.0,
        "NorthflankBackupNoSchedule": 3600.0,
        "NorthflankBackupNeverCompleted": 86_400.0,
        "NorthflankBackupStuckInProgress": 600.0,
    }
)
MIRRORED_ALERTS = frozenset(FOR_SECONDS)


@dataclass(frozen=True, slots=True)
class Problem:
    state: Health
    #: The alerts whose condition holds (ScheduledRunMissed, and Repeatedly when it is 3 or more).
    alerts: tuple[str, ...]
    #: When the condition began, where the data says (else None).
    since: float | None

    @property
    def alert_at(self) -> float | None:
        """When the alert fires if the condition lasts: ``since`` plus the rule's ``for:``."""
        if self.since is None:
            return None
        return self.since + max(FOR_SECONDS[a] for a in self.alerts)


# ScheduleHealth and AddonHealth are NamedTuples rather than frozen dataclasses: as immutable, but built
# several times faster (a frozen dataclass sets each field through object.__setattr__), and the status
# page's first visit builds one per addon and schedule.


class ScheduleHealth(NamedTuple):
    schedule: ScheduleSummary
    next_run: float | None
    previous_run: float | None
    #: Whether the newest run whose grace has ended was missed (None: cannot be judged).
    newest_missed: bool | None
    #: Runs missed in the last 24 h (None: cannot be judged).
    missed_runs: int | None
    last_missed: float | None
    #: Everything above holds until just before this instant.
    valid_until: float = math.inf


class AddonHealth(NamedTuple):
    state: Health
    #: Every condition that holds, worst first (empty when the state is not a problem).
    problems: tuple[Problem, ...]
    schedules: tuple[ScheduleHealth, ...]
    #: The age the newest completed backup may reach (None: unknown until the schedules are read).
    allowed_age_seconds: float | None
    #: The assessment holds from when it was made until just before this instant (for caches).
    valid_until: float = math.inf

    @property
    def alerts(self) -> frozenset[str]:
        return frozenset(a for p in self.problems for a in p.alerts)


def allowed_age_seconds(schedules: tuple[ScheduleSummary, ...]) -> float:
    """NorthflankBackupTooOld's threshold for an addon whose schedules are known."""
    if not schedules:
        return TOO_OLD_UNSCHEDULED_SECONDS
    return max(
        s.calendar.max_interval_seconds
        + max(s.calendar.max_interval_seconds * TOO_OLD_MARGIN_RATIO, TOO_OLD_MIN_MARGIN_SECONDS)
        for s in schedules
    )


def _schedule_health(
    schedule: ScheduleSummary, backups: BackupSummary | None, *, now: float, grace: float
) -> ScheduleHealth:
    """What the collector exposes for one schedule (next, previous, missed), computed the same way."""
    calendar = schedule.calendar
    try:
        next_run: float | None = calendar.next_run(now)
        previous_run: float | None = calendar.previous_run(now)
    except (ValueError, OverflowError):
        next_run = previous_run = None
    # The next and previous runs change when the next run comes.
    until = next_run if next_run is not None else math.inf
    if backups is None or backups.listed_at is None:
        return ScheduleHealth(schedule, next_run, previous_run, None, None, None, until)
    try:
        initiated = backups.initiated_for(schedule.backup_type)
        verdicts = judge_runs(
            calendar,
            initiated=initiated,
            now=now,
            grace_seconds=grace,
            not_before=judged_from(
                active_since=schedule.active_since,
                listed_at=backups.listed_at,
                retention_seconds=schedule.retention_seconds,
                complete_since=backups.initiations_since,
                oldest_initiated=initiated[0] if initiated else None,
            ),
            lookback_seconds=lookback_seconds(calendar),
            listed_at=backups.listed_at,
        )
    except (ValueError, OverflowError, TypeError):  # hostile numbers: no verdict, as on /metrics
        return ScheduleHealth(schedule, next_run, previous_run, None, None, None, until)
    return ScheduleHealth(
        schedule,
        next_run,
        previous_run,
        verdicts.newest_missed,
        verdicts.recent_missed,
        verdicts.last_missed,
        min(until, verdicts.valid_until),
    )


def _crossing(threshold: float, now: float) -> float:
    """Until when a condition ``now > threshold`` (false until then, true for good after) keeps its value."""
    return math.nextafter(threshold, math.inf) if now <= threshold else math.inf


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def assess(addon: AddonSnapshot, *, now: float, schedule_grace_seconds: float) -> AddonHealth:
    """The addon's health at ``now``: the worst condition that holds, with all the others."""
    backups = addon.backups.value if addon.backups is not None else None
    schedules = addon.schedules.value if addon.schedules is not None else None
    problems: list[Problem] = []
    schedule_health = tuple(
        _schedule_health(s, backups, now=now, grace=schedule_grace_seconds) for s in schedules or ()
    )
    allowed: float | None = None
    until = min((h.valid_until for h in schedule_health), default=math.inf)
    if schedules is not None:
        try:
            allowed = allowed_age_seconds(schedules)
        except (ValueError, OverflowError):
            allowed = None
        if not schedules:
            problems.append(Problem(Health.NO_SCHEDULE, ALERTS[Health.NO_SCHEDULE], None))

    if backups is not None:
        last = _finite(backups.last_completed_at)
        if last is not None and allowed is not None:
            if max(0.0, now - last) > allowed:
                problems.append(Problem(Health.STALE, ALERTS[Health.STALE], last + allowed))
            until = min(until, _crossing(last + allowed, now))
        if backups.last_completed_at is None and schedules:
            since = min((s.active_since for s in schedules if s.active_since is not None), default=None)
            problems.append(Problem(Health.NEVER_COMPLETED, ALERTS[Health.NEVER_COMPLETED], since))
        if backups.consecutive_failures >= FAILING_REPEATEDLY_THRESHOLD:
            failing = ALERTS[Health.FAILING_REPEATEDLY]
            problems.append(Problem(Health.FAILING_REPEATEDLY, failing, _finite(backups.last_failed_at)))
        failed = backups.last_failed_at
        if failed is not None and (backups.last_completed_at is None or failed > backups.last_completed_at):
            failed_alerts = ALERTS[Health.LAST_ATTEMPT_FAILED]
            problems.append(Problem(Health.LAST_ATTEMPT_FAILED, failed_alerts, _finite(failed)))
        started = _finite(backups.in_progress_started_at)
        if started is not None:
            if now - started > STUCK_SECONDS:
                problems.append(Problem(Health.STUCK, ALERTS[Health.STUCK], started + STUCK_SECONDS))
            until = min(until, _crossing(started + STUCK_SECONDS, now))

    missed = [h for h in schedule_health if h.missed_runs]
    if missed:
        names = ALERTS[Health.SCHEDULED_RUN_MISSED]
        repeated = any((h.missed_runs or 0) >= MISSED_REPEATEDLY_THRESHOLD for h in missed)
        newest = max((h.last_missed for h in missed if h.last_missed is not None), default=None)
        problems.append(
            Problem(
                Health.SCHEDULED_RUN_MISSED,
                names if repeated else names[:1],
                newest + schedule_grace_seconds if newest is not None else None,
            )
        )

    problems.sort(key=lambda p: p.state.rank)
    if problems:
        state = problems[0].state
    elif backups is None or schedules is None:
        state = Health.NOT_READ_YET
    elif backups.in_progress_started_at is not None:
        state = Health.IN_PROGRESS
    else:
        state = Health.OK
    return AddonHealth(state, tuple(problems), schedule_health, allowed, until)


__all__ = [
    "ALERTS",
    "FAILING_REPEATEDLY_THRESHOLD",
    "FOR_SECONDS",
    "MIRRORED_ALERTS",
    "MISSED_REPEATEDLY_THRESHOLD",
    "STUCK_SECONDS",
    "TOO_OLD_MARGIN_RATIO",
    "TOO_OLD_MIN_MARGIN_SECONDS",
    "TOO_OLD_UNSCHEDULED_SECONDS",
    "AddonHealth",
    "Health",
    "Problem",
    "ScheduleHealth",
    "allowed_age_seconds",
    "assess",
]

"""exporter/health.py: the states, their order, and their agreement with prometheus/alerts.yml.

The thresholds and ``for:`` durations are read from the shipped alert rules and compared with the
constants the health module uses, so that a change to one without the other fails here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType

import pytest

from exporter.collector import SnapshotRenderer
from exporter.durations import parse_duration
from exporter.health import (
    ALERTS,
    FAILING_REPEATEDLY_THRESHOLD,
    FOR_SECONDS,
    MIRRORED_ALERTS,
    MISSED_REPEATEDLY_THRESHOLD,
    STUCK_SECONDS,
    TOO_OLD_MARGIN_RATIO,
    TOO_OLD_MIN_MARGIN_SECONDS,
    TOO_OLD_UNSCHEDULED_SECONDS,
    Health,
    allowed_age_seconds,
    assess,
)
from exporter.northflank.models import BackupStatus
from exporter.schedule import DAY, HOUR, ScheduleCalendar
from exporter.snapshot import AddonSnapshot, BackupSummary, Fetched, ScheduleSummary
from tests.e2e.binaries import alert_rules
from tests.status_support import read_fleet
from tests.support import MONDAY_NOON, parse_samples

NOW = MONDAY_NOON
GRACE = 7200.0

#: Per-addon backup alerts the page does not mirror, and why (see exporter/health.py).
NOT_MIRRORED = {
    "NorthflankBackupSizeDropped": "needs 7 days of history",
    "NorthflankBackupRestoreFailed": "restores, not backups",
    "NorthflankBackupFutureDated": "a data anomaly",
    "NorthflankBackupDestinationStale": "per destination",
}


def _rules() -> dict[str, dict[str, object]]:
    return {str(r["alert"]): r for r in alert_rules()}


def _expr(name: str) -> str:
    return " ".join(str(_rules()[name]["expr"]).split())


# --- agreement with alerts.yml -----------------------------------------------------------------------


def test_every_backup_alert_is_mirrored_or_excluded_on_purpose() -> None:
    backup_alerts = {name for name in _rules() if name.startswith("NorthflankBackup")}
    assert backup_alerts == MIRRORED_ALERTS | set(NOT_MIRRORED)
    assert {a for names in ALERTS.values() for a in names} == MIRRORED_ALERTS


@pytest.mark.parametrize("name", sorted(MIRRORED_ALERTS))
def test_for_durations_match_the_rules(name: str) -> None:
    assert parse_duration(str(_rules()[name]["for"])) == FOR_SECONDS[name]


def test_thresholds_match_the_rule_expressions() -> None:
    too_old = _expr("NorthflankBackupTooOld")
    margin = re.search(
        r"clamp_min\(\s*northflank_addon_backup_schedule_max_interval_seconds \* ([0-9.]+), (\d+)\)", too_old
    )
    assert margin is not None, too_old
    assert float(margin.group(1)) == TOO_OLD_MARGIN_RATIO
    assert float(margin.group(2)) == TOO_OLD_MIN_MARGIN_SECONDS
    assert re.search(r"\* 0 \+ (\d+)", too_old).group(1) == f"{TOO_OLD_UNSCHEDULED_SECONDS:.0f}"  # type: ignore[union-attr]
    assert "northflank_addon_backup_last_completed_age_seconds >" in too_old

    failing = _expr("NorthflankBackupFailingRepeatedly")
    assert f"northflank_addon_backup_consecutive_failures >= {FAILING_REPEATEDLY_THRESHOLD})" in failing
    assert "northflank_addon_backup_schedule_missed_runs > 0)" in _expr("NorthflankBackupScheduledRunMissed")
    repeatedly = _expr("NorthflankBackupScheduledRunMissedRepeatedly")
    assert f"northflank_addon_backup_schedule_missed_runs >= {MISSED_REPEATEDLY_THRESHOLD})" in repeatedly
    stuck = _expr("NorthflankBackupStuckInProgress")
    assert f"northflank_addon_backup_in_progress_started_timestamp_seconds > {STUCK_SECONDS:.0f})" in stuck
    assert "northflank_addon_backup_schedule_covered == 0)" in _expr("NorthflankBackupNoSchedule")
    never = _expr("NorthflankBackupNeverCompleted")
    last_completed = "northflank_addon_backup_last_completed_timestamp_seconds"
    assert f"northflank_addon_backup_schedule_covered == 1 unless {last_completed}" in never
    failed = _expr("NorthflankBackupLastAttemptFailed")
    assert f"northflank_addon_backup_last_failed_timestamp_seconds > {last_completed}" in failed


# --- the states --------------------------------------------------------------------------------------


def _summary(**changes: object) -> BackupSummary:
    base = BackupSummary(counts=MappingProxyType(dict.fromkeys(BackupStatus, 0)), listed_at=NOW)
    return replace(base, **changes)  # type: ignore[arg-type]


def _schedule(period: int = DAY, offsets: tuple[int, ...] = (2 * HOUR,)) -> ScheduleSummary:
    return ScheduleSummary(
        id="s1",
        interval={HOUR: "hourly", DAY: "daily"}[period],
        backup_type="dump",
        compression="gzip",
        retention_seconds=7 * DAY,
        calendar=ScheduleCalendar(period, offsets),
        active_since=NOW - 30 * DAY,
    )


def _addon(
    backups: BackupSummary | None, schedules: tuple[ScheduleSummary, ...] | None = None
) -> AddonSnapshot:
    return AddonSnapshot(
        project_id="p",
        project_name="P",
        addon_id="a",
        addon_name="A",
        addon_type="postgresql",
        backups=Fetched(backups, NOW) if backups is not None else None,
        schedules=Fetched(schedules, NOW) if schedules is not None else None,
    )


def _state(backups: BackupSummary | None, schedules: tuple[ScheduleSummary, ...] | None = None) -> Health:
    return assess(_addon(backups, schedules), now=NOW, schedule_grace_seconds=GRACE).state


def _daily_initiations(days: int = 10) -> dict[str, object]:
    """A daily 02:00 schedule's backups, every run taken, up to now."""
    last_run = ScheduleCalendar(DAY, (2 * HOUR,)).previous_run(NOW)
    times = tuple(last_run - d * DAY + 60 for d in range(days - 1, -1, -1))
    return {
        "initiations": MappingProxyType({"dump": times}),
        "initiations_since": NOW - 35 * DAY,
        "last_completed_at": times[-1] + 600,
    }


def test_allowed_age_is_the_alert_threshold() -> None:
    assert allowed_age_seconds(()) == 129_600
    assert allowed_age_seconds((_schedule(),)) == DAY + 0.25 * DAY
    assert allowed_age_seconds((_schedule(HOUR, (0,)),)) == HOUR + 3600  # the 1 h floor


def test_ok_and_in_progress() -> None:
    assert _state(_summary(**_daily_initiations()), (_schedule(),)) is Health.OK
    running = _summary(**_daily_initiations(), in_progress_started_at=NOW - 60)
    assert _state(running, (_schedule(),)) is Health.IN_PROGRESS
    assert [h for h in Health if h.is_ok] == [Health.IN_PROGRESS, Health.OK]


def test_stale_exactly_past_the_allowed_age() -> None:
    allowed = allowed_age_seconds((_schedule(),))
    at_limit = _summary(**{**_daily_initiations(), "last_completed_at": NOW - allowed})
    past = _summary(**{**_daily_initiations(), "last_completed_at": NOW - allowed - 1})
    assert _state(at_limit, (_schedule(),)) is Health.OK
    assert _state(past, (_schedule(),)) is Health.STALE
    # Unscheduled: the fixed 36 h, and "no schedule" is the lesser problem.
    old = assess(_addon(_summary(last_completed_at=NOW - 129_601), ()), now=NOW, schedule_grace_seconds=GRACE)
    assert [p.state for p in old.problems] == [Health.STALE, Health.NO_SCHEDULE]
    # Schedules not read yet: no threshold, as the alert has none.
    assert _state(_summary(last_completed_at=NOW - 100 * DAY), None) is Health.NOT_READ_YET


def test_failures() -> None:
    base = _daily_initiations()
    two = _summary(**base, consecutive_failures=2, last_failed_at=NOW - 10)
    three = _summary(**base, consecutive_failures=3, last_failed_at=NOW - 10)
    assert _state(two, (_schedule(),)) is Health.LAST_ATTEMPT_FAILED
    assert _state(three, (_schedule(),)) is Health.FAILING_REPEATEDLY
    older = _summary(**{**base, "last_failed_at": float(base["last_completed_at"]) - 1})  # type: ignore[arg-type]
    assert _state(older, (_schedule(),)) is Health.OK
    never = _summary(last_failed_at=NOW - 10, consecutive_failures=1)
    assert _state(never, ()) is Health.LAST_ATTEMPT_FAILED


def test_stuck_after_six_hours() -> None:
    base = _daily_initiations()
    assert (
        _state(_summary(**base, in_progress_started_at=NOW - STUCK_SECONDS), (_schedule(),))
        is Health.IN_PROGRESS
    )
    stuck = assess(
        _addon(_summary(**base, in_progress_started_at=NOW - STUCK_SECONDS - 1), (_schedule(),)),
        now=NOW,
        schedule_grace_seconds=GRACE,
    )
    assert stuck.state is Health.STUCK
    assert stuck.problems[0].since == NOW - 1
    assert stuck.problems[0].alert_at == NOW - 1 + 600


def test_never_completed_needs_a_schedule_and_a_listing() -> None:
    assert _state(_summary(), (_schedule(),)) is Health.NEVER_COMPLETED
    assert _state(_summary(), ()) is Health.NO_SCHEDULE
    assert _state(None, (_schedule(),)) is Health.NOT_READ_YET
    assert _state(None, None) is Health.NOT_READ_YET


def test_scheduled_run_missed_and_repeatedly() -> None:
    hourly = _schedule(HOUR, (0,))
    last_run = hourly.calendar.previous_run(NOW)
    every = tuple(last_run - h * HOUR + 30 for h in range(47, -1, -1))
    taken = _summary(
        initiations=MappingProxyType({"dump": every}),
        initiations_since=NOW - 35 * DAY,
        last_completed_at=every[-1] + 60,
    )
    assert _state(taken, (replace(hourly, active_since=NOW - 30 * DAY),)) is Health.OK

    def without(missing: int) -> AddonSnapshot:
        # Leave out runs between 4 and 4 + missing hours ago: their grace (2 h) has ended.
        kept = tuple(t for t in every if not (NOW - (4 + missing) * HOUR < t < NOW - 4 * HOUR))
        return _addon(replace(taken, initiations=MappingProxyType({"dump": kept})), (hourly,))

    one = assess(without(1), now=NOW, schedule_grace_seconds=GRACE)
    assert one.state is Health.SCHEDULED_RUN_MISSED
    assert one.alerts == {"NorthflankBackupScheduledRunMissed"}
    three = assess(without(3), now=NOW, schedule_grace_seconds=GRACE)
    assert three.alerts == {
        "NorthflankBackupScheduledRunMissed",
        "NorthflankBackupScheduledRunMissedRepeatedly",
    }
    assert three.schedules[0].missed_runs == 3


def test_states_are_ordered_worst_first_and_problems_sorted() -> None:
    assert list(Health)[::9] == [Health.STALE, Health.OK]
    assert [h for h in Health if not h.is_problem] == [Health.NOT_READ_YET, Health.IN_PROGRESS, Health.OK]
    everything = _summary(
        consecutive_failures=5, last_failed_at=NOW - 10, in_progress_started_at=NOW - 2 * STUCK_SECONDS
    )
    health = assess(_addon(everything, (_schedule(),)), now=NOW, schedule_grace_seconds=GRACE)
    ranks = [p.state.rank for p in health.problems]
    assert ranks == sorted(ranks)
    assert health.state is Health.NEVER_COMPLETED
    assert {p.state for p in health.problems} == {
        Health.NEVER_COMPLETED,
        Health.FAILING_REPEATEDLY,
        Health.SCHEDULED_RUN_MISSED,  # a schedule active for 30 days with no backup at all
        Health.LAST_ATTEMPT_FAILED,
        Health.STUCK,
    }


async def test_missed_runs_agree_with_the_exposition() -> None:
    """The health module judges runs as the collector does: the same counts for a whole fleet."""
    snapshot = await read_fleet("reference", now=NOW, seed=3)
    renderer = SnapshotRenderer(schedule_grace_seconds=GRACE, version="t")
    samples = parse_samples(renderer.render(snapshot, NOW).decode())
    exposed = {
        (dict(labels)["project"], dict(labels)["addon"], dict(labels)["schedule"]): v
        for (name, labels), v in samples.items()
        if name == "northflank_addon_backup_schedule_missed_runs"
    }
    judged = {
        (a.project_id, a.addon_id, s.schedule.id): float(s.missed_runs)
        for a in snapshot.addons.values()
        for s in assess(a, now=NOW, schedule_grace_seconds=GRACE).schedules
        if s.missed_runs is not None
    }
    assert judged == exposed
    assert any(judged.values()), "the reference fleet misses runs: the comparison must see some"

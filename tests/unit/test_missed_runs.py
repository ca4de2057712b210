"""Every scheduled run is judged (issue 12): what the backup summary keeps for it, what the collector
exposes, and the simulator's record of the runs it skipped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from exporter.collector import SnapshotRenderer
from exporter.northflank.models import Addon, Backup, Project, Schedule
from exporter.schedule import EARLY_START_SECONDS, HOUR
from exporter.simulator.fleet import (
    AddonSpec,
    Behaviour,
    Fleet,
    ProjectSpec,
    ScheduleSpec,
)
from exporter.simulator.history import addon_backups, schedule_backups, skipped_runs
from exporter.simulator.reference_fleet import REFERENCE_MISS_RATE, reference
from exporter.simulator.scenarios import demo
from exporter.snapshot import (
    ANY_BACKUP_TYPE,
    MAX_INITIATIONS,
    Snapshot,
    summarize_backups,
    summarize_schedules,
)
from tests.support import parse_samples, value

DAY = 86_400.0
GRACE = 7200.0
#: Wednesday 2026-11-04 00:00 UTC.
MIDNIGHT = datetime(2026, 11, 4, tzinfo=UTC).timestamp()
KEY = ("p1", "db")
LABELS = {"project": "p1", "addon": "db"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def backup(at: float, *, source: str | None = "snapshot", status: str = "completed") -> Backup:
    payload: dict[str, Any] = {
        "id": f"b{at:.0f}-{source}-{status}",
        "status": status,
        "createdAt": iso(at),
        "completedAt": iso(at + 120),
        "config": {"size": "1000"},
    }
    if source is not None:
        payload["config"]["source"] = {"type": source}
    return Backup.model_validate(payload)


def schedule(
    *, interval: str = "hourly", backup_type: str = "snapshot", retention: int = 2, created: float = 0.0
) -> Schedule:
    scheduling: dict[str, Any] = {"interval": interval, "minute": [0]}
    if interval != "hourly":
        scheduling["hour"] = [3]
    return Schedule.model_validate(
        {
            "id": "s1",
            "backupType": backup_type,
            "retentionTime": retention,
            "scheduling": scheduling,
            "createdAt": iso(created or MIDNIGHT - 30 * DAY),
        }
    )


def hourly(first: float, last: float, *, skip: Sequence[float] = (), **kind: Any) -> list[Backup]:
    """One backup a minute after every hour from ``first`` to ``last``, but for the runs in ``skip``."""
    runs = [first + k * HOUR for k in range(int((last - first) // HOUR) + 1)]
    return [backup(run + 60, **kind) for run in runs if run not in skip]


def render(
    backups: Sequence[Backup] | None, sched: Schedule, *, read_at: float, now: float
) -> dict[str, float | None]:
    snap = Snapshot().with_projects([(None, Project(id="p1", name="P"))], at=read_at)
    addon = Addon.model_validate({"id": "db", "name": "DB", "spec": {"type": "postgresql"}})
    snap = snap.with_project_addons("p1", [addon], at=read_at)
    if backups is not None:
        snap = snap.with_addon_backups(KEY, summarize_backups(backups, now=read_at), at=read_at)
    snap = snap.with_addon_schedules(KEY, summarize_schedules([sched]), at=read_at)
    text = SnapshotRenderer(schedule_grace_seconds=GRACE, version="t").render(snap, now).decode()
    samples = parse_samples(text)
    labels = {**LABELS, "schedule": "s1"}
    return {
        name: value(samples, f"northflank_addon_backup_schedule_{name}", **labels)
        for name in ("missed", "missed_runs", "last_missed_run_timestamp_seconds")
    }


# --- the summary ---------------------------------------------------------------------------------


def test_the_summary_keeps_initiations_by_the_type_they_can_be_a_run_of() -> None:
    backups = [
        backup(MIDNIGHT + 3, source="liveInstance"),
        backup(MIDNIGHT + 1, source="snapshot", status="failed"),
        backup(MIDNIGHT + 2, source=None),
        backup(MIDNIGHT + 4, source="fileUpload"),  # an import is no run of any schedule
        backup(MIDNIGHT + 5, source="externalDump"),
        backup(MIDNIGHT + 6, source="somethingNew"),
    ]
    summary = summarize_backups(backups, now=MIDNIGHT + HOUR)
    assert dict(summary.initiations) == {
        "dump": (MIDNIGHT + 3,),
        "snapshot": (MIDNIGHT + 1,),
        ANY_BACKUP_TYPE: (MIDNIGHT + 2, MIDNIGHT + 6),
    }
    assert summary.initiated_for("snapshot") == (MIDNIGHT + 1, MIDNIGHT + 2, MIDNIGHT + 6)
    assert summary.initiated_for("dump") == (MIDNIGHT + 2, MIDNIGHT + 3, MIDNIGHT + 6)
    assert summary.initiated_for("pitr") == (MIDNIGHT + 1, MIDNIGHT + 2, MIDNIGHT + 3, MIDNIGHT + 6)
    assert summary.listed_at == MIDNIGHT + HOUR


def test_the_summary_keeps_a_bounded_number_of_the_newest_initiations() -> None:
    many = [backup(MIDNIGHT - k * 60.0) for k in range(MAX_INITIATIONS + 10)]
    summary = summarize_backups(many, now=MIDNIGHT + 60)
    kept = summary.initiated_for("snapshot")
    assert len(kept) == MAX_INITIATIONS
    assert kept[-1] == MIDNIGHT
    # Complete from the oldest kept on: the runs before it are not judged.
    assert summary.initiations_since == kept[0]
    few = summarize_backups(many[:5], now=MIDNIGHT + 60)
    assert few.initiations_since is not None
    assert few.initiations_since < MIDNIGHT - 30 * DAY


def test_a_future_dated_backup_covers_no_run() -> None:
    summary = summarize_backups([backup(MIDNIGHT + 6 * HOUR)], now=MIDNIGHT)
    assert summary.initiated_for("snapshot") == ()


# --- the metrics ---------------------------------------------------------------------------------


def test_a_single_missed_hourly_run_is_counted_and_stays_missed_after_the_next_run() -> None:
    missed = MIDNIGHT + 10 * HOUR
    read_at = MIDNIGHT + 13 * HOUR + 300
    backups = hourly(MIDNIGHT - 3 * DAY, MIDNIGHT + 13 * HOUR, skip=[missed])
    # The 11:00, 12:00 and 13:00 runs were made: before this change the gauge said 0 here.
    got = render(backups, schedule(), read_at=read_at, now=read_at)
    assert got == {"missed": 0, "missed_runs": 1, "last_missed_run_timestamp_seconds": missed}
    # Not before its grace has ended.
    early = [b for b in backups if b.created_at.timestamp() < missed + GRACE - 60]
    got = render(early, schedule(), read_at=missed + GRACE - 1, now=missed + GRACE - 1)
    assert got == {"missed": 0, "missed_runs": 0, "last_missed_run_timestamp_seconds": None}
    # Nor when the listing was read before it ended: the backup may have started since that read.
    got = render(early, schedule(), read_at=missed + GRACE - 1, now=missed + GRACE)
    assert got == {"missed": 0, "missed_runs": 0, "last_missed_run_timestamp_seconds": None}
    got = render(early, schedule(), read_at=missed + GRACE, now=missed + GRACE)
    assert got == {"missed": 1, "missed_runs": 1, "last_missed_run_timestamp_seconds": missed}


def test_only_a_backup_of_the_schedules_type_makes_its_run() -> None:
    missed = MIDNIGHT + 10 * HOUR
    read_at = MIDNIGHT + 13 * HOUR + 300
    dump = backup(missed + 60, source="liveInstance")
    backups = [*hourly(MIDNIGHT - DAY, MIDNIGHT + 13 * HOUR, skip=[missed]), dump]
    assert render(backups, schedule(), read_at=read_at, now=read_at)["missed_runs"] == 1
    # A failed attempt is a run that failed, not a missed one (the failure alerts see it).
    failed = backup(missed + 60, status="failed")
    backups = [*hourly(MIDNIGHT - DAY, MIDNIGHT + 13 * HOUR, skip=[missed]), failed]
    assert render(backups, schedule(), read_at=read_at, now=read_at)["missed_runs"] == 0


def test_a_late_run_is_no_miss_but_a_run_covered_only_by_the_next_one_is() -> None:
    run = MIDNIGHT + 3 * HOUR
    sched = schedule(interval="daily", backup_type="dump", retention=7)
    daily = [backup(run - k * DAY + 60, source="liveInstance") for k in range(1, 7)]
    late = backup(run + GRACE - 60, source="liveInstance")
    got = render([*daily, late], sched, read_at=run + 3 * HOUR, now=run + 3 * HOUR)
    assert got == {"missed": 0, "missed_runs": 0, "last_missed_run_timestamp_seconds": None}
    too_late = backup(run + GRACE + 60, source="liveInstance")
    got = render([*daily, too_late], sched, read_at=run + 3 * HOUR, now=run + 3 * HOUR)
    assert got == {"missed": 1, "missed_runs": 1, "last_missed_run_timestamp_seconds": run}
    early = backup(run - EARLY_START_SECONDS, source="liveInstance")
    assert render([*daily, early], sched, read_at=run + 3 * HOUR, now=run + 3 * HOUR)["missed_runs"] == 0


def test_runs_whose_backups_expired_or_before_the_schedule_existed_are_not_missed() -> None:
    # A daily schedule with a day's retention: the listing holds only the newest backup. The runs
    # before it are not missed, their backups have expired.
    run = MIDNIGHT + 3 * HOUR
    sched = schedule(interval="daily", backup_type="dump", retention=1)
    newest = [backup(run + 60, source="liveInstance")]
    got = render(newest, sched, read_at=run + DAY - 60, now=run + DAY - 60)
    assert got == {"missed": 0, "missed_runs": 0, "last_missed_run_timestamp_seconds": None}
    # Created at 11:30: the hourly runs before were never due, the 12:00 one was missed.
    created = MIDNIGHT + 11.5 * HOUR
    backups = hourly(MIDNIGHT + 13 * HOUR, MIDNIGHT + 15 * HOUR)
    got = render(
        backups, schedule(created=created), read_at=MIDNIGHT + 15.5 * HOUR, now=MIDNIGHT + 15.5 * HOUR
    )
    assert got == {
        "missed": 0,
        "missed_runs": 1,
        "last_missed_run_timestamp_seconds": MIDNIGHT + 12 * HOUR,
    }


def test_without_a_backup_listing_nothing_is_judged() -> None:
    got = render(None, schedule(), read_at=MIDNIGHT, now=MIDNIGHT + DAY)
    assert got == {"missed": None, "missed_runs": None, "last_missed_run_timestamp_seconds": None}


def test_the_count_drops_a_day_after_the_run_on_reused_lines() -> None:
    missed = MIDNIGHT + 10 * HOUR
    read_at = missed + DAY + 3 * HOUR
    snap = Snapshot().with_projects([(None, Project(id="p1", name="P"))], at=read_at)
    addon = Addon.model_validate({"id": "db", "name": "DB", "spec": {"type": "postgresql"}})
    snap = snap.with_project_addons("p1", [addon], at=read_at)
    summary = summarize_backups(hourly(MIDNIGHT - 3 * DAY, read_at, skip=[missed]), now=read_at)
    snap = snap.with_addon_backups(KEY, summary, at=read_at)
    snap = snap.with_addon_schedules(KEY, summarize_schedules([schedule()]), at=read_at)
    renderer = SnapshotRenderer(schedule_grace_seconds=GRACE, version="t")
    labels = {**LABELS, "schedule": "s1"}

    def count(now: float) -> float | None:
        samples = parse_samples(renderer.render(snap, now).decode())
        return value(samples, "northflank_addon_backup_schedule_missed_runs", **labels)

    # The same snapshot scraped again and again (the renderer reuses its lines between changes).
    times = (missed + GRACE - 1, missed + GRACE, missed + DAY - 1, missed + DAY, missed + DAY + 1)
    assert [count(t) for t in times] == [0, 1, 1, 0, 0]


# --- the simulator -------------------------------------------------------------------------------


def _fleet(addon: AddonSpec, start: float) -> Fleet:
    return Fleet(projects=(ProjectSpec(id="p", name="P"),), addons=(addon,), start=start)


def test_the_simulator_records_the_runs_it_skipped() -> None:
    sched = ScheduleSpec(id="s", interval="hourly", minutes=(5, 35), retention_days=3)
    addon = AddonSpec(id="a", name="a", project_id="p", type="postgresql", schedules=(sched,), miss_rate=0.2)
    fleet = _fleet(addon, MIDNIGHT)
    now = MIDNIGHT + 2 * DAY
    skipped = skipped_runs(fleet, addon, sched, 1, MIDNIGHT, now - HOUR)
    made = {b.run_at for b in schedule_backups(fleet, addon, sched, 1, now)}
    runs = [MIDNIGHT + k * 1800 + 300 for k in range(int((DAY * 2 - HOUR) // 1800))]
    assert set(skipped) == {r for r in runs if r not in made}
    assert 0.1 < len(skipped) / len(runs) < 0.3
    # A fleet without misses skips nothing; a stopped addon skips every run from then on.
    assert skipped_runs(fleet, replace(addon, miss_rate=0.0), sched, 1, MIDNIGHT, now) == []
    stopped = replace(addon, miss_rate=0.0, stopped_since=DAY)
    assert skipped_runs(_fleet(stopped, MIDNIGHT), stopped, sched, 1, MIDNIGHT, now - HOUR) == [
        r for r in runs if r >= MIDNIGHT + DAY
    ]


def test_the_reference_fleet_and_the_demo_skip_single_runs() -> None:
    fleet = reference(100, seed=3, start=MIDNIGHT)
    assert {a.miss_rate for a in fleet.addons} == {REFERENCE_MISS_RATE}
    hourly_addons = [a for a in fleet.addons if a.schedules and a.schedules[0].interval == "hourly"]
    skipped = sum(
        len(skipped_runs(fleet, a, a.schedules[0], 0, MIDNIGHT - 7 * DAY, MIDNIGHT)) for a in hourly_addons
    )
    assert skipped > 0
    demo_fleet = demo(0, MIDNIGHT)
    missing = [a for a in demo_fleet.addons if a.behaviour is Behaviour.MISSED_RUNS]
    assert len(missing) == 1
    (addon,) = missing
    assert addon.miss_rate > 0
    skipped_days = {
        math.floor(r / DAY)
        for r in skipped_runs(demo_fleet, addon, addon.schedules[0], 0, MIDNIGHT - DAY, MIDNIGHT)
    }
    assert skipped_days  # a day of the demo shows a missed run
    assert addon_backups(demo_fleet, addon, 0, MIDNIGHT)  # and the runs around it were made

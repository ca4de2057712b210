"""The simulator's fleet model and history: pure functions of (fleet, seed, now)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from datetime import UTC, datetime

import pytest

from exporter.simulator.fleet import (
    DAY,
    HOUR,
    MINUTE,
    AddonSpec,
    Behaviour,
    Fleet,
    ProjectSpec,
    ScheduleSpec,
)
from exporter.simulator.history import (
    MAX_START_DELAY,
    BackupRecord,
    addon_backups,
    addon_restores,
    destination_backups,
    scheduled_runs,
    weekday,
)
from exporter.simulator.reference_fleet import reference
from exporter.simulator.scenarios import demo, e2e, scenario

T0 = 1_750_000_000.0  # Sunday 2025-06-15T15:06:40Z
SEED = 11


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def by_created(records: list[BackupRecord]) -> list[BackupRecord]:
    return sorted(records, key=lambda b: b.created_at)


def one_addon_fleet(addon: AddonSpec, start: float = T0) -> Fleet:
    return Fleet(projects=(ProjectSpec("p", "P"),), addons=(addon,), start=start)


def test_day_zero_is_monday_and_runs_are_utc() -> None:
    assert weekday(ts("2024-01-01T12:00:00")) == 0  # a Monday
    assert weekday(ts("2024-01-07T23:59:59")) == 6  # a Sunday
    weekly = ScheduleSpec(id="w", interval="weekly", minutes=(30,), hours=(18,), days=(0, 4))
    runs = scheduled_runs(weekly, ts("2024-01-01T00:00:00"), ts("2024-01-14T23:59:59"))
    assert [datetime.fromtimestamp(r, UTC).isoformat() for r in runs] == [
        "2024-01-01T18:30:00+00:00",
        "2024-01-05T18:30:00+00:00",
        "2024-01-08T18:30:00+00:00",
        "2024-01-12T18:30:00+00:00",
    ]
    hourly = ScheduleSpec(id="h", interval="hourly", minutes=(0, 30))
    assert len(scheduled_runs(hourly, ts("2024-01-01T00:00:00"), ts("2024-01-01T23:59:59"))) == 48
    daily = ScheduleSpec(id="d", interval="daily", minutes=(15,), hours=(1, 13))
    assert scheduled_runs(daily, ts("2024-01-01T01:15:00"), ts("2024-01-01T13:15:00")) == [
        int(ts("2024-01-01T01:15:00")),
        int(ts("2024-01-01T13:15:00")),
    ]


def test_schedules_reject_what_the_api_forbids() -> None:
    with pytest.raises(ValueError, match="hourly"):
        ScheduleSpec(id="x", interval="hourly", minutes=(0,), hours=(1,))
    with pytest.raises(ValueError, match="weekly"):
        ScheduleSpec(id="x", interval="weekly", minutes=(0,), hours=(1,))
    with pytest.raises(ValueError, match="minutes"):
        ScheduleSpec(id="x", interval="daily", minutes=(60,), hours=(1,))


def test_one_backup_per_run_within_retention_initiated_0_to_120_s_after_it() -> None:
    schedule = ScheduleSpec(id="s", interval="hourly", minutes=(7,), retention_days=3)
    fleet = one_addon_fleet(AddonSpec("a", "a", "p", "postgresql", schedules=(schedule,)))
    addon = fleet.addons[0]
    backups = addon_backups(fleet, addon, SEED, T0)
    runs = scheduled_runs(schedule, T0 - 3 * DAY, T0)
    existing = [r for r in runs if r + MAX_START_DELAY <= T0 or any(b.run_at == r for b in backups)]
    assert sorted(b.run_at for b in backups) == [float(r) for r in existing]
    assert len({b.id for b in backups}) == len(backups)
    delays = [b.created_at - b.run_at for b in backups]
    assert all(0 <= d <= MAX_START_DELAY for d in delays)
    assert max(delays) - min(delays) > 30  # spread, not a constant
    assert all(b.created_at > T0 - 3 * DAY for b in backups)


def test_time_moving_forward_makes_a_backup_appear_progress_and_complete() -> None:
    schedule = ScheduleSpec(id="s", interval="daily", minutes=(0,), hours=(12,), retention_days=7)
    addon = AddonSpec("a", "a", "p", "mysql", schedules=(schedule,), typical_duration=600, failure_rate=0)
    fleet = one_addon_fleet(addon)
    run = ts("2025-06-16T12:00:00")
    before = {b.id for b in addon_backups(fleet, addon, SEED, run - 1)}
    created = [b for b in addon_backups(fleet, addon, SEED, run + 3 * HOUR) if b.id not in before]
    assert len(created) == 1
    backup = created[0]
    during = {b.id: b for b in addon_backups(fleet, addon, SEED, backup.created_at + 1)}[backup.id]
    assert (during.status, during.completed_at, during.size) == ("in-progress", None, 0)
    assert backup.status == "completed"
    assert backup.completed_at is not None
    assert backup.size > 0
    just_before_end = {b.id: b for b in addon_backups(fleet, addon, SEED, backup.completed_at - 0.001)}
    assert just_before_end[backup.id].status == "in-progress"
    # Once finished, a backup's record no longer changes.
    later = {b.id: b for b in addon_backups(fleet, addon, SEED, run + 5 * DAY)}
    assert later[backup.id] == backup
    # And it leaves at the end of its retention.
    gone = {b.id for b in addon_backups(fleet, addon, SEED, backup.created_at + 7 * DAY + 1)}
    assert backup.id not in gone


def test_history_is_a_function_of_fleet_seed_and_now() -> None:
    fleet = demo(SEED, T0)
    for addon in fleet.addons:
        assert addon_backups(fleet, addon, SEED, T0) == addon_backups(demo(SEED, T0), addon, SEED, T0)
        assert addon_restores(fleet, addon, SEED, T0) == addon_restores(fleet, addon, SEED, T0)
    other = [addon_backups(fleet, a, SEED + 1, T0) for a in fleet.addons]
    assert other != [addon_backups(fleet, a, SEED, T0) for a in fleet.addons]


def test_reference_fleet_model() -> None:
    fleet = reference(1000, seed=SEED, start=T0)
    assert len(fleet.addons) == 1000
    kinds = Counter(a.schedules[0].interval if a.schedules else "unscheduled" for a in fleet.addons)
    assert kinds == {"hourly": 100, "daily": 750, "weekly": 100, "unscheduled": 50}
    hourly = [a.schedules[0] for a in fleet.addons if a.schedules and a.schedules[0].interval == "hourly"]
    assert {len(s.minutes) for s in hourly} == {1, 2}
    others = [a.schedules[0] for a in fleet.addons if a.schedules and a.schedules[0].interval != "hourly"]
    assert {len(s.minutes) for s in others} == {1}
    # One addon in 20 alone in its project; the others share a few.
    per_project = Counter(a.project_id for a in fleet.addons)
    alone = [p for p, n in per_project.items() if n == 1]
    assert len(alone) == 50
    shared = [n for n in per_project.values() if n > 1]
    assert 2 <= len(shared) <= 5
    assert sum(shared) == 950
    durations = [a.typical_duration for a in fleet.addons]
    assert min(durations) >= 60
    assert max(durations) <= 3600
    assert 240 < statistics.median(durations) < 360  # median 5 min
    logs = [math.log(d) for d in durations if 60 < d < 3600]
    assert 0.7 < statistics.stdev(logs) < 1.0  # spread factor e^0.9, clamped
    assert all(a.failure_rate == 0.03 for a in fleet.addons)
    assert reference(1000, seed=SEED, start=T0) == fleet
    assert reference(1000, seed=SEED + 1, start=T0) != fleet


def test_reference_runs_fail_3_percent_vary_around_the_typical_duration() -> None:
    fleet = reference(400, seed=SEED, start=T0)
    finished: list[tuple[AddonSpec, BackupRecord]] = [
        (a, b) for a in fleet.addons for b in addon_backups(fleet, a, SEED, T0) if b.status != "in-progress"
    ]
    assert len(finished) > 3000
    failed = sum(b.status == "failed" for _, b in finished)
    assert 0.02 < failed / len(finished) < 0.04
    ratios = [
        math.log((b.completed_at - b.created_at) / a.typical_duration)
        for a, b in finished
        if b.status == "completed" and b.completed_at is not None
    ]
    assert abs(statistics.mean(ratios)) < 0.03
    assert 0.27 < statistics.stdev(ratios) < 0.33  # sigma 0.3
    sizes = [b.size for _, b in finished if b.status == "completed"]
    assert all(s > 0 for s in sizes)


def test_unscheduled_addons_get_about_one_manual_backup_a_day() -> None:
    fleet = reference(200, seed=SEED, start=T0)
    unscheduled = [a for a in fleet.addons if not a.schedules]
    assert unscheduled
    for addon in unscheduled:
        backups = by_created(addon_backups(fleet, addon, SEED, T0))
        assert 13 <= len(backups) <= 15  # 14 days kept
        days = Counter(math.floor(b.created_at / DAY) for b in backups)
        assert max(days.values()) == 1
        gaps = [b.created_at - a.created_at for a, b in itertools.pairwise(backups)]
        assert all(0 < g < 2 * DAY for g in gaps)
        assert len(set(gaps)) > 1


def test_demo_scenario_shows_every_behaviour() -> None:
    fleet = demo(SEED, T0)
    assert len(fleet.projects) == 3
    assert len(fleet.addons) == 12
    assert len(fleet.destinations) == 2
    assert {a.type for a in fleet.addons} == {"postgresql", "mysql", "mongodb", "redis"}
    assert {a.behaviour for a in fleet.addons} == set(Behaviour)
    history = {a.id: by_created(addon_backups(fleet, a, SEED, T0)) for a in fleet.addons}

    failing = fleet.addon("orders-mysql")
    assert failing is not None
    assert failing.failing_since is not None
    since = T0 + failing.failing_since
    assert {b.status for b in history["orders-mysql"] if b.run_at >= since} == {"failed"}
    assert any(b.status == "completed" for b in history["orders-mysql"] if b.run_at < since)

    stale = history["metrics-mongo"]
    assert stale
    assert max(b.created_at for b in stale) < T0 - 3 * DAY
    assert {b.status for b in history["auth-mysql"]} == {"failed"}  # never completed

    stuck = [b for b in history["warehouse-mysql"] if b.status == "in-progress"]
    assert len(stuck) == 1
    assert T0 - stuck[0].created_at > 2 * HOUR
    assert history["warehouse-mysql"][-1] == stuck[0]  # nothing started after it

    done = [b for b in history["catalog-mongo"] if b.status == "completed"]
    assert done[-1].size < 0.2 * statistics.median(b.size for b in done[:-2])

    assert [r.status for r in sorted(addon_restores(fleet, fleet.addons[8], SEED, T0), key=lambda r: r.id)][
        -1
    ] == "failed"
    assert fleet.addons[8].id == "wiki-postgres"
    assert not fleet.addon("cache-redis").schedules  # type: ignore[union-attr]
    assert len(history["cache-redis"]) >= 13
    for addon in fleet.addons:
        if addon.behaviour is Behaviour.HEALTHY:
            assert any(b.status == "completed" for b in history[addon.id]), addon.id
    assert destination_backups(fleet, "offsite-s3", SEED, T0)
    assert destination_backups(fleet, "archive-s3", SEED, T0)


def test_e2e_scenario_ids_and_behaviours_are_fixed() -> None:
    fleet = e2e(start=T0)
    assert fleet == e2e(seed=99, start=T0)  # the seed does not change it
    assert [(a.project_id, a.id, a.behaviour) for a in fleet.addons] == [
        ("e2e-project", "e2e-healthy", Behaviour.HEALTHY),
        ("e2e-project", "e2e-failing", Behaviour.FAILING),
        ("e2e-other", "e2e-stale", Behaviour.STALE),
        ("e2e-other", "e2e-unscheduled", Behaviour.UNSCHEDULED),
        ("e2e-other", "e2e-stuck", Behaviour.STUCK),
    ]
    for now in (T0, T0 + 37 * MINUTE, T0 + 5 * HOUR):
        history = {a.id: by_created(addon_backups(fleet, a, SEED, now)) for a in fleet.addons}
        healthy = history["e2e-healthy"]
        assert {b.status for b in healthy} <= {"completed", "in-progress"}
        last_done = max(b.completed_at or 0 for b in healthy)
        assert now - last_done < 1 * HOUR + 5 * MINUTE
        failing = history["e2e-failing"]
        assert [b.status for b in failing if b.run_at >= T0 - 6 * HOUR and b.status != "in-progress"]
        assert {b.status for b in failing if b.run_at >= T0 - 6 * HOUR} <= {"failed", "in-progress"}
        assert any(b.status == "completed" for b in failing)
        stale = history["e2e-stale"]
        assert max(b.created_at for b in stale) < T0 - 6 * HOUR
        assert all(b.status == "completed" for b in stale)
        assert history["e2e-unscheduled"]
        assert all(b.schedule_id is None for b in history["e2e-unscheduled"])
    assert [r.status for r in addon_restores(fleet, fleet.addons[0], SEED, T0)] == ["completed"]
    assert {r.backup.addon_id for r in destination_backups(fleet, "e2e-s3", SEED, T0)} == {"e2e-healthy"}


def test_scenario_lookup() -> None:
    assert scenario("demo", SEED, T0) == demo(SEED, T0)
    assert len(scenario("reference", SEED, T0, n_addons=40).addons) == 40
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("nope")

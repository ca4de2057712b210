"""The collector renders a snapshot: values, labels, scrape-time ages, and nothing for unknown data."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from exporter.clock import FixedClock
from exporter.collector import FAMILIES, SnapshotRenderer
from exporter.northflank.models import Addon, BackupDestination, DestinationBackup, Project, Schedule
from exporter.snapshot import (
    Snapshot,
    summarize_backups,
    summarize_destination_backups,
    summarize_schedules,
)
from tests.exposition_checks import assert_every_family_declared
from tests.support import parse_samples, value
from tests.unit.test_snapshot import T0, backup

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp()


def _schedule(**scheduling: object) -> Schedule:
    return Schedule.model_validate(
        {
            "id": "s1",
            "backupType": "dump",
            "retentionTime": 7,
            "scheduling": scheduling,
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
        }
    )


def _snapshot(backups_read_at: float = NOW) -> Snapshot:
    snap = Snapshot().with_projects([(None, Project(id="p1", name="Payments"))], at=NOW - 60)
    addons = [
        Addon.model_validate({"id": "db", "name": "Main DB", "spec": {"type": "postgresql"}}),
        Addon.model_validate({"id": "cache", "name": "Cache", "spec": {"type": "redis"}}),
    ]
    snap = snap.with_project_addons("p1", addons, at=NOW - 50)
    # Daily at 02:30; the last backup was initiated at T0 (02:30 today) and took 5 minutes.
    snap = snap.with_addon_backups(
        ("p1", "db"), summarize_backups([backup(0), backup(-1440)], now=backups_read_at), at=NOW - 40
    )
    snap = snap.with_addon_schedules(
        ("p1", "db"), summarize_schedules([_schedule(interval="daily", hour=[2], minute=[30])]), at=NOW - 40
    )
    snap = snap.with_addon_backups(("p1", "cache"), summarize_backups([backup(-3000)], now=NOW), at=NOW - 40)
    snap = snap.with_addon_schedules(("p1", "cache"), (), at=NOW - 40)
    snap = snap.with_destinations([BackupDestination(id="s3", name="Offsite")], at=NOW - 30)
    dest_backup = DestinationBackup.model_validate(
        {
            "id": "x",
            "status": "completed",
            "project": {"id": "p1", "name": "Payments"},
            "addon": {"id": "db", "name": "Main DB"},
            "config": {"size": "1234"},
            "createdAt": "2026-11-02T02:30:00Z",
            "completedAt": "2026-11-02T02:40:00Z",
            "expiredBy": "1729232400000.0",
        }
    )
    return snap.with_destination_backups(
        "s3", summarize_destination_backups([dest_backup], now=NOW), at=NOW - 20
    )


class _Scrapes:
    """Renders the snapshot at the clock's time on every read, as a scrape would."""

    def __init__(
        self, snapshot: Snapshot, clock: FixedClock, renderer: SnapshotRenderer | None = None
    ) -> None:
        self.snapshot = snapshot
        self.clock = clock
        self.renderer = renderer or SnapshotRenderer(schedule_grace_seconds=7200, version="1.2.3")

    def text(self) -> str:
        return self.renderer.render(self.snapshot, self.clock.now()).decode()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return value(parse_samples(self.text()), name, **(labels or {}))


def _registry(snapshot: Snapshot, clock: FixedClock) -> _Scrapes:
    return _Scrapes(snapshot, clock)


def test_addon_values_and_scrape_time_age() -> None:
    clock = FixedClock(NOW)
    registry = _registry(_snapshot(), clock)
    db = {"project": "p1", "addon": "db"}
    completed = (T0.timestamp()) + 300
    assert (
        registry.get_sample_value("northflank_addon_backup_last_completed_timestamp_seconds", db) == completed
    )
    assert (
        registry.get_sample_value("northflank_addon_backup_last_completed_age_seconds", db) == NOW - completed
    )
    clock.advance(100)
    # The age moves with the scrape, not with the poll.
    assert registry.get_sample_value("northflank_addon_backup_last_completed_age_seconds", db) == (
        NOW + 100 - completed
    )
    assert registry.get_sample_value("northflank_addon_backup_last_completed_size_bytes", db) == 1000
    assert registry.get_sample_value("northflank_addon_backup_last_completed_duration_seconds", db) == 300
    assert registry.get_sample_value("northflank_addon_backups", {**db, "status": "completed"}) == 2
    assert registry.get_sample_value("northflank_addon_backups", {**db, "status": "failed"}) == 0
    assert registry.get_sample_value("northflank_addon_backup_consecutive_failures", db) == 0
    assert registry.get_sample_value("northflank_addon_backup_last_failed_timestamp_seconds", db) is None
    info = {**db, "addon_name": "Main DB", "project_name": "Payments", "addon_type": "postgresql"}
    assert registry.get_sample_value("northflank_addon_info", info) == 1
    build = {"version": "1.2.3", "revision": "unknown", "pythonversion": "unknown"}
    assert registry.get_sample_value("northflank_exporter_build_info", build) == 1
    assert registry.get_sample_value("northflank_up") == 1


def test_schedule_values_and_coverage() -> None:
    registry = _registry(_snapshot(), FixedClock(NOW))
    s = {"project": "p1", "addon": "db", "schedule": "s1"}
    assert registry.get_sample_value("northflank_addon_backup_schedule_next_run_timestamp_seconds", s) == (
        datetime(2026, 11, 3, 2, 30, tzinfo=UTC).timestamp()
    )
    assert (
        registry.get_sample_value("northflank_addon_backup_schedule_previous_run_timestamp_seconds", s)
        == datetime(2026, 11, 2, 2, 30, tzinfo=UTC).timestamp()
    )
    assert registry.get_sample_value("northflank_addon_backup_schedule_max_interval_seconds", s) == 86400
    assert registry.get_sample_value("northflank_addon_backup_schedule_retention_seconds", s) == 7 * 86400
    assert registry.get_sample_value("northflank_addon_backup_schedule_missed", s) == 0
    info = {**s, "interval": "daily", "backup_type": "dump", "compression": "gz"}
    assert registry.get_sample_value("northflank_addon_backup_schedule_info", info) == 1
    assert (
        registry.get_sample_value(
            "northflank_addon_backup_schedule_covered", {"project": "p1", "addon": "db"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "northflank_addon_backup_schedule_covered", {"project": "p1", "addon": "cache"}
        )
        == 0
    )
    assert (
        registry.get_sample_value("northflank_project_backup_schedule_coverage_ratio", {"project": "p1"})
        == 0.5
    )


def test_missed_run_appears_after_grace_when_no_backup_started() -> None:
    # A day later nothing new was initiated: the 02:30 run of that day, older than 2h, was missed.
    s = {"project": "p1", "addon": "db", "schedule": "s1"}
    registry = _registry(_snapshot(backups_read_at=NOW + 86400), FixedClock(NOW + 86400))
    assert registry.get_sample_value("northflank_addon_backup_schedule_missed", s) == 1
    assert registry.get_sample_value("northflank_addon_backup_schedule_missed_runs", s) == 1


def test_a_listing_read_before_the_grace_ended_judges_no_run() -> None:
    # The same day with the backups last read before the run: its backup may have started since.
    s = {"project": "p1", "addon": "db", "schedule": "s1"}
    registry = _registry(_snapshot(), FixedClock(NOW + 86400))
    assert registry.get_sample_value("northflank_addon_backup_schedule_missed", s) == 0
    assert registry.get_sample_value("northflank_addon_backup_schedule_missed_runs", s) == 0


def test_destination_values() -> None:
    registry = _registry(_snapshot(), FixedClock(NOW))
    assert (
        registry.get_sample_value(
            "northflank_backup_destination_info", {"destination": "s3", "destination_name": "Offsite"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("northflank_backup_destination_size_bytes", {"destination": "s3"}) == 1234
    )
    assert (
        registry.get_sample_value(
            "northflank_backup_destination_backups", {"destination": "s3", "status": "completed"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "northflank_backup_destination_last_completed_timestamp_seconds",
            {"destination": "s3", "project": "p1", "addon": "db"},
        )
        == datetime(2026, 11, 2, 2, 40, tzinfo=UTC).timestamp()
    )


def test_freshness_timestamps_per_resource() -> None:
    registry = _registry(_snapshot(), FixedClock(NOW))
    name = "northflank_exporter_last_refresh_timestamp_seconds"
    assert registry.get_sample_value(name, {"project": "", "addon": "", "resource": "projects"}) == NOW - 60
    assert registry.get_sample_value(name, {"project": "p1", "addon": "", "resource": "addons"}) == NOW - 50
    assert (
        registry.get_sample_value(name, {"project": "p1", "addon": "db", "resource": "backups"}) == NOW - 40
    )
    assert registry.get_sample_value(name, {"project": "p1", "addon": "db", "resource": "restores"}) is None
    assert (
        registry.get_sample_value(name, {"project": "", "addon": "", "resource": "destination_backups"})
        == NOW - 20
    )


def test_unknown_data_renders_nothing_rather_than_zero() -> None:
    snap = Snapshot().with_projects([(None, Project(id="p1", name="P"))], at=NOW)
    snap = snap.with_project_addons(
        "p1", [Addon.model_validate({"id": "db", "name": "x", "spec": {"type": "mysql"}})], at=NOW
    )
    registry = _registry(snap, FixedClock(NOW))
    labels = {"project": "p1", "addon": "db"}
    assert (
        registry.get_sample_value(
            "northflank_addon_info", {**labels, "addon_name": "x", "project_name": "P", "addon_type": "mysql"}
        )
        == 1
    )
    assert registry.get_sample_value("northflank_addon_backups", {**labels, "status": "completed"}) is None
    assert registry.get_sample_value("northflank_addon_backup_schedule_covered", labels) is None
    assert registry.get_sample_value("northflank_addon_backup_consecutive_failures", labels) is None


def test_up_is_zero_before_discovery_and_after_a_failed_one() -> None:
    assert _registry(Snapshot(), FixedClock(NOW)).get_sample_value("northflank_up") == 0
    failed = _snapshot().with_discovery_failed()
    registry = _registry(failed, FixedClock(NOW))
    assert registry.get_sample_value("northflank_up") == 0
    # ... while the last good data stays.
    assert (
        registry.get_sample_value(
            "northflank_addon_backups", {"project": "p1", "addon": "db", "status": "completed"}
        )
        == 2
    )


def test_exposition_has_no_type_label_and_only_counters_end_in_total() -> None:
    text = _registry(_snapshot(), FixedClock(NOW)).text()
    assert not re.search(r'[{,]type="', text)
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.split()[2].endswith("_total"):
            assert line.split()[3] == "counter", line


def test_unchanged_addons_are_reused_and_changed_ones_rerendered() -> None:
    clock = FixedClock(NOW)
    scrapes = _Scrapes(_snapshot(), clock)
    first = scrapes.text()
    assert scrapes.text() == first
    db = {"project": "p1", "addon": "db"}
    # The poller swaps in a new snapshot in which only "db" changed: the output must follow it.
    scrapes.snapshot = scrapes.snapshot.with_addon_backups(
        ("p1", "db"), summarize_backups([backup(0, size="4321")], now=NOW), at=NOW
    )
    assert scrapes.get_sample_value("northflank_addon_backup_last_completed_size_bytes", db) == 4321
    assert scrapes.get_sample_value("northflank_addon_backups", {**db, "status": "completed"}) == 1
    cache = {"project": "p1", "addon": "cache"}
    assert scrapes.get_sample_value("northflank_addon_backups", {**cache, "status": "completed"}) == 1


def test_schedule_values_follow_the_scrape_time_across_runs() -> None:
    # Reused between runs, recomputed when the scrape time crosses one: never stale.
    clock = FixedClock(datetime(2026, 11, 2, 2, 29, 59, tzinfo=UTC).timestamp())
    # The backups were read after the next day's grace ended: the verdicts follow the scrape time.
    scrapes = _Scrapes(_snapshot(backups_read_at=NOW + 3 * 86400), clock)
    s = {"project": "p1", "addon": "db", "schedule": "s1"}
    run = datetime(2026, 11, 2, 2, 30, tzinfo=UTC).timestamp()
    name = "northflank_addon_backup_schedule_next_run_timestamp_seconds"
    assert scrapes.get_sample_value(name, s) == run
    clock.set(run)
    assert scrapes.get_sample_value(name, s) == run + 86400
    assert (
        scrapes.get_sample_value("northflank_addon_backup_schedule_previous_run_timestamp_seconds", s) == run
    )
    clock.set(run - 3600)  # clocks can go back: the reused values must not
    assert scrapes.get_sample_value(name, s) == run
    # Grace ends at 04:30 on the next day's run with no backup initiated since today: missed only then.
    clock.set(run + 86400 + 7200 - 1)
    assert scrapes.get_sample_value("northflank_addon_backup_schedule_missed", s) == 0
    clock.set(run + 86400 + 7200 + 1)
    assert scrapes.get_sample_value("northflank_addon_backup_schedule_missed", s) == 1


def test_every_family_has_help_and_type_once() -> None:
    text = _registry(_snapshot(), FixedClock(NOW)).text()
    declared = assert_every_family_declared(text)
    for family in FAMILIES:
        assert family.help.strip(), f"{family.name} has no help text"
    # Every family this snapshot fills is in the text, with the HELP and TYPE it is declared with.
    filled = {name for name, d in declared.items() if d.samples}
    assert filled >= {"northflank_addon_backups", "northflank_up"}, sorted(filled)
    assert len({family.name for family in FAMILIES}) == len(FAMILIES)


def test_the_family_check_rejects_a_family_with_no_help_or_declared_twice() -> None:
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    assert assert_every_family_declared(good)["a_total"].samples == 1
    bad = [
        "# TYPE a gauge\na 1\n",  # no HELP
        "# HELP a \n# TYPE a gauge\na 1\n",  # empty HELP
        "# HELP a A.\na 1\n",  # no TYPE
        "a 1\n",  # nothing declared
        "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\n# HELP a A.\n",  # twice
        "# HELP a A.\n# TYPE a gauge\nb 1\n",  # a sample of an undeclared family
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            assert_every_family_declared(text)


def test_label_values_are_escaped() -> None:
    snap = Snapshot().with_projects([(None, Project(id="p", name='Quote " and \\ back\nslash'))], at=NOW)
    snap = snap.with_project_addons(
        "p", [Addon.model_validate({"id": "a", "name": "x", "spec": {"type": "redis"}})], at=NOW
    )
    samples = parse_samples(_registry(snap, FixedClock(NOW)).text())
    info = {
        "project": "p",
        "addon": "a",
        "addon_name": "x",
        "project_name": 'Quote " and \\ back\nslash',
        "addon_type": "redis",
    }
    assert value(samples, "northflank_addon_info", **info) == 1

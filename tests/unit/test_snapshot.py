"""Summaries of API listings and the snapshot's update rules (keep last good data, drop vanished addons)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.northflank.models import Addon, Backup, BackupStatus, Project, Restore
from exporter.snapshot import Snapshot, summarize_backups, summarize_restores

T0 = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
#: When the listings below are summarised: after every backup they hold.
READ_AT = (T0 + timedelta(days=1)).timestamp()


def backup(
    minutes: int, status: str = "completed", duration: int | None = 5, size: str = "1000", **extra: Any
) -> Backup:
    created = T0 + timedelta(minutes=minutes)
    payload: dict[str, Any] = {
        "id": f"b{minutes}",
        "name": f"backup {minutes}",
        "status": status,
        "createdAt": created.isoformat(),
        "config": {"size": size},
        **extra,
    }
    if duration is not None:
        payload["completedAt"] = (created + timedelta(minutes=duration)).isoformat()
    return Backup.model_validate(payload)


def test_empty_listing_has_every_status_at_zero_and_nothing_else() -> None:
    summary = summarize_backups([], now=READ_AT)
    assert set(summary.counts) == set(BackupStatus)
    assert all(v == 0 for v in summary.counts.values())
    assert summary.last_completed_at is None
    assert summary.consecutive_failures == 0
    assert summary.last_initiated_at is None


def test_unsorted_listing_finds_newest_completed_and_counts_failures_after_it() -> None:
    backups = [
        backup(120, "failed", duration=1),
        backup(0, "completed", size="500"),
        backup(60, "completed", size="700", duration=10),
        backup(180, "aborted", duration=2),
        backup(30, "failed", duration=1),  # before the newest completed one: not consecutive
        backup(240, "in-progress", duration=None, size="0"),
    ]
    s = summarize_backups(backups, now=READ_AT)
    assert s.last_completed_at == (T0 + timedelta(minutes=70)).timestamp()
    assert s.last_completed_size_bytes == 700
    assert s.last_completed_duration_seconds == 600
    assert s.consecutive_failures == 2
    assert s.last_failed_at == (T0 + timedelta(minutes=182)).timestamp()
    assert s.completed_size_bytes == 1200
    assert s.oldest_completed_at == (T0 + timedelta(minutes=5)).timestamp()
    assert s.in_progress_started_at == (T0 + timedelta(minutes=240)).timestamp()
    assert s.last_initiated_at == (T0 + timedelta(minutes=240)).timestamp()
    assert s.counts[BackupStatus.FAILED] == 2
    assert s.counts[BackupStatus.COMPLETED] == 2
    assert s.typical_duration_seconds == 450  # median of 5 and 10 minutes


def test_never_completed_counts_every_failure() -> None:
    s = summarize_backups([backup(0, "failed"), backup(60, "aborted"), backup(120, "failed")], now=READ_AT)
    assert s.last_completed_at is None
    assert s.consecutive_failures == 3


def test_a_completed_backup_of_unknown_size_makes_the_total_unknown_not_smaller() -> None:
    s = summarize_backups(
        [backup(0, size="500"), backup(60, size="12 MB"), backup(120, "failed", size="x")], now=READ_AT
    )
    assert s.last_completed_size_bytes is None
    assert s.completed_size_bytes is None
    # Sizes of backups that did not complete do not matter to the total.
    assert (
        summarize_backups(
            [backup(0, size="500"), backup(60, "failed", size="x")], now=READ_AT
        ).completed_size_bytes
        == 500
    )


def test_unknown_status_is_counted_as_unknown_not_dropped() -> None:
    s = summarize_backups([backup(0, "exploded")], now=READ_AT)
    assert s.counts[BackupStatus.UNKNOWN] == 1


def test_restores_keep_newest_per_status() -> None:
    restores = [
        Restore.model_validate(
            {
                "id": 1,
                "restoreTimestamp": "2026-11-01T10:00:00Z",
                "status": "completed",
                "completedAt": "2026-11-01T10:05:00Z",
            }
        ),
        Restore.model_validate({"id": 2, "restoreTimestamp": "2026-11-02T10:00:00Z", "status": "failed"}),
        Restore.model_validate(
            {
                "id": 3,
                "restoreTimestamp": "2026-10-01T10:00:00Z",
                "status": "completed",
                "completedAt": "2026-10-01T10:05:00Z",
            }
        ),
    ]
    s = summarize_restores(restores, now=datetime(2026, 11, 3, tzinfo=UTC).timestamp())
    assert s.counts[BackupStatus.COMPLETED] == 2
    assert s.last_at[BackupStatus.COMPLETED] == datetime(2026, 11, 1, 10, 5, tzinfo=UTC).timestamp()
    assert s.last_at[BackupStatus.FAILED] == datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
    assert BackupStatus.ABORTED not in s.last_at


def _addon(addon_id: str, name: str = "db") -> Addon:
    return Addon.model_validate({"id": addon_id, "name": name, "spec": {"type": "postgresql"}})


def test_addons_keep_their_data_across_listings_and_vanish_when_gone() -> None:
    snap = Snapshot().with_projects([(None, Project(id="p", name="Project"))], at=1.0)
    snap = snap.with_project_addons("p", [_addon("a"), _addon("b")], at=2.0)
    snap = snap.with_addon_backups(("p", "a"), summarize_backups([backup(0)], now=READ_AT), at=3.0)

    relisted = snap.with_project_addons("p", [_addon("a", name="renamed")], at=4.0)
    assert set(relisted.addons) == {("p", "a")}
    kept = relisted.addons[("p", "a")]
    assert kept.addon_name == "renamed"
    assert kept.backups is not None
    assert kept.backups.at == 3.0
    assert relisted.projects["p"].addons_at == 4.0
    # The old snapshot is untouched: readers holding it see a consistent picture.
    assert set(snap.addons) == {("p", "a"), ("p", "b")}


def test_result_for_an_addon_that_vanished_meanwhile_is_dropped() -> None:
    snap = Snapshot().with_projects([(None, Project(id="p", name="P"))], at=1.0)
    after = snap.with_addon_backups(("p", "gone"), summarize_backups([], now=READ_AT), at=2.0)
    assert after is snap


def test_gone_project_takes_its_addons_with_it_and_failed_discovery_keeps_them() -> None:
    snap = Snapshot().with_projects(
        [(None, Project(id="p", name="P")), (None, Project(id="q", name="Q"))], 1.0
    )
    snap = snap.with_project_addons("p", [_addon("a")], 2.0).with_project_addons("q", [_addon("c")], 2.0)
    failed = snap.with_discovery_failed()
    assert failed.up is False
    assert set(failed.addons) == {("p", "a"), ("q", "c")}
    assert failed.projects_at == 1.0
    shrunk = failed.with_projects([(None, Project(id="q", name="Q2"))], 5.0)
    assert shrunk.up is True
    assert set(shrunk.addons) == {("q", "c")}
    assert shrunk.addons[("q", "c")].project_name == "Q2"

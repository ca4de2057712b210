"""Backups dated in the future (issue 8, section 7): never taken as the newest, counted and shown.

The case of the issue: hourly backups that stopped 10 hours ago plus one dated 6 hours ahead. Taken at
face value it shows the addon with age 0 and no missed run, silencing NorthflankBackupTooOld and
NorthflankBackupScheduledRunMissed for 6 hours.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from exporter.collector import SnapshotRenderer
from exporter.northflank.models import (
    Addon,
    Backup,
    BackupStatus,
    DestinationBackup,
    Project,
    Restore,
    Schedule,
)
from exporter.snapshot import (
    FUTURE_TOLERANCE_SECONDS,
    Snapshot,
    summarize_backups,
    summarize_destination_backups,
    summarize_restores,
    summarize_schedules,
)
from tests.support import parse_samples, value

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HOUR = 3600.0
ADDON = {"project": "p1", "addon": "db"}


def _backup(created: datetime, status: str = "completed", minutes: int | None = 5) -> Backup:
    payload: dict[str, Any] = {
        "id": f"b-{created.timestamp():.0f}-{status}",
        "status": status,
        "createdAt": created.isoformat(),
        "config": {"size": "1000"},
    }
    if minutes is not None:
        payload["completedAt"] = (created + timedelta(minutes=minutes)).isoformat()
    return Backup.model_validate(payload)


def _stopped_hourly_plus_one_from_the_future() -> list[Backup]:
    """Hourly backups for a day, the last one initiated 10 hours ago, and one initiated 6 hours ahead."""
    past = [_backup(NOW - timedelta(hours=h)) for h in range(10, 34)]
    return [*past, _backup(NOW + timedelta(hours=6))]


def _render(backups: list[Backup], *, read_at: datetime = NOW) -> dict[str, float | None]:
    snap = Snapshot().with_projects([(None, Project(id="p1", name="Shop"))], at=NOW.timestamp())
    addon = Addon.model_validate({"id": "db", "name": "DB", "spec": {"type": "postgresql"}})
    snap = snap.with_project_addons("p1", [addon], at=NOW.timestamp())
    hourly = Schedule.model_validate(
        {
            "id": "hourly",
            "backupType": "snapshot",
            "retentionTime": 1,
            "scheduling": {"interval": "hourly", "minute": [0]},
            "createdAt": "2026-01-01T00:00:00Z",
        }
    )
    summary = summarize_backups(backups, now=read_at.timestamp())
    snap = snap.with_addon_backups(("p1", "db"), summary, at=NOW.timestamp())
    snap = snap.with_addon_schedules(("p1", "db"), summarize_schedules([hourly]), at=NOW.timestamp())
    text = SnapshotRenderer(schedule_grace_seconds=2 * HOUR, version="test").render(snap, NOW.timestamp())
    samples = parse_samples(text.decode())
    return {
        "age": value(samples, "northflank_addon_backup_last_completed_age_seconds", **ADDON),
        "missed": value(samples, "northflank_addon_backup_schedule_missed", **ADDON, schedule="hourly"),
        "future": value(samples, "northflank_addon_backups_future_dated", **ADDON),
        "completed": value(samples, "northflank_addon_backups", **ADDON, status="completed"),
    }


def test_a_backup_from_the_future_does_not_make_a_stopped_addon_look_fresh() -> None:
    shown = _render(_stopped_hourly_plus_one_from_the_future())
    # The newest real backup: initiated 10 h ago, completed 5 minutes later.
    assert shown["age"] == 10 * HOUR - 300
    assert shown["missed"] == 1
    assert shown["future"] == 1
    assert shown["completed"] == 24


def test_every_time_of_the_summary_ignores_future_dated_backups() -> None:
    ahead = NOW + timedelta(hours=6)
    backups = [
        _backup(NOW - timedelta(hours=30)),
        _backup(NOW - timedelta(hours=20)),
        _backup(ahead, minutes=400),  # a long one: it would be the typical duration
        _backup(ahead, "failed"),
        _backup(ahead, "in-progress", minutes=None),
        # Initiated in the past, completed in the future: a time that has not come yet either.
        _backup(NOW - timedelta(hours=1), minutes=24 * 60),
    ]
    s = summarize_backups(backups, now=NOW.timestamp())
    past = (NOW - timedelta(hours=20, minutes=-5)).timestamp()
    assert s.future_dated == 4
    assert s.last_completed_at == past
    assert s.last_initiated_at == (NOW - timedelta(hours=20)).timestamp()
    assert s.oldest_completed_at == (NOW - timedelta(hours=30, minutes=-5)).timestamp()
    assert s.last_failed_at is None
    assert s.in_progress_started_at is None
    assert s.consecutive_failures == 0
    assert s.typical_duration_seconds == 300
    assert s.completed_size_bytes == 2000
    assert sum(s.counts.values()) == 2


def test_a_few_minutes_ahead_is_clock_skew_and_counts() -> None:
    skewed = NOW + timedelta(seconds=FUTURE_TOLERANCE_SECONDS - 301)  # completes at the tolerance
    s = summarize_backups([_backup(skewed)], now=NOW.timestamp())
    assert s.future_dated == 0
    assert s.last_completed_at == skewed.timestamp() + 300
    just_beyond = summarize_backups([_backup(skewed + timedelta(seconds=2))], now=NOW.timestamp())
    assert just_beyond.future_dated == 1
    assert just_beyond.last_completed_at is None


def test_the_future_is_the_api_servers_future() -> None:
    """``now`` is the API's time: with its clock 3 h ahead of ours, a backup it dates 2 h after our now
    completed an hour ago by its own clock."""
    backups = [_backup(NOW + timedelta(hours=2))]
    assert summarize_backups(backups, now=NOW.timestamp()).future_dated == 1
    shown = summarize_backups(backups, now=(NOW + timedelta(hours=3)).timestamp())
    assert shown.future_dated == 0
    assert shown.last_completed_at is not None


_STATUSES = st.sampled_from([s.value for s in BackupStatus] + ["exploded"])
_OFFSETS = st.integers(min_value=-72 * 3600, max_value=72 * 3600)


@given(
    st.lists(
        st.tuples(_OFFSETS, _STATUSES, st.one_of(st.none(), st.integers(min_value=0, max_value=48 * 60))),
        max_size=20,
    ),
    _OFFSETS,
)
def test_no_time_of_the_summary_is_in_the_future(
    listing: list[tuple[int, str, int | None]], read_offset: int
) -> None:
    backups = [_backup(NOW + timedelta(seconds=at), status, minutes) for at, status, minutes in listing]
    now = NOW.timestamp() + read_offset
    s = summarize_backups(backups, now=now)
    limit = now + FUTURE_TOLERANCE_SECONDS
    for at in (
        s.last_completed_at,
        s.last_failed_at,
        s.oldest_completed_at,
        s.in_progress_started_at,
        s.last_initiated_at,
    ):
        assert at is None or (math.isfinite(at) and at <= limit)
    assert s.future_dated + sum(s.counts.values()) == len(backups)


def test_a_future_dated_restore_never_hides_the_newest_real_one() -> None:
    failed = Restore.model_validate(
        {"id": 1, "restoreTimestamp": (NOW - timedelta(hours=1)).isoformat(), "status": "failed"}
    )
    ahead = Restore.model_validate(
        {"id": 2, "restoreTimestamp": (NOW + timedelta(days=300)).isoformat(), "status": "failed"}
    )
    summary = summarize_restores([failed, ahead], now=NOW.timestamp())
    assert summary.counts[BackupStatus.FAILED] == 2
    assert summary.last_at[BackupStatus.FAILED] == (NOW - timedelta(hours=1)).timestamp()


def test_a_future_dated_destination_backup_does_not_make_the_destination_look_fresh() -> None:
    def stored(created: datetime) -> DestinationBackup:
        return DestinationBackup.model_validate(
            {
                "id": f"d-{created.timestamp():.0f}",
                "status": "completed",
                "project": {"id": "p1"},
                "addon": {"id": "db"},
                "createdAt": created.isoformat(),
                "completedAt": (created + timedelta(minutes=5)).isoformat(),
            }
        )

    old = NOW - timedelta(days=3)
    summary = summarize_destination_backups(
        [stored(old), stored(NOW + timedelta(hours=6))], now=NOW.timestamp()
    )
    assert summary.last_completed_at[("p1", "db")] == (old + timedelta(minutes=5)).timestamp()

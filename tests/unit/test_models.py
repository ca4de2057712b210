"""The models accept the quirks real Northflank payloads have, and the documented examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from exporter.northflank.models import (
    Addon,
    ApiErrorBody,
    Backup,
    BackupConfig,
    BackupDestination,
    BackupStatus,
    DestinationBackup,
    Pagination,
    Project,
    Restore,
    Schedule,
    Scheduling,
)

# -- the documented examples (copied verbatim from the API documentation's example responses) -------------

#: GET /v1/backup-destinations/{backupDestinationId}/backups (two documented examples): ``data`` is a list.
SEED_DESTINATION_BACKUPS: dict[str, Any] = {
    "data": [
        {
            "id": "example-backup",
            "name": "Example Backup",
            "status": "completed",
            "project": {"id": "example-project", "name": "Example Project"},
            "addon": {"id": "example-addon", "name": "Example Addon"},
            "config": {
                "addonVersion": "4.4.8",
                "addonType": "mongodb",
                "source": {"type": "global"},
                "size": "1234",
            },
            "schedules": [{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
            "expiredBy": "1729232400000.0",
            "createdAt": "2021-01-20T11:19:53.175Z",
            "completedAt": "2021-01-20T11:19:54.494Z",
        }
    ],
    "pagination": {"hasNextPage": False, "count": 1},
}

#: GET /v1/projects/{projectId}/addons/{addonId}/backups/{backupId}/restores (documented example).
SEED_RESTORES: dict[str, Any] = {
    "data": {
        "restores": [
            {
                "id": 1693287033325,
                "restoreTimestamp": "2021-01-20T11:19:54.494Z",
                "status": "completed",
                "completedAt": "2021-01-20T11:19:54.494Z",
            }
        ]
    },
    "pagination": {"hasNextPage": False, "count": 1},
}

#: GET /v1/projects/{projectId}/addons/{addonId}/backups (documented example).
SEED_BACKUPS: dict[str, Any] = {
    "data": {
        "backups": [
            {
                "id": "example-backup",
                "name": "Example Backup",
                "status": "completed",
                "createdAt": "2021-01-20T11:19:53.175Z",
                "completedAt": "2021-01-20T11:19:54.494Z",
                "config": {"source": {"type": "snapshot"}, "size": "1234", "addonVersion": "4.4.8"},
            }
        ]
    },
    "pagination": {"hasNextPage": False, "count": 1},
}

#: GET /v1/projects/{projectId}/addons/{addonId}/backup-schedules: no pagination in the documented example.
SEED_SCHEDULES: dict[str, Any] = {
    "data": {
        "schedules": [
            {
                "id": "62cc20b90956ab62a58e8474",
                "backupType": "snapshot",
                "backupCompressionType": "gz",
                "additionalDestinations": [{"destinationId": "example-backup-destination", "type": "custom"}],
                "customDestinationId": "example-backup-destination",
                "scheduling": {"interval": "weekly", "minute": [30], "hour": [18], "day": [4]},
                "retentionTime": 7,
                "createdAt": "2022-07-11T13:08:09.626Z",
                "updatedAt": "2022-07-11T13:08:09.626Z",
            }
        ]
    }
}


def test_seed_destination_backups_parse() -> None:
    (item,) = SEED_DESTINATION_BACKUPS["data"]
    backup = DestinationBackup.model_validate(item)

    assert backup.status is BackupStatus.COMPLETED
    assert backup.project is not None
    assert backup.project.id == "example-project"
    assert backup.addon is not None
    assert backup.addon.name == "Example Addon"
    assert backup.config.size == 1234
    assert backup.config.addon_type == "mongodb"
    assert backup.config.source is not None
    assert backup.config.source.type == "global"
    assert backup.schedules == (Scheduling(interval="weekly", minute=(30,), hour=(18,), day=(4,)),)
    assert backup.expired_by == datetime(2024, 10, 18, 6, 20, tzinfo=UTC)
    assert backup.created_at == datetime(2021, 1, 20, 11, 19, 53, 175000, tzinfo=UTC)
    assert backup.completed_at == datetime(2021, 1, 20, 11, 19, 54, 494000, tzinfo=UTC)
    assert Pagination.model_validate(SEED_DESTINATION_BACKUPS["pagination"]) == Pagination(
        has_next_page=False, count=1
    )


def test_seed_restores_parse() -> None:
    (item,) = SEED_RESTORES["data"]["restores"]
    restore = Restore.model_validate(item)

    assert restore.id == "1693287033325"
    assert restore.backup_id is None
    assert restore.status is BackupStatus.COMPLETED
    assert restore.completed_at == restore.restore_timestamp


def test_seed_backups_parse() -> None:
    (item,) = SEED_BACKUPS["data"]["backups"]
    backup = Backup.model_validate(item)

    assert backup.id == "example-backup"
    assert backup.config.size == 1234
    assert backup.config.addon_version == "4.4.8"
    assert backup.duration_seconds == pytest.approx(1.319)


def test_seed_schedules_parse() -> None:
    (item,) = SEED_SCHEDULES["data"]["schedules"]
    schedule = Schedule.model_validate(item)

    assert schedule.backup_type == "snapshot"
    assert schedule.scheduling.interval == "weekly"
    assert schedule.scheduling.day == (4,)
    assert schedule.retention_seconds == 7 * 86_400
    assert schedule.compression == "none"
    assert [d.destination_id for d in schedule.additional_destinations] == ["example-backup-destination"]
    assert schedule.additional_destinations[0].retention_time is None


# -- sizes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("0", 0),
        ("1234", 1234),
        (" 42 ", 42),
        ("1234.0", 1234),
        (1234, 1234),
        ("12 GB", None),
        ("abc", None),
        # ASCII digits only: "²" passes str.isdigit (then int() raises), "١٢" and "1_000" pass float().
        ("²", None),
        ("١٢", None),
        ("1_000", None),
        ("1e3", None),
        ("inf", None),
        # 2**63 bytes and more is no backup's size: unknown, not a giant int that overflows a sum.
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        (2**63, None),
        (10**400, None),
        ("9" * 400, None),
        (1e300, None),
        ("", None),
        ("-5", None),
        ("nan", None),
        (None, None),
        (True, None),
        ({"bytes": 1}, None),
    ],
)
def test_sizes_are_strings_and_anything_else_is_unknown(size: object, expected: int | None) -> None:
    assert BackupConfig.model_validate({"size": size}).size == expected


def test_a_missing_size_is_unknown() -> None:
    assert BackupConfig.model_validate({}).size is None


@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.none(), st.booleans()))
def test_any_size_is_a_plausible_int_or_unknown(size: object) -> None:
    parsed = BackupConfig.model_validate({"size": size}).size
    assert parsed is None or (isinstance(parsed, int) and 0 <= parsed < 2**63)


# -- timestamps --------------------------------------------------------------------------------------------


#: Year 1 ahead of UTC and year 9999 behind it overflow astimezone(); the others are out of the sane range.
OUT_OF_RANGE_TIMES = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    "2199-12-31T23:30:00-01:00",
    "\uff12\uff10\uff12\uff14-05-01T03:00:00Z",  # fullwidth digits
]


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_a_required_timestamp_out_of_range_invalidates_the_item(when: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Backup.model_validate(addon_backup(createdAt=when, completedAt=None))
    (error,) = caught.value.errors(include_input=False)
    assert error["loc"] == ("createdAt",)
    assert when.strip() not in str(caught.value)
    with pytest.raises(ValidationError):
        Restore.model_validate({"id": 1, "restoreTimestamp": when, "status": "completed"})
    with pytest.raises(ValidationError):
        DestinationBackup.model_validate(destination_backup(createdAt=when))


@pytest.mark.parametrize("when", OUT_OF_RANGE_TIMES)
def test_an_optional_timestamp_out_of_range_is_unknown(when: str) -> None:
    backup = Backup.model_validate(addon_backup(createdAt="2024-01-01T00:00:00Z", completedAt=when))
    assert backup.completed_at is None
    schedule_item = {**schedule(interval="hourly", minute=[0]), "createdAt": when, "updatedAt": when}
    parsed = Schedule.model_validate(schedule_item)
    assert parsed.created_at is None
    assert parsed.updated_at is None


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("1970-01-01T00:00:01Z", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("1970-01-01T00:30:00+01:00", None),  # 1969 in UTC
        ("2199-12-31T23:59:59Z", datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2200-01-01T00:30:00+01:00", datetime(2199, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-05-01T03:00:00-05:00", datetime(2024, 5, 1, 8, tzinfo=UTC)),
    ],
)
def test_the_range_is_checked_in_utc(when: str, expected: datetime | None) -> None:
    completed = Backup.model_validate(addon_backup(createdAt="1970-01-01T00:00:01Z", completedAt=when))
    assert completed.completed_at == expected


@given(st.one_of(st.datetimes(timezones=st.timezones()), st.datetimes(), st.text(max_size=40)))
def test_every_kept_timestamp_converts_without_overflow(when: object) -> None:
    value = when.isoformat() if isinstance(when, datetime) else when
    for field in ("createdAt", "completedAt"):
        try:
            backup = Backup.model_validate(addon_backup(**{field: value}))
        except ValidationError:
            continue
        for kept in (backup.created_at, backup.completed_at):
            if kept is not None:
                assert kept.tzinfo is UTC
                assert 0 <= kept.timestamp() < datetime(2200, 1, 1, tzinfo=UTC).timestamp()
                kept.astimezone(UTC)


# -- expiredBy ---------------------------------------------------------------------------------------------


def destination_backup(**overrides: Any) -> dict[str, Any]:
    item = dict(SEED_DESTINATION_BACKUPS["data"][0])
    item.update(overrides)
    return item


@pytest.mark.parametrize("expired_by", [1729232400000, 1729232400000.0, "1729232400000.0", "1729232400000"])
def test_expired_by_is_a_number_or_a_string(expired_by: object) -> None:
    backup = DestinationBackup.model_validate(destination_backup(expiredBy=expired_by))
    assert backup.expired_by == datetime(2024, 10, 18, 6, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "expired_by",
    [None, "", "never", 0, True, -1, 1e300, 10**400, "1" * 40, "²", "١٧٢٩٢٣٢٤٠٠٠٠٠", float("inf"), 7.3e15],
)
def test_an_unusable_expired_by_is_unknown(expired_by: object) -> None:
    assert DestinationBackup.model_validate(destination_backup(expiredBy=expired_by)).expired_by is None


def test_a_missing_expired_by_is_unknown() -> None:
    item = destination_backup()
    del item["expiredBy"]
    assert DestinationBackup.model_validate(item).expired_by is None


# -- restores ----------------------------------------------------------------------------------------------


def test_restore_ids_are_integers_read_as_strings() -> None:
    restore = Restore.model_validate(
        {
            "id": 1693287033325,
            "backupId": "b1",
            "restoreTimestamp": "2024-01-01T00:00:00Z",
            "status": "failed",
        }
    )
    assert restore.id == "1693287033325"
    assert restore.backup_id == "b1"
    assert restore.status.is_failure


@pytest.mark.parametrize("restore_id", [True, None, "", 1.5])
def test_a_restore_without_a_usable_id_is_rejected(restore_id: object) -> None:
    with pytest.raises(ValidationError):
        Restore.model_validate(
            {"id": restore_id, "restoreTimestamp": "2024-01-01T00:00:00Z", "status": "completed"}
        )


# -- in-flight backups -------------------------------------------------------------------------------------


def addon_backup(**overrides: Any) -> dict[str, Any]:
    item = dict(SEED_BACKUPS["data"]["backups"][0])
    item.update(overrides)
    return item


@pytest.mark.parametrize(
    "completed_at",
    [None, "", "1970-01-01T00:00:00.000Z", "2021-01-20T11:19:00.000Z", "not a time"],
    ids=["null", "empty", "epoch", "before-createdAt", "garbage"],
)
def test_in_flight_backups_have_no_completion(completed_at: object) -> None:
    backup = Backup.model_validate(addon_backup(status="in-progress", completedAt=completed_at))

    assert backup.completed_at is None
    assert backup.duration_seconds is None
    assert backup.status.is_running


def test_an_absent_completion_is_none() -> None:
    item = addon_backup(status="scheduled")
    del item["completedAt"]
    assert Backup.model_validate(item).completed_at is None


def test_a_timestamp_without_an_offset_is_utc() -> None:
    backup = Backup.model_validate(addon_backup(createdAt="2021-01-20T11:19:53", completedAt=None))
    assert backup.created_at == datetime(2021, 1, 20, 11, 19, 53, tzinfo=UTC)


def test_a_bad_created_at_is_rejected_without_quoting_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Backup.model_validate(addon_backup(createdAt="SENTINEL-not-a-date"))

    (error,) = caught.value.errors(include_input=False)
    assert error["loc"] == ("createdAt",)
    assert "SENTINEL" not in error["msg"]
    assert "SENTINEL" not in str(caught.value)


# -- statuses ----------------------------------------------------------------------------------------------


#: The statuses the API documents, in its own order.
DOCUMENTED = ("scheduled", "in-progress", "completed", "aborting", "aborted", "failed", "not-supported")


@pytest.mark.parametrize("status", DOCUMENTED)
def test_documented_statuses_are_read(status: str) -> None:
    assert Backup.model_validate(addon_backup(status=status)).status.value == status


@pytest.mark.parametrize("status", ["queued", "COMPLETED", "", "paused-by-support"])
def test_an_unknown_status_is_unknown_and_does_not_fail(status: str) -> None:
    backup = Backup.model_validate(addon_backup(status=status))
    assert backup.status is BackupStatus.UNKNOWN
    assert not backup.status.is_final


@pytest.mark.parametrize("status", [None, 3, ["completed"]])
def test_a_status_that_is_not_a_string_is_rejected(status: object) -> None:
    with pytest.raises(ValidationError):
        Backup.model_validate(addon_backup(status=status))


def test_the_documented_statuses_and_unknown_are_the_only_ones() -> None:
    assert [s.value for s in BackupStatus] == [*DOCUMENTED, "unknown"]


# -- schedules ---------------------------------------------------------------------------------------------


def schedule(**scheduling: Any) -> dict[str, Any]:
    return {"id": "s1", "backupType": "dump", "retentionTime": 7, "scheduling": scheduling}


def test_a_daily_schedule_without_hour_is_rejected() -> None:
    with pytest.raises(ValidationError, match="daily schedule needs at least one hour"):
        Schedule.model_validate(schedule(interval="daily", minute=[0]))


def test_a_weekly_schedule_without_day_is_rejected() -> None:
    with pytest.raises(ValidationError, match="weekly schedule needs at least one day"):
        Schedule.model_validate(schedule(interval="weekly", minute=[0], hour=[3]))


@pytest.mark.parametrize(
    "scheduling",
    [
        {"interval": "monthly", "minute": [0]},
        {"interval": "hourly", "minute": []},
        {"interval": "hourly", "minute": [60]},
        {"interval": "daily", "minute": [0], "hour": [24]},
        {"interval": "weekly", "minute": [0], "hour": [1], "day": [7]},
    ],
)
def test_out_of_range_schedules_are_rejected(scheduling: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Schedule.model_validate(schedule(**scheduling))


@pytest.mark.parametrize("retention", [-1, 36_501, 10**330, True, "²", None, 1e400])
def test_a_retention_out_of_range_invalidates_the_schedule(retention: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Schedule.model_validate({**schedule(interval="hourly", minute=[0]), "retentionTime": retention})
    assert {e["loc"] for e in caught.value.errors()} == {("retentionTime",)}
    additional = {"destinationId": "d1", "retentionTime": retention, "type": "custom"}
    if retention is not None:
        with pytest.raises(ValidationError):
            Schedule.model_validate(
                {**schedule(interval="hourly", minute=[0]), "additionalDestinations": [additional]}
            )


@pytest.mark.parametrize("retention", [0, 7, 36_500])
def test_a_retention_in_range_is_kept(retention: int) -> None:
    parsed = Schedule.model_validate({**schedule(interval="hourly", minute=[0]), "retentionTime": retention})
    assert parsed.retention_seconds == retention * 86_400


# -- ids ---------------------------------------------------------------------------------------------------


BAD_IDS = [".", "..", "", "a/b", "%2e%2e", "a\n", "a b", "ä", None, 7, ["p1"]]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_id_that_cannot_go_into_a_path_invalidates_the_item(bad: object) -> None:
    addon = {"id": bad, "name": "db", "spec": {"type": "postgresql"}}
    for model, item in (
        (Project, {"id": bad, "name": "p"}),
        (Addon, addon),
        (BackupDestination, {"id": bad, "name": "d"}),
    ):
        if model is BackupDestination and bad is None:
            continue  # documented optional: kept, never asked for its backups
        with pytest.raises(ValidationError) as caught:
            model.model_validate(item)
        (error,) = caught.value.errors(include_input=False)
        assert error["loc"] == ("id",)
        assert "^[A-Za-z0-9-]+$" in error["msg"]


def test_ids_of_the_documented_pattern_are_kept() -> None:
    assert Project.model_validate({"id": "my-Project-7", "name": "p"}).id == "my-Project-7"


def test_an_hourly_dump_schedule_defaults_to_gz() -> None:
    parsed = Schedule.model_validate(schedule(interval="hourly", minute=[0, 30]))
    assert parsed.scheduling.hour is None
    assert parsed.compression == "gz"


# -- destinations and errors -------------------------------------------------------------------------------


def test_destination_credentials_are_not_kept() -> None:
    destination = BackupDestination.model_validate(
        {
            "id": "d1",
            "name": "offsite",
            "type": "s3",
            "prefix": "pg/",
            "credentials": {"accessKey": "AKIA-MODEL-CANARY", "secretKey": "SECRET-MODEL-CANARY"},
        }
    )
    assert "CANARY" not in repr(destination)
    assert "CANARY" not in destination.model_dump_json()
    assert not hasattr(destination, "credentials")


def test_a_destination_without_an_id_is_accepted() -> None:
    assert BackupDestination.model_validate({"name": "offsite"}).id is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"status": 404, "message": "Addon not found", "id": "e1"},
            ApiErrorBody(status=404, message="Addon not found", id="e1"),
        ),
        ({"errorId": "e2"}, ApiErrorBody(id="e2")),
        ({}, ApiErrorBody()),
        # details is free-form and may echo the request (the token): not even kept.
        ({"details": [1, 2], "extra": True}, ApiErrorBody()),
    ],
)
def test_api_error_bodies_are_all_optional(body: dict[str, Any], expected: ApiErrorBody) -> None:
    parsed = ApiErrorBody.model_validate(body)
    assert parsed == expected
    assert "details" not in parsed.model_dump()


def test_models_are_frozen() -> None:
    backup = Backup.model_validate(addon_backup())
    with pytest.raises(ValidationError):
        backup.id = "other"  # type: ignore[misc]

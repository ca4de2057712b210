"""The exporter against the simulator, over real sockets on 127.0.0.1, under a fixed clock.

Expected values are computed from the simulator's own records (what the API data implies), not from the
exporter's models, so a parsing or summarising mistake shows up as a difference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from exporter.northflank import routes
from exporter.simulator.app import DEFAULT_TOKEN
from exporter.simulator.fleet import SIMULATED_SECRETS
from exporter.simulator.history import addon_restores, destination_backups
from tests.support import MONDAY_NOON, SimulatedExporter, series, simulated_exporter, value

START = MONDAY_NOON
TOKEN = "nf-integration-token-7f3a"


Harness = SimulatedExporter


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with simulated_exporter("demo", token=TOKEN, start=START) as running:
        yield running


async def test_every_value_is_what_the_api_data_implies(harness: Harness) -> None:
    await harness.exporter.scheduler.refresh()
    samples = await harness.exporter.scrape()
    now = harness.clock.now()
    sim = harness.simulator

    assert value(samples, "northflank_up") == 1
    assert len(series(samples, "northflank_addon_info")) == len(sim.fleet.addons)
    for addon in sim.fleet.addons:
        labels = {"project": addon.project_id, "addon": addon.id}
        project = next(p for p in sim.fleet.projects if p.id == addon.project_id)
        info = {**labels, "addon_name": addon.name, "project_name": project.name, "addon_type": addon.type}
        assert value(samples, "northflank_addon_info", **info) == 1

        records = sim.backups_at(addon, now)
        completed = [r for r in records if r.status == "completed"]
        failed = [r for r in records if r.status == "failed"]
        for status in (
            "scheduled",
            "in-progress",
            "completed",
            "aborting",
            "aborted",
            "failed",
            "not-supported",
        ):
            expected = sum(1 for r in records if r.status == status)
            assert value(samples, "northflank_addon_backups", **labels, status=status) == expected, (
                addon,
                status,
            )
        if completed:
            last = max(completed, key=lambda r: r.completed_at or 0)
            assert last.completed_at is not None
            assert value(samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels) == (
                pytest.approx(last.completed_at, abs=0.001)
            )
            assert value(samples, "northflank_addon_backup_last_completed_age_seconds", **labels) == (
                pytest.approx(now - last.completed_at, abs=0.001)
            )
            assert value(samples, "northflank_addon_backup_last_completed_size_bytes", **labels) == last.size
            assert value(samples, "northflank_addon_backup_last_completed_duration_seconds", **labels) == (
                pytest.approx(last.completed_at - last.created_at, abs=0.002)
            )
            assert value(samples, "northflank_addon_backups_size_bytes", **labels) == sum(
                r.size for r in completed
            )
            newer = [r for r in failed if r.created_at > last.created_at]
            assert value(samples, "northflank_addon_backup_consecutive_failures", **labels) == len(newer)
        else:
            assert (
                value(samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels) is None
            )
            assert value(samples, "northflank_addon_backup_consecutive_failures", **labels) == len(failed)
        running = [r.created_at for r in records if r.status == "in-progress"]
        assert value(samples, "northflank_addon_backup_in_progress_started_timestamp_seconds", **labels) == (
            pytest.approx(min(running), abs=0.001) if running else None
        )
        assert value(samples, "northflank_addon_backup_schedule_covered", **labels) == (
            1 if addon.schedules else 0
        )
        for schedule in addon.schedules:
            s_labels = {**labels, "schedule": schedule.id}
            assert value(samples, "northflank_addon_backup_schedule_retention_seconds", **s_labels) == (
                schedule.retention_days * 86400
            )
            next_run = value(
                samples, "northflank_addon_backup_schedule_next_run_timestamp_seconds", **s_labels
            )
            assert next_run is not None
            assert now < next_run <= now + 7 * 86400
        restores = addon_restores(sim.fleet, addon, sim.seed, now)
        for status in ("completed", "failed", "in-progress"):
            assert value(samples, "northflank_addon_restores", **labels, status=status) == sum(
                1 for r in restores if r.status == status
            )

    for destination in sim.fleet.destinations:
        stored = destination_backups(sim.fleet, destination.id, sim.seed, now)
        done = [d.backup for d in stored if d.backup.status == "completed"]
        assert value(samples, "northflank_backup_destination_size_bytes", destination=destination.id) == sum(
            b.size for b in done
        )
        assert (
            value(
                samples,
                "northflank_backup_destination_info",
                destination=destination.id,
                destination_name=destination.name,
            )
            == 1
        )


async def test_a_failing_resource_keeps_its_last_good_values_and_refresh_time(harness: Harness) -> None:
    await harness.exporter.scheduler.refresh()
    before = await harness.exporter.scrape()
    addon = harness.simulator.fleet.addons[0]
    labels = {"project": addon.project_id, "addon": addon.id}
    other = harness.simulator.fleet.addons[1]

    harness.simulator.inject("status", routes.BACKUPS, params={"addonId": addon.id}, status=502, body="html")
    harness.clock.advance(600)
    await harness.exporter.scheduler.refresh()
    after = await harness.exporter.scrape()

    refreshed = "northflank_exporter_last_refresh_timestamp_seconds"
    assert value(after, refreshed, **labels, resource="backups") == value(
        before, refreshed, **labels, resource="backups"
    )
    assert (
        value(after, refreshed, project=other.project_id, addon=other.id, resource="backups") == START + 600
    )
    for name in (
        "northflank_addon_backup_last_completed_timestamp_seconds",
        "northflank_addon_backups_size_bytes",
    ):
        assert value(after, name, **labels) == value(before, name, **labels)
    assert value(after, "northflank_addon_backup_last_completed_age_seconds", **labels) == pytest.approx(
        (value(before, "northflank_addon_backup_last_completed_age_seconds", **labels) or 0) + 600
    )
    assert (
        value(after, "northflank_exporter_refresh_errors_total", resource="backups", reason="server_error")
        == 1
    )
    # 5xx are retried before giving up: every attempt is a request, with its code.
    attempts = value(after, "northflank_api_requests_total", endpoint=routes.BACKUPS, code="502")
    assert attempts is not None
    assert attempts > 1


async def test_permission_denied_project_and_vanished_addon(harness: Harness) -> None:
    sim = harness.simulator
    denied = sim.fleet.projects[0]
    addon = next(a for a in sim.fleet.addons if a.project_id != denied.id)
    sim.inject("status", routes.ADDONS, params={"projectId": denied.id}, status=403)
    sim.inject("status", routes.BACKUP_SCHEDULES, params={"addonId": addon.id}, status=404)
    await harness.exporter.scheduler.refresh()
    samples = await harness.exporter.scrape()

    projects = {dict(k)["project"] for k in series(samples, "northflank_addon_info")}
    assert denied.id not in projects
    assert projects == {p.id for p in sim.fleet.projects} - {denied.id}
    assert (
        value(samples, "northflank_exporter_refresh_errors_total", resource="addons", reason="permission")
        == 1
    )
    assert (
        value(samples, "northflank_exporter_refresh_errors_total", resource="schedules", reason="not_found")
        == 1
    )
    labels = {"project": addon.project_id, "addon": addon.id}
    assert value(samples, "northflank_addon_backup_schedule_covered", **labels) is None
    assert value(samples, "northflank_addon_backups", **labels, status="completed") is not None
    assert value(samples, "northflank_up") == 1
    # 403 and 404 are answers, not accidents: asked once each, never retried.
    assert value(samples, "northflank_api_requests_total", endpoint=routes.ADDONS, code="403") == 1


async def test_an_addon_removed_from_the_listing_disappears(harness: Harness) -> None:
    await harness.exporter.scheduler.refresh()
    gone = harness.simulator.fleet.addons[2]
    harness.simulator.remove_addon(gone.id)
    await harness.exporter.scheduler.refresh()
    samples = await harness.exporter.scrape()
    assert not [k for k in samples if ("addon", gone.id) in k[1]]
    assert len(series(samples, "northflank_addon_info")) == len(harness.simulator.fleet.addons) - 1


async def test_revoked_token_turns_up_to_zero_and_keeps_data(harness: Harness) -> None:
    await harness.exporter.scheduler.refresh()
    harness.simulator.revoke_token()
    await harness.exporter.scheduler.refresh()
    samples = await harness.exporter.scrape()
    assert value(samples, "northflank_up") == 0
    assert value(samples, "northflank_exporter_refresh_errors_total", resource="projects", reason="auth") == 1
    assert len(series(samples, "northflank_addon_info")) == len(harness.simulator.fleet.addons)


async def test_ready_only_after_the_first_complete_refresh(harness: Harness) -> None:
    http, url = harness.exporter.http, harness.exporter.url
    assert (await http.get(f"{url}/-/ready")).status_code == 503
    assert (await http.get(f"{url}/-/healthy")).status_code == 200
    await harness.exporter.scheduler.refresh()
    assert (await http.get(f"{url}/-/ready")).status_code == 200
    landing = await http.get(f"{url}/")
    assert 'href="/metrics"' in landing.text


async def test_scrapes_do_not_wait_on_a_hanging_api(harness: Harness) -> None:
    await harness.exporter.scheduler.refresh()
    harness.simulator.inject("hang", routes.BACKUPS)
    pending = harness.exporter.scheduler.start_refresh()
    # The refresh now waits on the API; a scrape must still answer at once with the last good data.
    samples = await asyncio.wait_for(harness.exporter.scrape(), timeout=5)
    assert value(samples, "northflank_up") == 1
    assert not pending.done()
    harness.simulator.release_hangs()
    harness.simulator.clear_faults()


async def test_token_and_destination_credentials_never_leak(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = harness.simulator
    await harness.exporter.scheduler.refresh()
    sim.inject("status", routes.BACKUP_DESTINATIONS, status=500, body="json", times=1)
    sim.inject("missing_field", routes.BACKUP_DESTINATIONS, field="name")
    await harness.exporter.scheduler.refresh()
    sim.revoke_token()
    await harness.exporter.scheduler.refresh()
    text = await harness.exporter.scrape_text()
    logs = caplog.text
    for secret in (TOKEN, *SIMULATED_SECRETS):
        assert secret not in text
        assert secret not in logs
    assert (
        value(
            await harness.exporter.scrape(),
            "northflank_exporter_refresh_errors_total",
            resource="backup_destinations",
            reason="invalid_response",
        )
        == 1
    )
    assert DEFAULT_TOKEN != TOKEN

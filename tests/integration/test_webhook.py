"""The notification webhook over real sockets: its own listener, the token, the size cap, deduplication,
and the path simulator -> webhook -> planner (that addon read first) -> /metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.simulator.routes import BACKUPS
from exporter.simulator.webhooks import SUCCESS, WebhookOptions, WebhookSender, backup_events
from exporter.web.webhook import MAX_BODY_BYTES, WEBHOOK_PATH, WebhookSecret
from tests.support import (
    MONDAY_NOON,
    RunningExporter,
    eventually,
    parse_samples,
    promtool_check_metrics,
    simulated_exporter,
    value,
)

TOKEN = "nf-webhook-test-token"
SECRET = "whsec-Zq8-not-in-any-output"
EVENTS = "northflank_exporter_webhook_events_total"


def _headers(event_id: str, token: str | None = SECRET) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Northflank-Notification-Integration-Event-Id": event_id,
        "X-Northflank-Notification-Integration-Event-Type": "addon-backup:success",
    }
    if token is not None:
        headers["X-Northflank-Notification-Integration-Token"] = token
    return headers


@pytest.fixture
async def exporter_with_webhook() -> AsyncIterator[tuple[RunningExporter, str]]:
    async with simulated_exporter(
        "e2e", token=TOKEN, webhook_secret=WebhookSecret(SECRET.encode())
    ) as simulated:
        yield simulated.exporter, simulated.exporter.webhook_url


async def test_token_size_and_dedupe_over_a_socket(
    exporter_with_webhook: tuple[RunningExporter, str], caplog: pytest.LogCaptureFixture, promtool: str
) -> None:
    running, url = exporter_with_webhook
    caplog.set_level(logging.DEBUG)
    body = b'{"event": "addon-backup:success", "data": {"addonId": "no-such-addon"}}'
    http = running.http
    assert (await http.post(url, content=body, headers=_headers("e1", token=None))).status_code == 401
    assert (await http.post(url, content=body, headers=_headers("e1", token=SECRET[:-1]))).status_code == 401
    assert (await http.post(url, content=body, headers=_headers("e1", token=SECRET + "x"))).status_code == 401
    big = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    assert (await http.post(url, content=big, headers=_headers("e2"))).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap holds while streaming
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    assert (await http.post(url, content=chunks(), headers=_headers("e3"))).status_code == 413
    assert (await http.post(url, content=b"{not json", headers=_headers("e4"))).status_code == 400
    first = await http.post(url, content=body, headers=_headers("e5"))
    again = await http.post(url, content=body, headers=_headers("e5"))
    assert (first.status_code, again.status_code) == (202, 200)
    # Only the webhook is served on its port; /metrics is not.
    base = url.removesuffix(WEBHOOK_PATH)
    assert (await http.get(base + "/metrics")).status_code == 404
    assert (await http.get(url)).status_code == 405

    text = await running.scrape_text()
    samples = parse_samples(text)
    assert value(samples, EVENTS, event="other", outcome="unauthorized") == 3
    assert value(samples, EVENTS, event="other", outcome="too_large") == 2
    assert value(samples, EVENTS, event="other", outcome="invalid") == 1
    # The addon is unknown (and the test's scheduler takes no hints): unmatched, then a duplicate.
    assert value(samples, EVENTS, event="addon-backup:success", outcome="unmatched") == 1
    assert value(samples, EVENTS, event="addon-backup:success", outcome="duplicate") == 1
    assert value(samples, "northflank_exporter_webhook_last_event_timestamp_seconds") == MONDAY_NOON
    assert SECRET not in text
    assert await promtool_check_metrics(promtool, text) == (0, "", "")
    assert SECRET not in caplog.text
    assert SECRET[:-1] not in caplog.text
    assert SECRET not in repr(running.exporter.settings)
    # Unmatched shapes are logged once, by their keys, never their values.
    assert "no-such-addon" not in caplog.text
    assert caplog.text.count("named no known addon (its keys: event, data, addonId)") == 1


async def test_an_event_makes_the_planner_read_that_addon_first() -> None:
    async with simulated_exporter(
        "demo",
        token=TOKEN,
        planner=True,
        # One read at a time, so that "first" is the order of the reads; a budget the fixed clock
        # cannot run out of (its buckets never refill).
        concurrency=1,
        request_budget=100_000,
        webhook_secret=WebhookSecret(SECRET.encode()),
    ) as simulated:
        simulator, clock, running = simulated.simulator, simulated.clock, simulated.exporter
        exporter = running.exporter
        planner = exporter.scheduler
        addons = len(simulator.fleet.addons)

        def settled() -> bool:  # every listing read once, and nothing in flight
            snapshot = exporter.store.current
            read = [a for a in snapshot.addons.values() if a.restores is not None and a.schedules is not None]
            return len(read) == addons and not planner.in_flight()  # type: ignore[attr-defined]

        await eventually(settled, within=20, what="the first reads of every addon")
        # The last backup to end in the next hour: when it ends, the checks of the runs of other addons
        # that ended before it are due too (the planner slept through them: its clock is fixed), and it
        # must still be read first.
        events = backup_events(simulator, MONDAY_NOON, MONDAY_NOON + 3600)
        event = [e for e in events if e.event == SUCCESS][-1]
        record = event.record
        assert len({e.record.addon_id for e in events if e.event == SUCCESS}) > 1
        clock.set(event.at + 1)
        mark = len(simulator.request_log)
        async with httpx.AsyncClient() as http:
            sender = WebhookSender(
                simulator,
                WebhookOptions(url=running.webhook_url, secret=SECRET),
                client=http,
            )
            await sender.deliver(event)
        assert sender.log.statuses == {202: 1}

        def backup_reads() -> list[str]:
            return [r.path for r in simulator.request_log.records[mark:] if r.route == BACKUPS]

        await eventually(lambda: bool(backup_reads()), within=10, what="a backup listing after the event")
        assert f"/addons/{record.addon_id}/backups" in backup_reads()[0]

        def shown() -> bool:
            samples = parse_samples(exporter.render_metrics().decode())
            at = value(
                samples,
                "northflank_addon_backup_last_completed_timestamp_seconds",
                project=record.project_id,
                addon=record.addon_id,
            )
            return at is not None and record.completed_at is not None and abs(at - record.completed_at) < 1

        await eventually(shown, within=10, what="the backup on /metrics")
        samples = parse_samples(await running.scrape_text())
        assert value(samples, EVENTS, event=SUCCESS, outcome="accepted") == 1
        assert planner.hinted_reads == 1  # type: ignore[attr-defined]

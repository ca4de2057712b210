"""The simulator's notification deliveries: what it sends for its backups, and its lost, duplicated and
unknown-shape deliveries."""

from __future__ import annotations

import asyncio
import json

import httpx

from exporter.clock import FixedClock
from exporter.simulator.app import Simulator
from exporter.simulator.webhooks import START, SUCCESS, WebhookOptions, WebhookSender, backup_events
from exporter.web.webhook import find_ids
from tests.support import MONDAY_NOON

DAY = 86400.0


def _send(options: WebhookOptions, hours: float = 24) -> tuple[list[httpx.Request], WebhookSender, int]:
    simulator = Simulator.from_scenario("demo", clock=FixedClock(MONDAY_NOON))
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(202)

    async def main() -> tuple[WebhookSender, int]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = WebhookSender(simulator, options, client=client)
            count = await sender.send_between(MONDAY_NOON, MONDAY_NOON + hours * 3600)
            return sender, count

    sender, count = asyncio.run(main())
    return requests, sender, count


def test_every_backup_starts_and_ends_with_an_event_naming_its_addon() -> None:
    simulator = Simulator.from_scenario("demo", clock=FixedClock(MONDAY_NOON))
    events = backup_events(simulator, MONDAY_NOON, MONDAY_NOON + DAY)
    assert events == sorted(events, key=lambda e: (e.at, e.record.id, e.event))
    starts = {e.record.id for e in events if e.event == START}
    assert starts
    assert {e.record.id for e in events if e.event == SUCCESS} & starts
    requests, sender, count = _send(WebhookOptions(url="http://hook/webhook", secret="s3cret"))
    assert len(requests) == count == sender.log.sent
    first = requests[0]
    assert first.headers["x-northflank-notification-integration-token"] == "s3cret"
    body = json.loads(first.content)
    assert first.headers["x-northflank-notification-integration-event-type"] == body["event"]
    found = find_ids(body)
    assert found.addons == (events[0].record.addon_id,)
    assert found.projects == (events[0].record.project_id,)


def test_lost_duplicated_and_unknown_shapes_come_in_the_asked_shares() -> None:
    options = WebhookOptions(
        url="http://hook/webhook", secret=None, lost=0.2, duplicated=0.05, unknown_shape=0.1
    )
    requests, sender, count = _send(options, hours=72)
    log = sender.log
    assert count > 100
    assert 0.1 < log.lost / count < 0.3
    assert 0 < log.duplicated < 0.15 * count
    assert len(requests) == count - log.lost + log.duplicated
    ids = [r.headers["x-northflank-notification-integration-event-id"] for r in requests]
    assert len(ids) - len(set(ids)) == log.duplicated
    unknown = [r for r in requests if not find_ids(json.loads(r.content)).addons]
    assert 0 < len(unknown) < 0.25 * len(requests)
    assert all("x-northflank-notification-integration-token" not in r.headers for r in requests)
    # The same seed, the same deliveries.
    again, _, _ = _send(options, hours=72)
    assert [r.content for r in again] == [r.content for r in requests]
    assert "secret" not in repr(WebhookOptions(url="u", secret="secret"))

"""The simulator's notification webhook: what a Northflank ``RAW_WEBHOOK`` integration would POST for the
simulated backups, with lost, duplicated and unknown-shape deliveries on demand.

For every backup of the fleet (scheduled or manual), at the instant its history (:mod:`.history`) says:
``addon-backup:start`` when it is initiated (``createdAt``), then ``addon-backup:success`` or
``addon-backup:failure`` when it ends (``completedAt``). Each delivery is one POST with Northflank's
headers (``X-Northflank-Notification-Integration-Id``, ``-Name``, ``-Token``, ``-Event-Id``,
``-Event-Type``) and a JSON body. Northflank does not document ``data`` for addon-backup events; the
simulator sends this *documented shape* (its own guess, modelled on the documented build events)::

    {"event": "addon-backup:success",
     "data": {"project": {"id": "<projectId>", "name": "..."},
              "addon": {"id": "<addonId>", "name": "..."},
              "backup": {"id": "<backupId>", "name": "...", "status": "completed",
                         "createdAt": "<ISO 8601>", "completedAt": "<ISO 8601>"}}}

and, for a share of the deliveries (``unknown_shape``), an *unknown shape* naming no id the exporter can
find (``{"event": ..., "data": {"subject": {"kind": "addon", "ref": "<opaque>"}, "text": ...}}``).
A share of the deliveries is lost (``lost``: never sent) and a share duplicated (``duplicated``: sent
twice with the same event id). Every choice is a pure function of (seed, backup, event): a run is
reproducible.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from .app import Simulator
from .fleet import HOUR
from .history import BackupRecord, addon_backups, hex_id, iso, unit

log = logging.getLogger(__name__)

START = "addon-backup:start"
SUCCESS = "addon-backup:success"
FAILURE = "addon-backup:failure"
INTEGRATION_ID = "sim-notifications"
INTEGRATION_NAME = "simulator"
#: The sender looks this far ahead in the pure history at a time (one history read per addon per window).
WINDOW = 2 * HOUR


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """Where and how the simulator delivers its notifications."""

    url: str
    #: Sent verbatim in X-Northflank-Notification-Integration-Token (None: no token header).
    secret: str | None
    #: Shares (0 to 1) of deliveries never sent, sent twice, and sent in the unknown shape.
    lost: float = 0.0
    duplicated: float = 0.0
    unknown_shape: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lost", "duplicated", "unknown_shape"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1")

    def __repr__(self) -> str:  # the secret stays out of logs and test reports
        return (
            f"WebhookOptions(url={self.url!r}, lost={self.lost}, duplicated={self.duplicated}, "
            f"unknown_shape={self.unknown_shape})"
        )


@dataclass(frozen=True, slots=True)
class BackupEvent:
    at: float
    event: str
    record: BackupRecord


def backup_events(simulator: Simulator, lo: float, hi: float) -> list[BackupEvent]:
    """Every start (``createdAt``) and end (``completedAt``) in ``(lo, hi]``, in time order."""
    events: list[BackupEvent] = []
    for addon in simulator.fleet.addons:
        if simulator.is_removed(addon.id):
            continue
        for record in addon_backups(simulator.fleet, addon, simulator.seed, hi):
            if lo < record.created_at <= hi:
                events.append(BackupEvent(record.created_at, START, record))
            if record.completed_at is not None and lo < record.completed_at <= hi:
                final = SUCCESS if record.status == "completed" else FAILURE
                events.append(BackupEvent(record.completed_at, final, record))
    events.sort(key=lambda e: (e.at, e.record.id, e.event))
    return events


def documented_payload(simulator: Simulator, event: BackupEvent) -> dict[str, Any]:
    record = event.record
    addon = simulator.fleet.addon(record.addon_id)
    project = next((p for p in simulator.fleet.projects if p.id == record.project_id), None)
    backup: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "status": "in-progress" if event.event == START else record.status,
        "createdAt": iso(record.created_at),
    }
    if event.event != START and record.completed_at is not None:
        backup["completedAt"] = iso(record.completed_at)
    return {
        "event": event.event,
        "data": {
            "project": {"id": record.project_id, "name": project.name if project else record.project_id},
            "addon": {"id": record.addon_id, "name": addon.name if addon else record.addon_id},
            "backup": backup,
        },
    }


def unknown_payload(simulator: Simulator, event: BackupEvent) -> dict[str, Any]:
    ref = hex_id(simulator.seed, "opaque", event.record.id, length=16)
    return {"event": event.event, "data": {"subject": {"kind": "addon", "ref": ref}, "text": "backup event"}}


@dataclass
class DeliveryLog:
    """What the sender did: counts, and each delivery sent (time, event, addon id) for the benchmarks."""

    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    unknown_shape: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    deliveries: list[tuple[float, str, str]] = field(default_factory=list)


class WebhookSender:
    """Delivers the simulator's backup events to ``options.url`` with ``client`` (any httpx client: over
    a socket, or in-process with an ASGI transport)."""

    def __init__(self, simulator: Simulator, options: WebhookOptions, *, client: httpx.AsyncClient) -> None:
        self._simulator = simulator
        self._options = options
        self._client = client
        self.log = DeliveryLog()

    def _share(self, event: BackupEvent, purpose: str) -> float:
        return unit(self._simulator.seed, "webhook", event.record.id, event.event, purpose)

    async def deliver(self, event: BackupEvent) -> None:
        options = self._options
        if self._share(event, "lost") < options.lost:
            self.log.lost += 1
            return
        unknown = self._share(event, "shape") < options.unknown_shape
        payload = (unknown_payload if unknown else documented_payload)(self._simulator, event)
        self.log.unknown_shape += unknown
        headers = {
            "Content-Type": "application/json",
            "X-Northflank-Notification-Integration-Id": INTEGRATION_ID,
            "X-Northflank-Notification-Integration-Name": INTEGRATION_NAME,
            "X-Northflank-Notification-Integration-Event-Id": hex_id(
                self._simulator.seed, "event", event.record.id, event.event
            ),
            "X-Northflank-Notification-Integration-Event-Type": event.event,
        }
        if options.secret is not None:
            headers["X-Northflank-Notification-Integration-Token"] = options.secret
        body = json.dumps(payload).encode()
        times = 2 if self._share(event, "duplicate") < options.duplicated else 1
        self.log.duplicated += times - 1
        for _ in range(times):
            try:
                response = await self._client.post(options.url, content=body, headers=headers)
            except httpx.HTTPError as error:
                self.log.failed += 1
                log.debug("webhook delivery failed: %s", type(error).__name__)
                continue
            self.log.sent += 1
            self.log.statuses[response.status_code] = self.log.statuses.get(response.status_code, 0) + 1
            self.log.deliveries.append((self._simulator.clock.now(), event.event, event.record.addon_id))

    async def send_between(self, lo: float, hi: float) -> int:
        """Deliver every event in ``(lo, hi]`` at once (tests under a fixed clock); how many there were."""
        events = backup_events(self._simulator, lo, hi)
        for event in events:
            await self.deliver(event)
        return len(events)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver each event at its instant (by the simulator's clock, as the event loop sleeps) until
        ``stop`` is set."""
        clock = self._simulator.clock
        lo = clock.now()
        while not stop.is_set():
            hi = lo + WINDOW
            for event in backup_events(self._simulator, lo, hi):
                delay = event.at - clock.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop.is_set():
                    return
                await self.deliver(event)
            delay = hi - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            lo = hi


__all__ = [
    "FAILURE",
    "START",
    "SUCCESS",
    "BackupEvent",
    "DeliveryLog",
    "WebhookOptions",
    "WebhookSender",
    "backup_events",
    "documented_payload",
    "unknown_payload",
]

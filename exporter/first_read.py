"""The one log line a new user waits for: when the exporter first has the whole picture, and how long it
took (``first complete read: N addons in T s``). Until then /metrics is partial, as
``northflank_exporter_initial_read_ratio`` shows; after it, nothing is logged here again."""

from __future__ import annotations

import logging

from exporter.clock import Clock
from exporter.resources import ADDON_RESOURCES
from exporter.snapshot import AddonKey, AddonSnapshot, Snapshot

log = logging.getLogger(__name__)


def _complete(addon: AddonSnapshot) -> bool:
    return all(addon.refreshed_at(resource) is not None for resource in ADDON_RESOURCES)


class FirstCompleteRead:
    """Watches snapshots after each successful read; logs once, at INFO, when the projects were listed,
    every project's addons too, and every addon's backups, schedules and restores were read once."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._started = clock.now()
        self.done = False
        #: The addon found unread last time: checked first, so a check is O(1) until it has been read.
        self._waiting_on: AddonKey | None = None

    def observe(self, snapshot: Snapshot) -> None:
        if self.done or snapshot.projects_at is None:
            return
        if any(project.addons_at is None for project in snapshot.projects.values()):
            return
        waiting = snapshot.addons.get(self._waiting_on) if self._waiting_on is not None else None
        if waiting is not None and not _complete(waiting):
            return
        for key, addon in snapshot.addons.items():
            if not _complete(addon):
                self._waiting_on = key
                return
        self.done = True
        seconds = max(0.0, self._clock.now() - self._started)
        log.info(
            "first complete read: %d addons in %.1fs",
            len(snapshot.addons),
            seconds,
            extra={"addons": len(snapshot.addons), "seconds": round(seconds, 3)},
        )


__all__ = ["FirstCompleteRead"]

"""The rows of the last status view, kept between visits: most visits then assess no addon at all."""

from __future__ import annotations

from exporter.snapshot import AddonKey, AddonSnapshot, Snapshot
from exporter.web.status_rows import AddonRow, addon_row


class RowCache:
    """The rows of the last view, each reused while its addon is the same object (the snapshot replaces
    an addon it changes) and its assessment still holds (:attr:`AddonHealth.valid_until`): most visits
    then judge no schedule at all. Used from one event loop, so never by two builds at once."""

    def __init__(self) -> None:
        self._rows: dict[AddonKey, tuple[AddonSnapshot, float, AddonRow]] = {}

    def rows(self, snapshot: Snapshot, *, now: float, grace: float) -> tuple[list[AddonRow], int]:
        """Every addon's row at ``now``, and how many could not be built (left out)."""
        kept: dict[AddonKey, tuple[AddonSnapshot, float, AddonRow]] = {}
        rows: list[AddonRow] = []
        errors = 0
        for key, addon in snapshot.addons.items():
            hit = self._rows.get(key)
            if hit is not None and hit[0] is addon and hit[1] <= now < hit[2].health.valid_until:
                kept[key] = hit
                rows.append(hit[2])
                continue
            try:
                row = addon_row(addon, now=now, grace=grace)
            except Exception:  # one addon, never the page; counted on the page
                errors += 1
                continue
            kept[key] = (addon, now, row)
            rows.append(row)
        self._rows = kept
        return rows, errors


__all__ = ["RowCache"]

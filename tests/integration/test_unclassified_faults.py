"""Every failure is classified, counted and attributed (issue 8, section 5), over real sockets.

The API sends timestamps at the edges of what Python's datetime holds (year 9999 with a negative
offset, year 1 with a positive one): converting them to UTC overflows. Whether the models reject such an
item (skipped and counted) or the listing fails, the outcome must be classified: a counter with the
resource's label moves, the other addons are read as usual, ``northflank_up`` stays honest (one addon
failing is not the API failing), the addon keeps its last good data, and no traceback reaches the log
above debug level. Uses the stand-in API of ``test_truthful_data``.
"""

from __future__ import annotations

import pytest

from tests.integration.test_truthful_data import ERRORS, Harness, addon, harness, resource_up
from tests.support import Samples, value

__all__ = ["harness"]  # the fixture, imported to be used here

EDGES = {
    "created_9999": ("backups", "createdAt", "9999-12-31T23:59:59-05:00"),
    "created_0001": ("backups", "createdAt", "0001-01-01T00:00:00+05:00"),
    "completed_9999": ("backups", "completedAt", "9999-12-31T23:59:59-05:00"),
    "restore_9999": ("restores", "restoreTimestamp", "9999-12-31T23:59:59-05:00"),
}
LAST_REFRESH = "northflank_exporter_last_refresh_timestamp_seconds"


def counted(before: Samples, after: Samples, resource: str) -> float:
    """How much every counter with this ``resource`` label grew: refresh errors, or items skipped."""
    grown = 0.0
    for (name, labels), v in after.items():
        if name.endswith("_total") and ("resource", resource) in labels:
            grown += v - before.get((name, labels), 0.0)
    return grown


@pytest.mark.parametrize("edge", EDGES.values(), ids=EDGES.keys())
async def test_a_timestamp_that_overflows_is_classified_and_counted(
    harness: Harness, edge: tuple[str, str, str]
) -> None:
    resource, field, raw = edge
    h = harness
    odd = addon("odd")
    if resource == "restores":
        h.api.restores["odd"] = [
            {"id": "r1", "backupId": "b1", "status": "completed", "restoreTimestamp": "2026-11-01T10:00:00Z"}
        ]
    before = await h.refresh()
    kept = {
        "backups": value(before, "northflank_addon_backup_last_completed_timestamp_seconds", **odd),
        "restores": value(before, "northflank_addon_restores", **odd, status="completed"),
    }[resource]
    assert kept is not None

    listing = h.api.backups["odd"] if resource == "backups" else h.api.restores["odd"]
    original = dict(listing[-1])
    listing[-1] = {**original, field: raw}
    during = await h.refresh()

    # Counted, under the right resource: the listing failed, or the item was skipped.
    assert counted(before, during, resource) >= 1
    # The addon keeps its last good values (or, if only the odd item was skipped, the same ones).
    shown = {
        "backups": value(during, "northflank_addon_backup_last_completed_timestamp_seconds", **odd),
        "restores": value(during, "northflank_addon_restores", **odd, status="completed"),
    }[resource]
    assert shown == kept or (resource == "restores" and shown == 0)
    # Honest: one addon's odd item is not the API failing; the others are read as usual.
    assert value(during, "northflank_up") == 1
    assert set(resource_up(during).values()) == {1}
    healthy = {**addon("healthy"), "resource": resource}
    assert value(during, LAST_REFRESH, **healthy) == h.clock.now()
    h.no_traceback_above_debug()
    if counted(before, during, resource) and value(during, ERRORS, resource=resource, reason="unexpected"):
        assert any(type_name in h.caplog.text for type_name in ("OverflowError", "ValueError"))

    # And the polling goes on: the value fixed, the addon is read again and nothing more is counted.
    listing[-1] = original
    after = await h.refresh()
    assert counted(during, after, resource) == 0
    assert value(after, LAST_REFRESH, **odd, resource=resource) == h.clock.now()

"""The one planner family the loop renders itself (per target, thousands of samples in a large fleet): its
declaration lives apart so that the loop does not import :mod:`exporter.planner.metrics`."""

from __future__ import annotations

from exporter.exposition import Family

NEXT_REFRESH = Family(
    "northflank_exporter_next_refresh_timestamp_seconds",
    "When the exporter plans to read each resource from the Northflank API next (unix time; in the past "
    "when the refresh is overdue, waiting for the request budget). project and addon are empty for "
    "account-wide resources.",
    ("project", "addon", "resource"),
)

__all__ = ["NEXT_REFRESH"]

"""The JSON document of ``/api/v1/addons`` (docs/status-api.md): a status view, field by field."""

from __future__ import annotations

from typing import Any

from exporter.health import Health
from exporter.web.status_query import PROBLEMS
from exporter.web.status_rows import AddonRow, ScheduleRow
from exporter.web.status_view import StatusView
from exporter.web.status_words import clean

#: The version of the JSON document of /api/v1/addons (docs/status-api.md); bumped on any change that
#: removes or changes the meaning of a field. Adding a field does not bump it.
SCHEMA_VERSION = 1


def _schedule_json(s: ScheduleRow) -> dict[str, Any]:
    return {
        "id": s.id,
        "description": s.description,
        "interval": s.interval,
        "backup_type": s.backup_type,
        "retention_seconds": s.retention_seconds,
        "next_run_at": s.next_run,
        "previous_run_at": s.previous_run,
        "previous_run_missed": s.missed,
        "missed_runs_24h": s.missed_runs,
        "last_missed_run_at": s.last_missed,
    }


def row_json(row: AddonRow, now: float) -> dict[str, Any]:
    last = row.last_completed_at
    return {
        "project": {"id": row.project_id, "name": row.project_name},
        "addon": {"id": row.addon_id, "name": row.addon_name, "type": row.addon_type},
        "state": row.state.value,
        "ok": row.state.is_ok,
        "problems": [
            {"state": p.state.value, "alerts": list(p.alerts), "since": p.since, "alert_at": p.alert_at}
            for p in row.health.problems
        ],
        "allowed_age_seconds": row.health.allowed_age_seconds,
        "last_completed": {
            "at": last,
            "age_seconds": max(0.0, now - last) if last is not None else None,
            "size_bytes": row.last_completed_size_bytes,
            "duration_seconds": row.last_completed_duration_seconds,
        },
        "last_failed_at": row.last_failed_at,
        "consecutive_failures": row.consecutive_failures,
        "in_progress_since": row.in_progress_started_at,
        "schedules": [_schedule_json(s) for s in row.schedules],
        "read": {
            "backups_at": row.backups_read_at,
            "schedules_at": row.schedules_read_at,
            "age_seconds": max(0.0, now - row.read_at) if row.read_at is not None else None,
        },
    }


def view_json(view: StatusView) -> dict[str, Any]:
    e = view.exporter
    return {
        "version": SCHEMA_VERSION,
        "generated_at": view.now,
        "exporter": {
            "version": clean(e.version),
            "demo": e.demo,
            "ready": view.ready,
            "api_reachable": e.api_up,
            "requests_last_hour": e.requests_last_hour,
            "request_budget": e.request_budget,
            "rate_limited_responses": e.rate_limited_responses,
            "deferred_seconds": e.deferred_seconds,
            "stalest_read_at": view.stalest_read_at,
            "addons_not_read": view.unread,
        },
        "counts": {h.value: view.counts[h] for h in Health},
        "total": view.total,
        "query": {
            "state": sorted(h.value for h in view.query.states)
            + ([PROBLEMS] if view.query.problems_only else []),
            "project": view.query.project,
            "sort": view.query.sort,
        },
        "addons": [row_json(r, view.now) for r in view.rows],
    }


__all__ = ["SCHEMA_VERSION", "row_json", "view_json"]

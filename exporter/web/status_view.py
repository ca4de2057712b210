"""The status page's model: the exporter's own health and the view of every addon (counts, projects, the
rows the query chose) that the HTML page, ``/api/v1/addons`` and ``check`` all render.

Pure: a function of (snapshot, exporter status, now, query). Its parts, one concern each: the rows
(status_rows), the query (status_query), the cache of rows between visits (status_cache), the JSON
document (status_json), and the words both the page and the terminal show (status_words).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from exporter.health import Health
from exporter.snapshot import Snapshot
from exporter.web.status_cache import RowCache
from exporter.web.status_query import Query, sort_key
from exporter.web.status_rows import AddonRow


@dataclass(frozen=True, slots=True)
class ExporterStatus:
    """The exporter's own health, as the top of the page shows it. None: not known (e.g. in ``check``)."""

    api_up: bool | None = None
    requests_last_hour: int | None = None
    request_budget: int | None = None
    rate_limited_responses: int | None = None
    deferred_seconds: float | None = None
    demo: bool = False
    version: str = ""


@dataclass(frozen=True, slots=True)
class StatusSource:
    """What the routes need: the current snapshot, the time, the exporter's health, the grace period."""

    snapshot: Callable[[], Snapshot]
    now: Callable[[], float]
    exporter: Callable[[float], ExporterStatus]
    schedule_grace_seconds: float
    cache: RowCache = field(default_factory=RowCache)


@dataclass(frozen=True, slots=True)
class StatusView:
    now: float
    exporter: ExporterStatus
    #: Every addon, whatever the query: the counts and the project list come from these.
    counts: Mapping[Health, int]
    projects: tuple[tuple[str, str], ...]
    rows: tuple[AddonRow, ...]
    total: int
    query: Query
    #: The least recently read addon's read time (None: some addon was never read, or no addon).
    stalest_read_at: float | None
    unread: int
    ready: bool
    errors: int = 0


def build_view(
    snapshot: Snapshot,
    *,
    now: float,
    grace: float,
    exporter: ExporterStatus,
    params: Iterable[tuple[str, str]] = (),
    cache: RowCache | None = None,
) -> StatusView:
    rows, errors = (cache or RowCache()).rows(snapshot, now=now, grace=grace)
    counts = dict.fromkeys(Health, 0)
    for row in rows:
        counts[row.state] += 1
    projects = sorted({(r.project_id, r.project_name) for r in rows}, key=lambda p: (p[1].casefold(), p[0]))
    query = Query.parse(params, (p for p, _ in projects))
    chosen = sorted((r for r in rows if query.matches(r)), key=sort_key(query.sort))
    reads = [r.read_at for r in rows]
    unread = sum(1 for r in reads if r is None)
    stalest = min((r for r in reads if r is not None), default=None)
    return StatusView(
        now=now,
        exporter=exporter,
        counts=counts,
        projects=tuple(projects),
        rows=tuple(chosen),
        total=len(rows),
        query=query,
        stalest_read_at=stalest,
        unread=unread,
        ready=snapshot.ready,
        errors=errors,
    )


__all__ = ["ExporterStatus", "StatusSource", "StatusView", "build_view"]

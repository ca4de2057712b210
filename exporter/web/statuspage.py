"""The status page at ``/``: which backups are not OK, and since when. Server-rendered HTML, one request.

No script, no external asset: one ``<style>`` element, allowed by its hash in the Content-Security-Policy
this module sends (:data:`HEADERS`), so the page works offline and under ``default-src 'none'``. Filters
and sorting are plain links and a GET form. Every text from the API goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from exporter.health import Health
from exporter.web.status_json import view_json
from exporter.web.status_query import PROBLEMS, SORTS, Query
from exporter.web.status_rows import AddonRow
from exporter.web.status_view import StatusSource, StatusView, build_view
from exporter.web.status_words import ago, clean, duration_words, size_words, utc

_CSS = """
:root{color-scheme:light dark;--bg:#f7f7f8;--fg:#1d1f23;--muted:#5f6570;--card:#fff;--line:#dcdfe4;
--red:#b42318;--red-bg:#fde8e7;--amber:#8a5300;--amber-bg:#fff1d6;--green:#1a7f37;--green-bg:#e3f5e8;
--blue:#175cd3;--blue-bg:#e4edfd;--grey:#555d69;--grey-bg:#eceef1;--link:#175cd3}
@media (prefers-color-scheme:dark){:root{--bg:#121418;--fg:#e6e8eb;--muted:#9aa1ad;--card:#1b1e24;
--line:#2e333b;--red:#ff8a80;--red-bg:#3b1614;--amber:#ffc964;--amber-bg:#362708;--green:#6fdd8b;
--green-bg:#10301a;--blue:#8ab4ff;--blue-bg:#152645;--grey:#b4bac4;--grey-bg:#262a31;--link:#8ab4ff}}
*{box-sizing:border-box}
body{margin:0;padding:1rem 1rem 2rem;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--link)}
h1{font-size:1.35rem;margin:0 0 .15rem}
.sub,.muted,small{color:var(--muted)}
small{display:block;font-size:.8em;overflow-wrap:anywhere}
.demo{background:var(--amber-bg);color:var(--amber);border:1px solid var(--amber);padding:.5rem .75rem;
border-radius:6px;font-weight:600}
.top{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.counts{display:flex;flex-wrap:wrap;gap:.4rem;list-style:none;margin:0;padding:0;flex:2 1 24rem}
.counts a{display:inline-block;padding:.3rem .6rem;border-radius:999px;text-decoration:none;
border:1px solid transparent}
.counts a.zero{opacity:.45}
.counts a.on{border-color:currentColor}
.counts b{font-size:1.05em;margin-right:.25rem}
.exporter{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.4rem;margin:0;
flex:1 1 22rem}
.exporter div{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.35rem .6rem}
.exporter dt{color:var(--muted);font-size:.8em}
.exporter dd{margin:0;font-weight:600}
.good{color:var(--green)}.bad{color:var(--red)}
form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
label{display:flex;flex-direction:column;font-size:.8em;color:var(--muted)}
select,button{font:inherit;padding:.25rem .4rem;border-radius:4px;border:1px solid var(--line);
background:var(--card);color:var(--fg)}
button{cursor:pointer}
table{width:100%;border-collapse:collapse;font-size:13px;background:var(--card);border:1px solid var(--line)}
th,td{text-align:left;vertical-align:top;padding:.4rem .4rem;border-bottom:1px solid var(--line)}
th{font-size:.8em;color:var(--muted);white-space:nowrap;position:sticky;top:0;background:var(--card)}
td{overflow-wrap:anywhere}
td.name{min-width:6.5rem}td.wide{min-width:9rem}td.when{min-width:7.5rem}td.type{min-width:5.5rem}
.scroll{overflow-x:auto}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:999px;font-weight:600;white-space:nowrap}
.s-stale,.s-never_completed,.s-failing_repeatedly{background:var(--red-bg);color:var(--red)}
.s-scheduled_run_missed,.s-last_attempt_failed,.s-stuck,.s-no_schedule{background:var(--amber-bg);
color:var(--amber)}
.s-not_read_yet{background:var(--grey-bg);color:var(--grey)}
.s-in_progress{background:var(--blue-bg);color:var(--blue)}
.s-ok{background:var(--green-bg);color:var(--green)}
.missed{color:var(--red);font-weight:600}
.empty{padding:1.5rem;text-align:center;color:var(--muted)}
footer{margin-top:1.5rem;color:var(--muted)}
@media (max-width:760px){
body{padding:.75rem}
table,thead,tbody,tr,td{display:block;border:0;background:none}
thead{display:none}
tr.row{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:0 0 .75rem;
padding:.4rem .6rem}
td,td.name,td.wide,td.when,td.type{display:grid;grid-template-columns:8rem minmax(0,1fr);gap:.5rem;
min-width:0;padding:.2rem 0;border-bottom:1px dashed var(--line)}
td:last-child{border-bottom:0}
td::before{content:attr(data-label);color:var(--muted);font-size:.8em}
}
"""

#: The Content-Security-Policy of the page: nothing but its own style element and GET forms to itself.
CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
    + "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_e = html.escape
# ago(), utc(), duration_words() and size_words() write digits and fixed words only: no escaping needed.


def _link(query: Query, **changes: str | None) -> str:
    return _e("?" + urlencode(query.params(**changes)))


def _counts(view: StatusView) -> str:
    q = view.query
    items = []
    problems = sum(n for h, n in view.counts.items() if h.is_problem)
    on = " on" if q.problems_only and not q.states else ""
    items.append(
        f'<li><a class="s-stale{on}{"" if problems else " zero"}" href="{_link(q, state=PROBLEMS)}"'
        f' data-state="{PROBLEMS}"><b>{problems}</b>not OK</a></li>'
    )
    for h in Health:
        n = view.counts[h]
        cls = f"s-{h.value}" + (" zero" if n == 0 else "") + (" on" if h in q.states else "")
        items.append(
            f'<li><a class="{cls}" href="{_link(q, state=h.value)}" data-state="{h.value}">'
            f"<b>{n}</b>{_e(h.label)}</a></li>"
        )
    items.append(
        f'<li><a class="s-not_read_yet" href="{_link(q, state=None)}"><b>{view.total}</b>all</a></li>'
    )
    return '<ul class="counts" aria-label="Addons by health">' + "".join(items) + "</ul>"


def _exporter(view: StatusView) -> str:
    e = view.exporter
    api = (
        '<dd class="muted">not yet known</dd>'
        if e.api_up is None
        else '<dd class="good">reachable</dd>'
        if e.api_up
        else '<dd class="bad">unreachable or token refused</dd>'
    )
    used = "—"
    if e.requests_last_hour is not None:
        used = f"{e.requests_last_hour}" + (f" of {e.request_budget}" if e.request_budget is not None else "")
    limited = "—" if e.rate_limited_responses is None else str(e.rate_limited_responses)
    limited_cls = ' class="bad"' if e.rate_limited_responses else ""
    deferred = (
        "—"
        if e.deferred_seconds is None
        else "none"
        if e.deferred_seconds <= 0
        else duration_words(e.deferred_seconds)
    )
    stalest = ago(view.stalest_read_at, view.now)
    if view.unread:
        stalest = f"{view.unread} addon(s) not read yet" + (
            f"; others {stalest}" if view.stalest_read_at is not None else ""
        )
    cells = [
        ("Northflank API", api),
        ("Requests in the last hour (budget)", f"<dd>{_e(used)}</dd>"),
        ("HTTP 429 responses", f"<dd{limited_cls}>{_e(limited)}</dd>"),
        ("Refreshes deferred for", f"<dd>{_e(deferred)}</dd>"),
        ("Stalest read", f"<dd>{_e(stalest)}</dd>"),
    ]
    if view.errors:
        cells.append(("Rows left out (errors)", f'<dd class="bad">{view.errors}</dd>'))
    body = "".join(f"<div><dt>{_e(t)}</dt>{d}</div>" for t, d in cells)
    return f'<dl class="exporter" aria-label="Exporter health">{body}</dl>'


def _options(current: str | None, choices: list[tuple[str, str]], *, any_label: str | None) -> str:
    out = [f'<option value="">{_e(any_label)}</option>'] if any_label is not None else []
    for value, text in choices:
        selected = " selected" if value == current else ""
        out.append(f'<option value="{_e(value)}"{selected}>{_e(text)}</option>')
    return "".join(out)


def _form(view: StatusView) -> str:
    q = view.query
    state = (
        PROBLEMS
        if q.problems_only and not q.states
        else next(iter(q.states)).value
        if len(q.states) == 1 and not q.problems_only
        else None
    )
    states = [(PROBLEMS, "not OK")] + [(h.value, h.label) for h in Health]
    projects = [(pid, f"{name} ({pid})" if name != pid else name) for pid, name in view.projects]
    return (
        '<form method="get" aria-label="Filter and sort">'
        f'<label>Health<select name="state">{_options(state, states, any_label="any")}</select></label>'
        f'<label>Project<select name="project">{_options(q.project, projects, any_label="any")}'
        "</select></label>"
        f'<label>Sort<select name="sort">{_options(q.sort, list(SORTS.items()), any_label=None)}'
        "</select></label>"
        '<button type="submit">Show</button> <a href="?">Reset</a></form>'
    )


_COLUMNS = (
    ("Project", "project"),
    ("Addon", "addon"),
    ("Type", None),
    ("Health", "state"),
    ("Last completed backup", "age"),
    ("Size, duration", None),
    ("Failures", None),
    ("Schedule", None),
    ("Runs", None),
    ("Data read", "freshness"),
)


def _head(query: Query) -> str:
    cells = []
    for title, sort in _COLUMNS:
        if sort is None:
            cells.append(f"<th>{_e(title)}</th>")
        else:
            mark = " ▾" if query.sort == sort else ""
            cells.append(f'<th><a href="{_link(query, sort=sort)}">{_e(title)}</a>{mark}</th>')
    return "<thead><tr>" + "".join(cells) + "</tr></thead>"


def _named(name: str, ident: str) -> str:
    return _e(name) if name == ident else f"{_e(name)}<small>{_e(ident)}</small>"


def _when(at: float | None, now: float) -> str:
    return f"{ago(at, now)}<small>{utc(at)}</small>"


def _state(row: AddonRow, now: float) -> str:
    h = row.state
    out = f'<span class="badge s-{h.value}">{_e(h.label)}</span>'
    problems = row.health.problems
    if problems:
        first = problems[0]
        if first.since is not None:
            out += f"<small>since {ago(first.since, now)}</small>"
        if len(problems) > 1:
            out += "<small>also " + _e(", ".join(p.state.label for p in problems[1:])) + "</small>"
    elif h is Health.IN_PROGRESS:
        out += f"<small>started {ago(row.in_progress_started_at, now)}</small>"
    return out


def _completed(row: AddonRow, now: float) -> str:
    last = row.last_completed_at
    if last is None:
        return '<span class="muted">none</span>' if row.backups_read_at is not None else "—"
    out = _when(last, now)
    if row.health.allowed_age_seconds is not None:
        out += f"<small>allowed {duration_words(row.health.allowed_age_seconds)}</small>"
    return out


def _size(row: AddonRow) -> str:
    if row.last_completed_at is None:
        return "—"
    took = row.last_completed_duration_seconds
    return f"{size_words(row.last_completed_size_bytes)}<small>took {duration_words(took)}</small>"


def _failures(row: AddonRow, now: float) -> str:
    if row.consecutive_failures is None:
        return "—"
    count = row.consecutive_failures
    out = f'<span class="missed">{count} in a row</span>' if count else "none in a row"
    if row.last_failed_at is not None:
        out += f"<small>last {ago(row.last_failed_at, now)}, {utc(row.last_failed_at)}</small>"
    return out


def _schedules(row: AddonRow, now: float) -> tuple[str, str]:
    if not row.schedules:
        text = "none" if row.schedules_read_at is not None else "not read yet"
        return f'<span class="muted">{text}</span>', "—"
    described, runs = [], []
    for s in row.schedules:
        described.append(f"<div>{_e(s.description)}<small>{_e(s.id)}</small></div>")
        if s.missed_runs is None:
            verdict = '<small class="muted">runs not judged yet</small>'
        elif s.missed_runs or s.missed:
            last = f", last {utc(s.last_missed)}" if s.last_missed is not None else ""
            verdict = f'<small class="missed">missed {s.missed_runs} in 24 h{last}</small>'
        else:
            verdict = "<small>none missed</small>"
        runs.append(
            f"<div>next {ago(s.next_run, now)}<small>previous {utc(s.previous_run)}</small>{verdict}</div>"
        )
    return "".join(described), "".join(runs)


def _row(row: AddonRow, now: float) -> str:
    schedule, runs = _schedules(row, now)
    read = _when(row.read_at, now) if row.read_at is not None else '<span class="muted">not read yet</span>'
    cells = (
        ("Project", _named(row.project_name, row.project_id), ' class="name"'),
        ("Addon", _named(row.addon_name, row.addon_id), ' class="name"'),
        ("Type", _e(row.addon_type), ' class="type"'),
        ("Health", _state(row, now), ' class="wide"'),
        ("Last completed", _completed(row, now), ' class="when"'),
        ("Size, duration", _size(row), ""),
        ("Failures", _failures(row, now), ' class="when"'),
        ("Schedule", schedule, ' class="wide"'),
        ("Runs", runs, ' class="wide"'),
        ("Data read", read, ' class="when"'),
    )
    # The content in one element: in the narrow layout a cell is a grid of its label and its content.
    body = "".join(
        f'<td data-label="{label}"{attrs}><div>{content}</div></td>' for label, content, attrs in cells
    )
    return (
        f'<tr class="row" data-state="{row.state.value}" data-project="{_e(row.project_id)}"'
        f' data-addon="{_e(row.addon_id)}">{body}</tr>'
    )


def render_status_page(view: StatusView, *, telemetry_path: str) -> str:
    e = view.exporter
    bad = sum(n for h, n in view.counts.items() if h.is_problem)
    title = f"{bad} not OK" if bad else "all OK" if view.total else "no addons"
    banner = (
        '<p class="demo" role="alert">DEMO MODE: every value here comes from a built-in simulator, '
        "not from Northflank.</p>"
        if e.demo
        else ""
    )
    if not view.ready and not view.total:
        note = (
            '<p class="empty">The exporter has not listed the Northflank projects and addons yet '
            "(the first listings are running, or the API refuses the token or cannot be reached).</p>"
        )
    else:
        note = ""
    rows = "".join(_row(r, view.now) for r in view.rows)
    if not rows:
        rows = f'<tr><td class="empty" colspan="{len(_COLUMNS)}">No addon matches.</td></tr>'
    version = _e(clean(e.version))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>Backups: {_e(title)} · Northflank backup exporter</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>Northflank backups</h1>"
        f'<p class="sub">{_e(title)} · {view.total} addon(s) · as of {utc(view.now)} · '
        f"exporter {version}</p></header>{banner}"
        f'<section class="top">{_counts(view)}{_exporter(view)}</section>{note}'
        f"{_form(view)}"
        f'<p class="muted" id="shown">Showing {len(view.rows)} of {view.total} addon(s).</p>'
        f'<div class="scroll"><table id="addons">{_head(view.query)}<tbody>{rows}</tbody></table></div>'
        f'<footer><a href="{_e(telemetry_path)}">Metrics</a> · '
        f'<a href="api/v1/addons{_link(view.query)}">JSON</a> · '
        '<a href="-/healthy">Health</a> · <a href="-/ready">Readiness</a> · '
        "States follow the rules of the shipped alerts (prometheus/alerts.yml); an alert fires once its "
        "condition has lasted the rule's <code>for:</code>.</footer>"
        "</body></html>"
    )


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float as null: JSON has no NaN, and clients must parse it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _view(source: StatusSource, request: Request) -> StatusView:
    now = source.now()
    return build_view(
        source.snapshot(),
        now=now,
        grace=source.schedule_grace_seconds,
        exporter=source.exporter(now),
        params=request.query_params.multi_items(),
        cache=source.cache,
    )


def status_page(source: StatusSource, request: Request, *, telemetry_path: str) -> Response:
    body = render_status_page(_view(source, request), telemetry_path=telemetry_path)
    return HTMLResponse(body, headers=dict(HEADERS))


def addons_json(source: StatusSource, request: Request) -> Response:
    document = view_json(_view(source, request))
    try:
        body = json.dumps(document, ensure_ascii=False, allow_nan=False)
    except ValueError:
        body = json.dumps(_json_safe(document), ensure_ascii=False, allow_nan=False)
    return Response(
        body.encode("utf-8"),
        media_type="application/json",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


__all__ = ["CSP", "HEADERS", "addons_json", "render_status_page", "status_page"]

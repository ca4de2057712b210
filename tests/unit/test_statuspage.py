"""The status page and /api/v1/addons as pure renderings: no markup injection, a CSP that allows the page's
own style and nothing else, filters and sorting by query parameters, the JSON schema."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings

from exporter.health import Health
from exporter.schedule import DAY, HOUR, WEEK, ScheduleCalendar
from exporter.snapshot import ScheduleSummary, Snapshot
from exporter.web.status_cache import RowCache
from exporter.web.status_json import SCHEMA_VERSION, view_json
from exporter.web.status_query import Query
from exporter.web.status_view import ExporterStatus, build_view
from exporter.web.status_words import clean, schedule_words
from exporter.web.statuspage import CSP, render_status_page
from tests.hostile_inputs import NASTY, FleetPayloads, build_snapshot, fleets, worst_case_snapshot
from tests.status_support import MARKUP, read_fleet
from tests.support import MONDAY_NOON

NOW = MONDAY_NOON
GRACE = 7200.0
STATUS = ExporterStatus(api_up=True, requests_last_hour=12, request_budget=500, rate_limited_responses=0)

#: Every element the page is made of: anything else came from data.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "section", "ul", "li", "a", "b",
    "dl", "div", "dt", "dd", "form", "label", "select", "option", "button", "table", "thead", "tbody", "tr",
    "th", "td", "span", "small", "footer", "code",
}  # fmt: skip


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        self.text.append(data)


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


def assert_no_injection(page: str) -> Elements:
    page.encode("utf-8")  # strict: no lone surrogate reaches the wire
    elements = parse(page)
    tags = {tag for tag, _ in elements.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert [t for t, _ in elements.tags].count("style") == 1
    for tag, attrs in elements.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert set(attrs) <= {"class", "href", "data-state", "data-project", "data-addon", "data-label",
                              "lang", "charset", "name", "content", "method", "aria-label", "value",
                              "selected", "type", "colspan", "id", "role"}, (tag, attrs)  # fmt: skip
        href = attrs.get("href")
        if href is not None:
            assert href.startswith(("?", "api/v1/addons?", "-/", "/")), href
    return elements


def hostile_snapshot() -> Snapshot:
    """The worst-case snapshot, with markup in every name the page shows."""
    snapshot = worst_case_snapshot(now=NOW)
    addons = dict(snapshot.addons)
    for index, (key, addon) in enumerate(sorted(addons.items())):
        markup = MARKUP[index % len(MARKUP)]
        schedules = addon.schedules
        if schedules is not None:
            changed = tuple(replace(s, id=f"{markup}{NASTY}", backup_type=markup) for s in schedules.value)
            schedules = replace(schedules, value=changed)
        addons[key] = replace(
            addon,
            project_name=f"{markup}{NASTY}",
            addon_name=MARKUP[(index + 1) % len(MARKUP)],
            addon_type=MARKUP[(index + 2) % len(MARKUP)],
            schedules=schedules,
        )
    return replace(snapshot, addons=MappingProxyType(addons))


def test_hostile_names_are_text_not_markup() -> None:
    snapshot = hostile_snapshot()
    view = build_view(snapshot, now=NOW, grace=GRACE, exporter=replace(STATUS, version=MARKUP[0]))
    elements = assert_no_injection(render_status_page(view, telemetry_path='/m"><script>'))
    text = "".join(elements.text)
    for addon in snapshot.addons.values():
        assert clean(addon.addon_name) in text  # shown, as text
        assert clean(addon.project_name) in text
    document = json.loads(json.dumps(view_json(view), ensure_ascii=False).encode("utf-8"))
    names = {a["addon"]["name"] for a in document["addons"]}
    assert names == {clean(a.addon_name) for a in snapshot.addons.values()}


def test_hostile_query_parameters_are_ignored_or_escaped() -> None:
    snapshot = hostile_snapshot()
    params = [("state", MARKUP[1]), ("project", MARKUP[0]), ("sort", "<x>"), ("x", MARKUP[2])]
    view = build_view(snapshot, now=NOW, grace=GRACE, exporter=STATUS, params=params)
    assert view.query == Query()
    assert_no_injection(render_status_page(view, telemetry_path="/metrics"))
    # A project id with markup, chosen: kept in links, escaped.
    project = next(iter(snapshot.addons.values())).project_id
    chosen = build_view(snapshot, now=NOW, grace=GRACE, exporter=STATUS, params=[("project", project)])
    assert chosen.query.project == project
    assert_no_injection(render_status_page(chosen, telemetry_path="/metrics"))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(fleets())
def test_any_payload_renders_without_injection(fleet: FleetPayloads) -> None:
    snapshot = build_snapshot(fleet, now=NOW)
    view = build_view(snapshot, now=NOW, grace=GRACE, exporter=STATUS)
    assert view.errors == 0
    assert view.total == len(snapshot.addons)
    page = render_status_page(view, telemetry_path="/metrics")
    elements = assert_no_injection(page)
    rows = [attrs for tag, attrs in elements.tags if tag == "tr" and attrs.get("class") == "row"]
    assert len(rows) == len(snapshot.addons)
    json.dumps(view_json(view), ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_the_csp_allows_exactly_the_page_style() -> None:
    view = build_view(worst_case_snapshot(now=NOW), now=NOW, grace=GRACE, exporter=STATUS)
    style = parse(render_status_page(view, telemetry_path="/metrics")).style
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP
    assert "default-src 'none'" in CSP
    assert "script" not in CSP


# --- the query ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Snapshot:
    import asyncio

    return asyncio.run(read_fleet("demo", now=NOW))


def test_rows_are_worst_first_by_default(demo: Snapshot) -> None:
    view = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS)
    ranks = [r.state.rank for r in view.rows]
    assert ranks == sorted(ranks)
    assert view.total == len(demo.addons) == len(view.rows)
    assert sum(view.counts.values()) == view.total
    assert {r.state for r in view.rows} > {Health.OK}, "the demo fleet has problems to show"


def test_filter_by_state_problems_and_project(demo: Snapshot) -> None:
    everything = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS)
    worst = everything.rows[0].state
    by_state = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS, params=[("state", worst.value)])
    assert {r.state for r in by_state.rows} == {worst}
    assert len(by_state.rows) == everything.counts[worst]
    problems = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS, params=[("state", "problems")])
    assert problems.rows
    assert all(r.state.is_problem for r in problems.rows)
    assert len(problems.rows) == sum(n for h, n in everything.counts.items() if h.is_problem)
    project = everything.projects[0][0]
    in_project = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS, params=[("project", project)])
    assert in_project.rows
    assert {r.project_id for r in in_project.rows} == {project}
    # Counts stay those of the whole fleet, whatever is shown.
    assert in_project.counts == everything.counts
    # Unknown values are ignored: everything is shown.
    typo = build_view(
        demo, now=NOW, grace=GRACE, exporter=STATUS, params=[("state", "stael"), ("project", "?")]
    )
    assert len(typo.rows) == everything.total


@pytest.mark.parametrize("sort", ["project", "addon", "age", "freshness"])
def test_sorts(demo: Snapshot, sort: str) -> None:
    view = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS, params=[("sort", sort)])
    assert view.query.sort == sort
    if sort == "project":
        keys = [(r.project_name.casefold(), r.addon_name.casefold()) for r in view.rows]
        assert keys == sorted(keys)
    if sort == "age":
        ages = [r.last_completed_at for r in view.rows if r.last_completed_at is not None]
        assert ages == sorted(ages)


def test_links_keep_the_other_parameters(demo: Snapshot) -> None:
    params = [("state", "problems"), ("project", "analytics"), ("sort", "age")]
    view = build_view(demo, now=NOW, grace=GRACE, exporter=STATUS, params=params)
    page = render_status_page(view, telemetry_path="/metrics")
    hrefs = [a.get("href") for t, a in parse(page).tags if t == "a"]
    assert "?state=problems&project=analytics&sort=project" in hrefs  # the Project column's sort link
    assert "?state=stale&project=analytics&sort=age" in hrefs  # a count's filter link


def test_json_document(demo: Snapshot) -> None:
    view = build_view(demo, now=NOW, grace=GRACE, exporter=replace(STATUS, demo=True, version="1.2.3"))
    document = json.loads(json.dumps(view_json(view), allow_nan=False))
    assert document["version"] == SCHEMA_VERSION == 1
    assert set(document) == {"version", "generated_at", "exporter", "counts", "total", "query", "addons"}
    assert document["exporter"]["demo"] is True
    assert document["exporter"]["requests_last_hour"] == 12
    assert set(document["counts"]) == {h.value for h in Health}
    first = document["addons"][0]
    assert set(first) == {
        "project", "addon", "state", "ok", "problems", "allowed_age_seconds", "last_completed",
        "last_failed_at", "consecutive_failures", "in_progress_since", "schedules", "read",
    }  # fmt: skip
    assert first["ok"] is False
    assert first["problems"][0]["state"] == first["state"]
    assert first["problems"][0]["alerts"]


def test_schedule_in_words() -> None:
    def words(period: int, offsets: tuple[int, ...], kind: str = "dump", retention: int = 7 * DAY) -> str:
        interval = {HOUR: "hourly", DAY: "daily", WEEK: "weekly"}[period]
        calendar = ScheduleCalendar(period, offsets)
        return schedule_words(ScheduleSummary("s", interval, kind, "gzip", retention, calendar, None))

    assert words(DAY, (2 * HOUR + 30 * 60,)) == "daily 02:30 UTC, dump, kept 7 days"
    assert words(HOUR, (15 * 60, 45 * 60), retention=DAY) == "hourly at :15, :45, dump, kept 1 day"
    assert words(WEEK, (23 * HOUR + 1800, 3 * DAY + 23 * HOUR + 1800), "snapshot", 4 * WEEK) == (
        "weekly Mon, Thu 23:30 UTC, snapshot, kept 4 weeks"
    )
    assert words(DAY, tuple(h * HOUR for h in range(6))).startswith(
        "daily 00:00, 01:00, 02:00, 03:00 and 2 more"
    )


def test_times_out_of_range_do_not_break_the_page() -> None:
    snapshot = worst_case_snapshot(now=NOW)
    for now in (NOW, 1e18, 0.0):
        page = render_status_page(
            build_view(snapshot, now=now, grace=GRACE, exporter=STATUS), telemetry_path="/"
        )
        assert re.search(r'<tr class="row"', page)


async def test_the_row_cache_never_changes_an_answer() -> None:
    """Rows reused between visits are those a fresh build gives, minute by minute over two days: a
    cached row never keeps a backup looking fresh past its threshold, nor a run unjudged past its grace."""
    snapshot = await read_fleet("reference", now=NOW, seed=5)
    cache = RowCache()
    states_seen: set[Health] = set()
    for minute in range(0, 2 * 24 * 60, 13):
        now = NOW + minute * 60
        cached = build_view(snapshot, now=now, grace=GRACE, exporter=STATUS, cache=cache)
        fresh = build_view(snapshot, now=now, grace=GRACE, exporter=STATUS)
        assert view_json(cached) == view_json(fresh), minute
        states_seen |= {r.state for r in fresh.rows}
    assert Health.STALE in states_seen  # the data ages: thresholds were crossed while cached

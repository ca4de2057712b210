"""The fault matrix: everything the API and the network can do to the exporter, one fault at a time.

Each test runs the real :class:`~exporter.app.Exporter` (its planner, its request budget and its HTTP
server on 127.0.0.1) against the simulator, also served on 127.0.0.1, under one :class:`FixedClock`,
driven by the ``PlannedPasses`` of ``tests/support.py``: a refresh is one forced pass of the planner
(``Planner.read_everything``: every listing due at once, the projects listing first and alone), run when
the test asks and over once the planner has nothing in flight and nothing it may start. The planner
reads as it does in production: while the token is refused only the projects listing goes out, and a
404 makes it read the listing that named the missing thing again. The shape is always:

1. a good refresh (everything read, ``northflank_up`` 1);
2. inject the fault, advance the clock, refresh again, scrape;
3. check with :func:`check_fault`: /metrics and /-/healthy answer; every
   ``northflank_exporter_last_refresh_timestamp_seconds`` series of what the fault hit is unchanged and
   every other one moved to the new time; the values of what the fault hit are the last good ones; the
   ``northflank_exporter_refresh_errors_total`` series that should move moved by exactly the number of
   failed listings, and no other did; one WARNING line per fault class (resource, reason), however many
   requests or addons failed; the token and the destination credentials appear in no log line (debug
   level included) and no sample;
4. clear the fault, advance, refresh: everything is fresh again (the poller survived and recovers).

Where the exporter does not (yet) do what it should, the test is an ``xfail(strict=True)`` whose reason
says what is wrong: it turns into a failure the day the behaviour is fixed, to be unmarked then.

Retries keep their number and their 429 rules, but back off for milliseconds (see :func:`fast_retries`)
so that the file runs in seconds. The 429 tests run on a clock that moves with real time, as the request
budget waits out a hold on the injected clock, and sleep for real when the API says one second. The
request budget is generous (:data:`BUDGET`): it is not what this file tests, and under a clock that
stands still between passes the planner's token buckets would otherwise refill only when it is advanced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
import tracemalloc
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import exporter.app
from exporter.clock import FixedClock
from exporter.northflank import routes
from exporter.northflank.client import NorthflankClient
from exporter.simulator.app import Simulator
from exporter.simulator.fleet import SIMULATED_SECRETS, AddonSpec, ProjectSpec
from exporter.simulator.requestlog import RequestRecord
from exporter.simulator.server import SimulatorServer
from tests.support import (
    PlannedPasses,
    RunningExporter,
    Samples,
    free_port,
    parse_samples,
    running_exporter,
    series,
    simulator_process,
    value,
)

# A Monday, 12:00 UTC, as in test_exporter.py.
START = 1_795_000_000.0 - (1_795_000_000.0 % 86400) + 12 * 3600
STEP = 600.0
#: 2 projects, 5 addons (one with 72 backups), 1 destination: every kind of listing, 20 of them a pass.
SCENARIO = "e2e"
TOKEN = "nf-fault-matrix-token-3e9b"
MAX_ATTEMPTS = 4  # NorthflankClient's default max_retries (3) + 1
#: Requests in flight at most, above the default 4 to keep the file quick: every response after the first
#: on a keep-alive connection to the simulator's server takes ~45 ms (its socket lacks TCP_NODELAY).
CONCURRENCY = 16
#: Requests per rolling hour: far more than the passes of a test take, retries included.
BUDGET = 36_000
RATE_LIMIT_HOLD = "rate-limit hold"
REFRESHED = "northflank_exporter_last_refresh_timestamp_seconds"
ERRORS = "northflank_exporter_refresh_errors_total"

Labels = frozenset[tuple[str, str]]
FaultClass = tuple[str, str]  # (resource, reason), as the error counter and the fault log see it

#: The families each addon resource's listing feeds (those that do not depend on the scrape time).
ADDON_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "backups": (
        "northflank_addon_backups",
        "northflank_addon_backup_last_completed_timestamp_seconds",
        "northflank_addon_backup_last_completed_size_bytes",
        "northflank_addon_backup_last_completed_duration_seconds",
        "northflank_addon_backup_last_failed_timestamp_seconds",
        "northflank_addon_backup_consecutive_failures",
        "northflank_addon_backups_size_bytes",
        "northflank_addon_backup_oldest_completed_timestamp_seconds",
        "northflank_addon_backup_in_progress_started_timestamp_seconds",
    ),
    "schedules": (
        "northflank_addon_backup_schedule_covered",
        "northflank_addon_backup_schedule_info",
        "northflank_addon_backup_schedule_retention_seconds",
        "northflank_addon_backup_schedule_max_interval_seconds",
    ),
    "restores": ("northflank_addon_restores", "northflank_addon_restore_last_timestamp_seconds"),
}
DESTINATION_FAMILIES = (
    "northflank_backup_destination_backups",
    "northflank_backup_destination_size_bytes",
    "northflank_backup_destination_last_completed_timestamp_seconds",
)


def refreshed(resource: str, project: str = "", addon: str = "") -> Labels:
    """The labels of one ``northflank_exporter_last_refresh_timestamp_seconds`` series."""
    return frozenset({"project": project, "addon": addon, "resource": resource}.items())


def addon_refreshes(
    addon: AddonSpec, resources: Collection[str] = ("backups", "schedules", "restores")
) -> set[Labels]:
    return {refreshed(r, addon.project_id, addon.id) for r in resources}


# -- the harness --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Exporter builds its client with the default retry policy: keep it (4 attempts, Retry-After
    up to 60 s honoured) but with a 10 ms backoff base instead of 500 ms, so a listing that fails four
    times costs milliseconds. Patched where app.py looks the class up; the Exporter is otherwise real."""
    monkeypatch.setattr(exporter.app, "NorthflankClient", partial(NorthflankClient, backoff_base=0.01))


@dataclass
class Pass:
    """What one refresh pass did, as seen from outside: the scrape after it, the logs, the requests."""

    samples: Samples
    text: str
    records: list[logging.LogRecord]
    requests: list[RequestRecord]
    elapsed: float

    @property
    def warnings(self) -> list[logging.LogRecord]:
        """WARNING-or-above lines of the exporter (the simulator's own loggers excluded)."""
        return [
            r
            for r in self.records
            if r.levelno >= logging.WARNING
            and r.name.startswith("exporter")
            and not r.name.startswith("exporter.simulator")
        ]

    def requests_to(self, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == path]


class MovingClock(FixedClock):
    """A FixedClock that also moves with real time, for the tests where the exporter waits for real
    (the request budget sleeps until the injected clock says a rate-limit hold is over)."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self._origin = time.monotonic()

    def now(self) -> float:
        return super().now() + (time.monotonic() - self._origin)


@dataclass
class Harness:
    simulator: Simulator
    server: SimulatorServer
    clock: FixedClock
    running: RunningExporter
    caplog: pytest.LogCaptureFixture

    @property
    def sim(self) -> Simulator:
        return self.simulator

    async def refresh(self, advance: float = 0.0, *, deadline: float = 30.0) -> Pass:
        """Advance the clock, run one forced pass of the planner, scrape."""
        self.clock.advance(advance)
        self.caplog.clear()
        first = len(self.simulator.request_log)
        began = time.perf_counter()
        await self.running.scheduler.refresh(deadline)
        return await self.observe(first, began)

    async def observe(self, first_request: int, began: float) -> Pass:
        """What the exporter shows now, and what it did since ``first_request`` / ``began``."""
        elapsed = time.perf_counter() - began
        text = await self.running.scrape_text()
        return Pass(
            samples=parse_samples(text),
            text=text,
            records=list(self.caplog.records),
            requests=self.simulator.request_log.records[first_request:],
            elapsed=elapsed,
        )

    async def good_refresh(self) -> Pass:
        done = await self.refresh()
        assert value(done.samples, "northflank_up") == 1
        assert not done.warnings, [r.getMessage() for r in done.warnings]
        return done

    async def recover(self, during: Pass) -> None:
        """Faults cleared: the next pass reads everything again and counts no new error."""
        self.simulator.clear_faults()
        self.simulator.set_token(TOKEN)
        after = await self.refresh(STEP)
        assert value(after.samples, "northflank_up") == 1
        stamps, earlier = series(after.samples, REFRESHED), series(during.samples, REFRESHED)
        assert stamps, "nothing was refreshed"
        assert all(at > earlier.get(k, 0) for k, at in stamps.items()), "something was not read again"
        assert series(after.samples, ERRORS) == series(during.samples, ERRORS)
        assert not after.warnings

    async def healthy(self) -> bool:
        response = await self.running.http.get(f"{self.running.url}/-/healthy")
        return response.status_code == 200

    async def ready(self) -> bool:
        response = await self.running.http.get(f"{self.running.url}/-/ready")
        return response.status_code == 200

    # -- the fleet's parts --------------------------------------------------------------------------

    def project_with_addons(self) -> tuple[ProjectSpec, list[AddonSpec]]:
        project = max(self.sim.fleet.projects, key=lambda p: len(self.sim.fleet.addons_of(p.id)))
        return project, list(self.sim.fleet.addons_of(project.id))

    def busy_addon(self, minimum: int = 1) -> AddonSpec:
        """An addon with at least ``minimum`` backups, one of them completed, at the clock's time."""
        for addon in self.sim.fleet.addons:
            records = self.sim.backups_at(addon, self.clock.now())
            if len(records) >= minimum and any(r.status == "completed" for r in records):
                return addon
        raise AssertionError(f"no addon of the fleet has {minimum} backups")


def addon_path(addon: AddonSpec, listing: str) -> str:
    return f"/v1/projects/{addon.project_id}/addons/{addon.id}/{listing}"


@contextlib.asynccontextmanager
async def open_harness(
    caplog: pytest.LogCaptureFixture,
    *,
    clock: FixedClock | None = None,
    simulator_options: Mapping[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    caplog.set_level(logging.DEBUG, logger="exporter")
    clock = clock or FixedClock(START)
    settings.setdefault("concurrency", CONCURRENCY)
    settings.setdefault("request_budget", BUDGET)
    simulator = Simulator.from_scenario(SCENARIO, clock=clock, token=TOKEN, **(simulator_options or {}))
    server = SimulatorServer(simulator)
    api_url = await server.start()
    harness: Harness | None = None
    try:
        async with running_exporter(
            api_url=settings.pop("api_url", api_url), token=TOKEN, clock=clock, passes=True, **settings
        ) as running:
            harness = Harness(simulator, server, clock, running, caplog)
            yield harness
    finally:
        # The test may have stopped the server and started another one (see connection refused).
        await (harness.server if harness is not None else server).stop()


@pytest.fixture
async def harness(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Harness]:
    async with open_harness(caplog) as opened:
        yield opened


# -- the common check ---------------------------------------------------------------------------------


def _family_values(
    samples: Samples, names: Collection[str], **labels: str
) -> dict[tuple[str, Labels], float]:
    wanted = set(labels.items())
    return {(name, lbls): v for (name, lbls), v in samples.items() if name in names and wanted <= set(lbls)}


def _warning_class(record: logging.LogRecord) -> FaultClass | str:
    """The fault class a WARNING line is about: the poller's fault log gives the resource and reason as
    log fields (older lines said "refreshing <resource> failed (<reason>)"); the request budget says that
    the API rate-limited the exporter."""
    resource, reason = getattr(record, "resource", None), getattr(record, "reason", None)
    if isinstance(resource, str) and isinstance(reason, str):
        return (resource, reason)
    message = record.getMessage()
    found = re.search(r"\b(\w+) failed \((\w+)\)", message)
    if found:
        return (found[1], found[2])
    return RATE_LIMIT_HOLD if "rate-limited" in message else message


async def check_fault(
    h: Harness,
    before: Pass,
    after: Pass,
    *,
    stale: Collection[Labels],
    errors: Mapping[FaultClass, int],
    failed_destinations: Collection[str] | None = None,
    held: bool = False,
    one_line_per_class: bool = True,
) -> None:
    """Everything the fault matrix asserts about a pass during a fault (see the module docstring).

    ``stale``: the refresh-time series of what the fault hit (they must not move, and their values must
    stay); ``errors``: by how much each error counter series must have grown (every other one must not);
    ``failed_destinations``: whose backups failed, when ``destination_backups`` is stale (default: all;
    the account has one refresh-time series for them, the least recent destination's); ``held``: the
    request budget also says, once, that the API rate-limited the exporter; ``one_line_per_class``:
    False where the fault log is known to repeat a class (see
    ``test_a_persisting_fault_is_logged_once_not_on_every_pass``): then each class at least once.
    """
    now = h.clock.now()

    # The exporter is up and serving.
    assert await h.healthy()
    build = series(after.samples, "northflank_exporter_build_info")
    assert [v for labels, v in build.items() if ("version", exporter.__version__) in labels] == [1]

    # Freshness: what failed keeps its refresh time, everything else was read at `now`.
    before_stamps, after_stamps = series(before.samples, REFRESHED), series(after.samples, REFRESHED)
    assert set(stale) <= set(before_stamps), "the fault must hit something that was read before"
    assert set(after_stamps) == set(before_stamps)
    for labels, at in after_stamps.items():
        if labels in stale:
            assert at == before_stamps[labels], (dict(labels), at - START, "should not have moved")
        else:
            assert before_stamps[labels] < at <= now, (dict(labels), at - START, "should be fresh")

    # Values: what failed keeps its last good values.
    for labels in stale:
        where = dict(labels)
        resource, project, addon = where["resource"], where["project"], where["addon"]
        if resource in ADDON_FAMILIES:
            names: Collection[str] = ADDON_FAMILIES[resource]
            kept = _family_values(before.samples, names, project=project, addon=addon)
        elif resource == "addons":
            names = ("northflank_addon_info",)
            kept = _family_values(before.samples, names, project=project)
        elif resource == "projects":
            names = ("northflank_addon_info",)
            kept = _family_values(before.samples, names)
        elif resource == "backup_destinations":
            names = ("northflank_backup_destination_info",)
            kept = _family_values(before.samples, names)
        else:
            assert resource == "destination_backups"
            names, kept = DESTINATION_FAMILIES, {}
            failed = (
                [d.id for d in h.sim.fleet.destinations]
                if failed_destinations is None
                else failed_destinations
            )
            for destination_id in failed:
                kept |= _family_values(before.samples, names, destination=destination_id)
        assert kept, f"nothing of {where} was exported before the fault"
        now_values = {k: v for k, v in _family_values(after.samples, names).items() if k in kept}
        assert now_values == kept, where

    # The error counters: exactly the expected classes moved, by exactly the expected amounts.
    counters_before, counters_after = series(before.samples, ERRORS), series(after.samples, ERRORS)
    moved = {
        (dict(k)["resource"], dict(k)["reason"]): int(v - counters_before.get(k, 0))
        for k, v in counters_after.items()
        if v != counters_before.get(k, 0)
    }
    assert moved == dict(errors)

    # One WARNING line per fault class, whatever the number of requests and addons that failed.
    messages = [r.getMessage() for r in after.warnings]
    expected: list[FaultClass | str] = [*errors, *([RATE_LIMIT_HOLD] if held else [])]
    logged = [_warning_class(r) for r in after.warnings]
    if one_line_per_class:
        assert sorted(logged, key=str) == sorted(expected, key=str), messages
    else:
        assert set(logged) == set(expected), messages
    for message in messages:
        assert "<" not in message, message
        assert "nginx" not in message, message

    # No secret anywhere: not in any log line at any level, not in the exposition.
    # (caplog.text: every record of the pass as formatted, tracebacks included; debug level and up.)
    for secret in (TOKEN, *SIMULATED_SECRETS):
        assert secret not in after.text
        assert secret not in h.caplog.text


# -- before any good refresh --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["token_rejected", "connection_refused"])
async def test_a_fault_before_the_first_good_refresh(caplog: pytest.LogCaptureFixture, fault: str) -> None:
    """401 at start (a wrong token) and an API that is not there. The exporter serves /metrics and
    /-/healthy, says ``northflank_up 0`` with the reason counted, and exports no addon. It is not ready
    (README, HTTP endpoints: 503 while discovery has never succeeded): it has nothing to serve yet."""
    reason = {"token_rejected": "auth", "connection_refused": "connection"}[fault]
    settings: dict[str, Any] = {}
    if fault == "connection_refused":
        settings["api_url"] = f"http://127.0.0.1:{free_port()}"
    async with open_harness(caplog, **settings) as h:
        if fault == "token_rejected":
            h.sim.revoke_token()
        assert not await h.ready()
        assert await h.healthy()
        first = await h.refresh()

        assert value(first.samples, "northflank_up") == 0
        assert await h.healthy()
        assert not await h.ready()
        assert not series(first.samples, "northflank_addon_info")
        assert not series(first.samples, REFRESHED)
        # A rejected token holds everything but the projects listing: every other listing would be
        # refused too. An API that is not there is asked for the destinations as well.
        errors = {("projects", reason): 1}
        if fault != "token_rejected":
            errors[("backup_destinations", reason)] = 1
        assert {
            (dict(k)["resource"], dict(k)["reason"]): v for k, v in series(first.samples, ERRORS).items() if v
        } == errors
        assert sorted(_warning_class(r) for r in first.warnings) == sorted(errors)
        if fault == "token_rejected":
            # A 401 is an answer, not an accident: each listing asked once.
            assert [(r.route, r.status) for r in first.requests] == [(routes.PROJECTS, 401)]
        for secret in (TOKEN, *SIMULATED_SECRETS):
            assert secret not in first.text
            assert secret not in caplog.text


# -- refusals: 401, 403, 404 ---------------------------------------------------------------------------


async def test_token_revoked_mid_run(harness: Harness) -> None:
    """``northflank_up`` 0, every value kept with its refresh time; the pass ends at the first 401 (the
    planner sends the projects listing first and alone, and nothing else while the token is refused)."""
    h = harness
    before = await h.good_refresh()
    h.sim.revoke_token()
    after = await h.refresh(STEP)

    assert value(after.samples, "northflank_up") == 0
    await check_fault(
        h,
        before,
        after,
        stale=set(series(before.samples, REFRESHED)),
        errors={("projects", "auth"): 1},
    )
    assert all(r.status == 401 for r in after.requests)
    assert len({r.path for r in after.requests}) == len(after.requests), "a 401 was retried"
    await h.recover(after)


async def test_a_rejected_token_ends_the_pass_with_one_request_and_one_line(harness: Harness) -> None:
    h = harness
    await h.good_refresh()
    h.sim.revoke_token()
    after = await h.refresh(STEP)
    assert len(after.requests) == 1
    assert len(after.warnings) == 1


async def test_permission_denied_on_one_project(harness: Harness) -> None:
    """A token without access to one project: every listing under it is 403, asked once, counted as
    ``permission``; the project's addons keep their values; the other projects are read as usual."""
    h = harness
    before = await h.good_refresh()
    project, addons = h.project_with_addons()
    h.sim.inject("status", None, params={"projectId": project.id}, status=403)
    after = await h.refresh(STEP)

    stale = {refreshed("addons", project.id)}
    for addon in addons:
        stale |= addon_refreshes(addon)
    n = len(addons)
    await check_fault(
        h,
        before,
        after,
        stale=stale,
        errors={
            ("addons", "permission"): 1,
            ("backups", "permission"): n,
            ("schedules", "permission"): n,
            ("restores", "permission"): n,
        },
        one_line_per_class=False,
    )
    denied = [r for r in after.requests if r.status == 403]
    assert len(denied) == 1 + 3 * n
    assert len({r.path for r in denied}) == len(denied), "a 403 was retried"
    assert value(after.samples, "northflank_up") == 1
    await h.recover(after)


async def test_not_found_on_one_addon(harness: Harness) -> None:
    """An addon still listed whose listings answer 404 (deleted meanwhile): each asked once, counted as
    ``not_found``, its values kept; it disappears only when its project's listing drops it. (A 404 makes
    the planner read the project's addon listing again at once: one request more than a complete pass,
    when that listing was not being read already; here it still lists the addon.)"""
    h = harness
    before = await h.good_refresh()
    addon = h.busy_addon()
    h.sim.inject("status", None, params={"addonId": addon.id}, status=404)
    after = await h.refresh(STEP)

    await check_fault(
        h,
        before,
        after,
        stale=addon_refreshes(addon),
        errors={("backups", "not_found"): 1, ("schedules", "not_found"): 1, ("restores", "not_found"): 1},
    )
    assert [r.status for r in after.requests if r.status == 404] == [404, 404, 404]
    project_addons = after.requests_to(f"/v1/projects/{addon.project_id}/addons")
    assert 1 <= len(project_addons) <= 2
    assert (addon.project_id, addon.id) in h.running.exporter.store.current.addons
    await h.recover(after)


async def test_a_persisting_fault_is_logged_once_not_on_every_pass(caplog: pytest.LogCaptureFixture) -> None:
    """One addon's backups answer 500 pass after pass while the other addons' backups are fine: one
    WARNING line for the fault class, not one per pass, however the other addons' listings succeed
    around the failing one (one request at a time: the outcome does not depend on timing)."""
    async with open_harness(caplog, concurrency=1) as h:
        h.sim.inject("status", routes.BACKUPS, params={"addonId": h.busy_addon().id}, status=500)
        first = await h.refresh()
        second = await h.refresh(STEP)
        assert len(first.warnings) + len(second.warnings) == 1


# -- 429 --------------------------------------------------------------------------------------------------
# The exporter's request budget (exporter/budget.py) waits out a rate-limit hold on the injected clock,
# with real sleeps: these tests run on a clock that moves with real time.

#: How the API says how long to wait: a Retry-After header, or only the rate-limit window's reset.
WAIT_HINTS = ["retry_after", "ratelimit_reset"]


@pytest.mark.parametrize("hint", WAIT_HINTS)
async def test_429_with_a_short_wait_is_retried_after_it(caplog: pytest.LogCaptureFixture, hint: str) -> None:
    """A 429 saying "in one second" (Retry-After: 1, or no Retry-After and x-ratelimit-reset: 1): the
    exporter waits that second and asks again; the refresh succeeds and no error is counted."""
    options: dict[str, Any] = {"rate_window": 1.0} if hint == "ratelimit_reset" else {}
    async with open_harness(caplog, clock=MovingClock(START), simulator_options=options) as h:
        before = await h.good_refresh()
        addon = h.busy_addon()
        retry_after = 1 if hint == "retry_after" else None
        h.sim.inject(
            "status",
            routes.BACKUPS,
            params={"addonId": addon.id},
            status=429,
            retry_after=retry_after,
            times=1,
        )
        after = await h.refresh(STEP, deadline=3)

        await check_fault(h, before, after, stale=set(), errors={}, held=True)
        asked = after.requests_to(addon_path(addon, "backups"))
        assert [r.status for r in asked] == [429, 200]
        assert asked[1].time - asked[0].time >= 1.0, "the retry did not wait what the API said"
        await h.recover(after)


@pytest.mark.parametrize("hint", WAIT_HINTS)
async def test_429_with_a_long_wait_gives_up_and_asks_nothing_more(
    caplog: pytest.LogCaptureFixture, hint: str
) -> None:
    """The account is rate-limited for an hour (Retry-After: 3600, or no Retry-After and the window's
    x-ratelimit-reset, ~3600 s): longer than the 60 s the client may wait, so the listing is given up at
    once as ``rate_limited`` (no retry, no sleeping), and no other request goes out during the hold,
    though the pass had dozens left; /metrics keeps every value and says how long refreshes are held."""
    options: dict[str, Any] = {"retry_after": False} if hint == "ratelimit_reset" else {}
    async with open_harness(caplog, clock=MovingClock(START), simulator_options=options) as h:
        before = await h.good_refresh()
        h.sim.inject("status", None, status=429, retry_after=3600 if hint == "retry_after" else None)
        h.clock.advance(STEP)
        caplog.clear()
        first, began = len(h.sim.request_log), time.perf_counter()
        # The pass is over once the planner has nothing in flight and may start nothing: it holds every
        # listing of the pass (they stay due) until the API's hour is over. A hammering exporter fails
        # the assertion below, or (never at rest) this deadline.
        await h.running.scheduler.refresh(deadline=5)
        during = await h.observe(first, began)

        assert [(r.route, r.status) for r in during.requests] == [(routes.PROJECTS, 429)]
        planner = h.running.exporter.scheduler
        assert isinstance(planner, PlannedPasses)
        assert not planner.planner.in_flight()
        await check_fault(
            h,
            before,
            during,
            stale=set(series(before.samples, REFRESHED)),
            errors={("projects", "rate_limited"): 1},
            held=True,
        )
        assert value(during.samples, "northflank_up") == 0
        deferred = value(during.samples, "northflank_exporter_refresh_deferred_seconds")
        assert deferred is not None
        assert deferred > 2500  # until the API said to come back
        # Still nothing: every due listing waits for the hold (the planner looks again only after it).
        assert [(r.route, r.status) for r in h.sim.request_log.records[first:]] == [(routes.PROJECTS, 429)]


# -- 5xx with HTML bodies, hang, connection refused, reset ------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_with_html_bodies_on_every_addon(harness: Harness, status: int) -> None:
    """A proxy's HTML error page on every addon's backups: each listing is retried (4 attempts), then
    counted once as ``server_error``; one WARNING line for all of them, without the HTML."""
    h = harness
    before = await h.good_refresh()
    h.sim.inject("status", routes.BACKUPS, status=status, body="html")
    after = await h.refresh(STEP)

    addons = h.sim.fleet.addons
    stale: set[Labels] = set()
    for addon in addons:
        stale |= addon_refreshes(addon, ["backups"])
    await check_fault(h, before, after, stale=stale, errors={("backups", "server_error"): len(addons)})
    for addon in addons:
        assert [r.status for r in after.requests_to(addon_path(addon, "backups"))] == [status] * MAX_ATTEMPTS
    assert "server error" in after.warnings[0].getMessage()
    await h.recover(after)


async def test_an_api_that_accepts_and_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    """The request hangs: each attempt is cut at the client's deadline (0.5 s here), the listing is
    counted as ``timeout`` after four, and the pass ends instead of waiting forever."""
    timeout = 0.5
    # Four requests at most in flight: none of the good ones can come near the deadline.
    async with open_harness(caplog, request_timeout=timeout, concurrency=4) as h:
        before = await h.good_refresh()
        addon = h.busy_addon()
        h.sim.inject("hang", routes.BACKUPS, params={"addonId": addon.id})
        after = await h.refresh(STEP)

        await check_fault(
            h, before, after, stale=addon_refreshes(addon, ["backups"]), errors={("backups", "timeout"): 1}
        )
        asked = after.requests_to(addon_path(addon, "backups"))
        assert len(asked) == MAX_ATTEMPTS
        assert all(r.status is None for r in asked), "the simulator answered a hanging request"
        assert MAX_ATTEMPTS * timeout <= after.elapsed < MAX_ATTEMPTS * timeout + 3
        await h.recover(after)


async def test_connection_refused_mid_run(harness: Harness) -> None:
    """The API goes away (its port closed): every listing fails as ``connection`` after its retries,
    ``northflank_up`` is 0, every value is kept; when it comes back, everything is read again."""
    h = harness
    before = await h.good_refresh()
    port = int(h.server.url.rsplit(":", 1)[1])
    await h.server.stop()
    after = await h.refresh(STEP)

    assert value(after.samples, "northflank_up") == 0
    n_addons, n_destinations = len(h.sim.fleet.addons), len(h.sim.fleet.destinations)
    await check_fault(
        h,
        before,
        after,
        stale=set(series(before.samples, REFRESHED)),
        errors={
            ("projects", "connection"): 1,
            # The planner still reads what the last good discovery found (a complete pass used to skip
            # the addon listings when the projects could not be listed).
            ("addons", "connection"): len(h.sim.fleet.projects),
            ("backups", "connection"): n_addons,
            ("schedules", "connection"): n_addons,
            ("restores", "connection"): n_addons,
            ("backup_destinations", "connection"): 1,
            ("destination_backups", "connection"): n_destinations,
        },
    )
    assert not after.requests
    h.server = SimulatorServer(h.sim, port=port)
    await h.server.start()
    await h.recover(after)


async def test_connection_reset_mid_body(harness: Harness) -> None:
    """Headers and half the body, then the connection drops: ``connection``, after four attempts."""
    h = harness
    before = await h.good_refresh()
    addon = h.busy_addon()
    h.sim.inject("reset", routes.ADDON_RESTORES, params={"addonId": addon.id})
    after = await h.refresh(STEP)

    await check_fault(
        h, before, after, stale=addon_refreshes(addon, ["restores"]), errors={("restores", "connection"): 1}
    )
    assert len(after.requests_to(addon_path(addon, "restores"))) == MAX_ATTEMPTS
    await h.recover(after)


# -- 2xx bodies that are not what the API documents ---------------------------------------------------


@dataclass(frozen=True)
class BadBody:
    """A fault that makes a 2xx body invalid, where it is injected, and what fails."""

    kind: str
    #: "account", "project" (the project with the most addons), "addon" (a busy one), "destination"
    scope: str
    route: str
    resource: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: requests the listing takes before it is given up (a repeating cursor reads page 1 twice)
    requests: int = 1


BAD_BODIES = {
    "invalid_json": BadBody("invalid_json", "addon", routes.BACKUP_SCHEDULES, "schedules"),
    "wrong_shape": BadBody("wrong_shape", "project", routes.ADDONS, "addons"),
    "wrong_shape_list": BadBody("wrong_shape", "addon", routes.BACKUPS, "backups", {"value": [{"id": "x"}]}),
    "null_data": BadBody("null_data", "account", routes.BACKUP_DESTINATIONS, "backup_destinations"),
    "missing_id": BadBody("missing_field", "addon", routes.BACKUPS, "backups", {"field": "id"}),
    "missing_status": BadBody(
        "missing_field", "addon", routes.ADDON_RESTORES, "restores", {"field": "status"}
    ),
    "missing_project_name": BadBody(
        "missing_field", "account", routes.PROJECTS, "projects", {"field": "name"}
    ),
    "null_addon_spec": BadBody("null_field", "project", routes.ADDONS, "addons", {"field": "spec"}),
    "null_backup_config": BadBody("null_field", "addon", routes.BACKUPS, "backups", {"field": "config"}),
    "null_scheduling": BadBody(
        "null_field", "addon", routes.BACKUP_SCHEDULES, "schedules", {"field": "scheduling"}
    ),
    "bad_created_at": BadBody("bad_timestamp", "addon", routes.BACKUPS, "backups"),
    "bad_restore_timestamp": BadBody(
        "bad_timestamp", "addon", routes.ADDON_RESTORES, "restores", {"field": "restoreTimestamp"}
    ),
    "repeating_cursor": BadBody(
        "repeating_cursor", "destination", routes.DESTINATION_BACKUPS, "destination_backups", requests=2
    ),
}


@pytest.mark.parametrize("case", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_an_invalid_body_keeps_the_last_good_data(harness: Harness, case: BadBody) -> None:
    """Not retried (the same body would come back), counted as ``invalid_response``, values kept."""
    h = harness
    before = await h.good_refresh()
    project, _ = h.project_with_addons()
    addon = h.busy_addon()
    destination = h.sim.fleet.destinations[0]
    params = {
        "account": {},
        "project": {"projectId": project.id},
        "addon": {"addonId": addon.id},
        "destination": {"backupDestinationId": destination.id},
    }[case.scope]
    h.sim.inject(case.kind, case.route, params=params, **case.options)
    after = await h.refresh(STEP)

    stale: set[Labels]
    if case.resource in ADDON_FAMILIES:
        stale = addon_refreshes(addon, [case.resource])
    elif case.resource == "addons":
        stale = {refreshed("addons", project.id)}
    elif case.resource == "projects":
        # Discovery failed: the planner still reads the addon listings of the projects it found before.
        stale = {refreshed("projects")}
    elif case.resource == "backup_destinations":
        stale = {refreshed("backup_destinations")}
    else:
        stale = {refreshed("destination_backups")}
    await check_fault(
        h,
        before,
        after,
        stale=stale,
        errors={(case.resource, "invalid_response"): 1},
        failed_destinations=[destination.id],
    )
    faulty = [r for r in after.requests if r.fault == case.kind]
    assert len(faulty) == case.requests, [(r.path, r.status) for r in faulty]
    assert value(after.samples, "northflank_up") == (0 if case.resource == "projects" else 1)
    await h.recover(after)


async def test_a_10_mb_page_is_refused_without_reading_it(caplog: pytest.LogCaptureFixture) -> None:
    """A 10 MiB page (the client's cap is 4 MiB): ``invalid_response``, values kept, and the exporter's
    memory does not grow by the page. The simulator runs in its own process here so that tracemalloc
    measures the exporter alone (in-process, building the page would cost the simulator ~30 MB)."""
    caplog.set_level(logging.DEBUG, logger="exporter")
    clock = FixedClock(START)
    labels = {"project": "e2e-project", "addon": "e2e-healthy"}  # the e2e scenario's ids are fixed
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with simulator_process("--scenario", "e2e", "--token", TOKEN) as api_url:
        async with running_exporter(
            api_url=api_url, token=TOKEN, clock=clock, passes=True, request_budget=BUDGET
        ) as running:
            await running.scheduler.refresh()
            before = await running.scrape()
            fault = {"kind": "huge_page", "route": routes.BACKUPS, "params": {"addonId": labels["addon"]}}
            added = await running.http.post(f"{api_url}/_simulator/faults", json=fault, headers=admin)
            assert added.status_code == 201, added.text
            clock.advance(STEP)
            caplog.clear()
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                await running.scheduler.refresh()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            finally:
                tracemalloc.stop()
            text = await running.scrape_text()
            after = parse_samples(text)
            log = (await running.http.get(f"{api_url}/_simulator/requests", headers=admin)).json()

    assert peak < 4 * 1024 * 1024, f"the refresh held {peak / 2**20:.1f} MiB"
    huge = [r for r in log["data"]["requests"] if r["fault"] == "huge_page"]
    assert len(huge) == 1, "a refused body was asked for again"
    assert {k: v for k, v in series(after, ERRORS).items() if v} == {
        frozenset({"resource": "backups", "reason": "invalid_response"}.items()): 1
    }
    assert value(after, REFRESHED, **labels, resource="backups") == START
    assert value(after, REFRESHED, **labels, resource="restores") == START + STEP
    kept = _family_values(before, ADDON_FAMILIES["backups"], **labels)
    assert kept
    assert {k: v for k, v in _family_values(after, ADDON_FAMILIES["backups"]).items() if k in kept} == kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "larger than" in warnings[0]
    for secret in (TOKEN, *SIMULATED_SECRETS):
        assert secret not in text
        assert secret not in caplog.text


# -- 2xx bodies with quirks the exporter accepts --------------------------------------------------------


def _status_counts(samples: Samples, addon: AddonSpec) -> dict[str, float]:
    return {
        dict(k)["status"]: v
        for k, v in series(samples, "northflank_addon_backups").items()
        if dict(k)["addon"] == addon.id
    }


async def test_an_unknown_status_is_counted_as_unknown_not_an_error(harness: Harness) -> None:
    h = harness
    before = await h.good_refresh()
    addon = h.busy_addon()
    h.sim.inject("unknown_enum", routes.BACKUPS, params={"addonId": addon.id}, value="exploded")
    after = await h.refresh(STEP)

    await check_fault(h, before, after, stale=set(), errors={})
    total = len(h.sim.backups_at(addon, h.clock.now()))
    expected = {status: 0.0 for status in _status_counts(before.samples, addon)}
    expected["unknown"] = total
    assert _status_counts(after.samples, addon) == expected
    labels = {"project": addon.project_id, "addon": addon.id}
    # Nothing is known to have completed any more: no completion time, every attempt of unknown outcome.
    assert value(after.samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels) is None
    assert value(after.samples, "northflank_addon_backup_consecutive_failures", **labels) == 0
    await h.recover(after)


async def test_non_numeric_sizes_are_unknown_and_the_listing_is_kept(harness: Harness) -> None:
    """``"size": "12 MB"``: the backups are counted and dated as usual; the newest completed backup's
    size and the addon's total size are unknown, so those two series are left out (not exported as 0,
    which would read as an empty backup)."""
    h = harness
    before = await h.good_refresh()
    addon = h.busy_addon()
    h.sim.inject("non_numeric_size", routes.BACKUPS, params={"addonId": addon.id}, value="12 MB")
    after = await h.refresh(STEP)

    await check_fault(h, before, after, stale=set(), errors={})
    labels = {"project": addon.project_id, "addon": addon.id}
    records = h.sim.backups_at(addon, h.clock.now())
    completed = [r for r in records if r.status == "completed"]
    assert completed
    for status in {r.status for r in records}:
        assert value(after.samples, "northflank_addon_backups", **labels, status=status) == sum(
            1 for r in records if r.status == status
        )
    newest = max(completed, key=lambda r: r.completed_at or 0)
    assert value(after.samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels) == (
        pytest.approx(newest.completed_at, abs=0.001)
    )
    assert value(before.samples, "northflank_addon_backup_last_completed_size_bytes", **labels) is not None
    assert value(after.samples, "northflank_addon_backup_last_completed_size_bytes", **labels) is None
    assert value(after.samples, "northflank_addon_backups_size_bytes", **labels) is None
    await h.recover(after)


async def test_has_next_page_without_a_cursor_keeps_what_was_read(caplog: pytest.LogCaptureFixture) -> None:
    """Page 1 says there is more but gives no cursor to ask for it: the walk stops there and the
    first page's backups are used (as the official js-client does); not an error."""
    async with open_harness(caplog, simulator_options={"max_per_page": 25}) as h:
        before = await h.good_refresh()
        addon = h.busy_addon(minimum=30)
        h.clock.advance(STEP)
        # What page 1 holds at the new time, asked for the way the exporter asks.
        async with h.sim.client() as api:
            page = (await api.get(addon_path(addon, "backups"), params={"per_page": "100"})).json()
        first_page: list[dict[str, Any]] = page["data"]["backups"]
        total = len(h.sim.backups_at(addon, h.clock.now()))
        assert page["pagination"]["hasNextPage"]
        assert len(first_page) == 25 < total
        h.sim.inject("next_page_without_cursor", routes.BACKUPS, params={"addonId": addon.id})
        after = await h.refresh()

        await check_fault(h, before, after, stale=set(), errors={})
        assert len(after.requests_to(addon_path(addon, "backups"))) == 1
        expected = {status: 0.0 for status in _status_counts(before.samples, addon)}
        for item in first_page:
            expected[item["status"]] += 1
        assert _status_counts(after.samples, addon) == expected
        completed = [
            datetime.fromisoformat(b["completedAt"]).timestamp()
            for b in first_page
            if b["status"] == "completed"
        ]
        labels = {"project": addon.project_id, "addon": addon.id}
        newest = value(after.samples, "northflank_addon_backup_last_completed_timestamp_seconds", **labels)
        assert newest == (pytest.approx(max(completed), abs=0.001) if completed else None)
        await h.recover(after)


def test_the_fault_matrix_covers_every_injectable_fault() -> None:
    """Every kind the simulator can inject is exercised above (a new kind needs a test here)."""
    from exporter.simulator.faults import FaultKind

    source = Path(__file__).read_text(encoding="utf-8")
    missing = [kind.value for kind in FaultKind if f'"{kind.value}"' not in source]
    assert not missing

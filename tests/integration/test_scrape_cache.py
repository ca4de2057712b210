"""/metrics through the scrape cache, over a real socket: concurrent scrapes of an unchanged snapshot
share one rendering, a new snapshot is rendered again, and the bodies (identity and gzip) are the text
the uncached renderer writes for the same snapshot and second."""

from __future__ import annotations

import asyncio
import gzip
import logging
import math
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from exporter.clock import FixedClock
from exporter.collector import SnapshotPage, SnapshotRenderer
from exporter.northflank.models import Addon, Backup, Project, Schedule
from exporter.snapshot import Snapshot, summarize_backups, summarize_schedules
from exporter.web.scrape_cache import SEND_SLICE, Body, BodyResponse, ScrapeCache, TrailerPart
from exporter.web.server import create_app
from tests.e2e.binaries import require_binary
from tests.support import MONDAY_NOON, serve_asgi

#: A fractional scrape time: the cache takes it to the whole second, as the comparison does.
NOW = MONDAY_NOON + 0.75
SCRAPERS = 20
INSTRUMENTS = b"# HELP bench_live_total A live part.\n# TYPE bench_live_total counter\nbench_live_total 3\n"
PLANS = b"# HELP bench_plans A per-second part.\n# TYPE bench_plans gauge\nbench_plans 1\n"


def fleet(addons: int, *, variant: int = 0) -> Snapshot:
    """``addons`` addons with a daily schedule and a few backups each; ``variant`` moves one backup."""
    snapshot = Snapshot().with_projects([(None, Project(id="project", name="Project"))], MONDAY_NOON - 600)
    listed = [
        Addon.model_validate({"id": f"addon-{a}", "name": f"db-{a}", "spec": {"type": "postgresql"}})
        for a in range(addons)
    ]
    snapshot = snapshot.with_project_addons("project", listed, MONDAY_NOON - 600)
    schedule = Schedule.model_validate(
        {
            "id": "daily",
            "backupType": "snapshot",
            "retentionTime": 7,
            "scheduling": {"interval": "daily", "hour": [2], "minute": [30]},
        }
    )
    for key in list(snapshot.addons):
        index = int(key[1].removeprefix("addon-"))
        backups = [
            Backup.model_validate(
                {
                    "id": f"backup-{index}-{day}",
                    "status": "completed" if (index + day) % 5 else "failed",
                    "createdAt": _iso(
                        MONDAY_NOON - 86400 * day - 3600 - index - (variant if index == 0 else 0)
                    ),
                    "completedAt": _iso(MONDAY_NOON - 86400 * day - 3000 - index + 0.25),
                    "config": {"size": str(1000 + index)},
                }
            )
            for day in range(4)
        ]
        snapshot = snapshot.with_addon_backups(key, summarize_backups(backups, now=MONDAY_NOON), MONDAY_NOON)
        snapshot = snapshot.with_addon_schedules(key, summarize_schedules([schedule]), MONDAY_NOON)
    return snapshot.with_ready()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class Scenario:
    """A scrape cache over a snapshot the test swaps, counting renderings and the scrapes that asked."""

    def __init__(self, snapshot: Snapshot, *, renderer: SnapshotRenderer | None = None) -> None:
        self.snapshot = snapshot
        self.clock = FixedClock(NOW)
        self.renders: Counter[str] = Counter()
        self.asked = 0
        self.all_asked = threading.Event()
        self.hold: Callable[[str], None] = lambda _: None
        self.cache = ScrapeCache(
            renderer or SnapshotRenderer(schedule_grace_seconds=3600, version="test"),
            snapshot=self._current,
            clock=self.clock,
            trailer=(
                TrailerPart("instruments", lambda: INSTRUMENTS),
                TrailerPart("scheduler", lambda: PLANS, per_second=True),
            ),
            on_render=self._rendered,
            offload_addons=0,  # every rendering in a thread, as for a large fleet
        )
        self.app = create_app(
            render_metrics=lambda: b"",
            snapshot=lambda: self.snapshot,
            telemetry_path="/metrics",
            version="test",
            scrapes=self.cache,
        )

    def _current(self) -> Snapshot:
        self.asked += 1
        if self.asked >= SCRAPERS:
            self.all_asked.set()
        return self.snapshot

    def _rendered(self, kind: str) -> None:
        self.hold(kind)
        self.renders[kind] += 1


def promtool_check(exposition: bytes) -> None:
    checked = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def uncached(snapshot: Snapshot, now: float) -> bytes:
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    return renderer.render(snapshot, math.floor(now), trailer=INSTRUMENTS + PLANS)


async def test_concurrent_scrapes_of_an_unchanged_snapshot_render_once_and_a_new_one_again() -> None:
    scenario = Scenario(fleet(30))

    def until_every_scraper_waits(kind: str) -> None:
        # The first rendering holds (in its thread) until every scraper has asked for the page: without
        # the single flight each of them would start a rendering of its own.
        if kind == "page":
            assert scenario.all_asked.wait(timeout=10), "the scrapers did not all arrive"

    scenario.hold = until_every_scraper_waits
    async with serve_asgi(scenario.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        responses = await asyncio.gather(
            *(http.get("/metrics", headers={"Accept-Encoding": "gzip"}) for _ in range(SCRAPERS))
        )
        assert [r.status_code for r in responses] == [200] * SCRAPERS
        assert {r.headers["content-encoding"] for r in responses} == {"gzip"}
        assert len({r.content for r in responses}) == 1
        assert scenario.renders == {"page": 1, "timed": 1}

        scenario.hold = lambda _: None
        assert (await http.get("/metrics")).status_code == 200
        assert scenario.renders == {"page": 1, "timed": 1}, "an unchanged snapshot was rendered again"

        scenario.clock.advance(1)  # a new second: the scrape-time families only
        await http.get("/metrics")
        assert scenario.renders == {"page": 1, "timed": 2}

        scenario.snapshot = fleet(30, variant=1)
        changed = await http.get("/metrics")
        assert scenario.renders == {"page": 2, "timed": 3}
        assert changed.content == uncached(scenario.snapshot, scenario.clock.now())


async def test_gzip_and_identity_bodies_are_the_uncached_text() -> None:
    snapshot = fleet(25)
    scenario = Scenario(snapshot)
    async with serve_asgi(scenario.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        plain = await http.get("/metrics", headers={"Accept-Encoding": "identity"})
        async with http.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as response:
            compressed = b"".join([chunk async for chunk in response.aiter_raw()])
            assert response.headers["content-encoding"] == "gzip"
            assert int(response.headers["content-length"]) == len(compressed)
        head = await http.head("/metrics", headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert int(plain.headers["content-length"]) == len(plain.content)
    assert head.status_code == 200
    assert head.content == b""
    expected = uncached(snapshot, NOW)
    assert b"northflank_addon_backup_last_completed_age_seconds" in expected
    assert b"northflank_addon_backup_schedule_next_run_timestamp_seconds" in expected
    assert plain.content == expected
    # One gzip member (some clients read no further than the first), and the same text.
    reader = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert reader.decompress(compressed) == expected
    assert reader.eof
    assert not reader.unused_data
    assert gzip.decompress(compressed) == expected
    promtool_check(plain.content)


class _Broken(SnapshotRenderer):
    def page(self, snapshot: Snapshot) -> SnapshotPage:
        raise RuntimeError("a bug")


async def test_a_scrape_that_cannot_be_rendered_is_answered_500_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scenario = Scenario(fleet(3), renderer=_Broken(schedule_grace_seconds=3600, version="test"))
    async with serve_asgi(scenario.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        with caplog.at_level(logging.WARNING, logger="exporter.web.scrape_cache"):
            first = await http.get("/metrics")
            second = await http.get("/metrics")
    assert (first.status_code, second.status_code) == (500, 500)
    # Each one tried again (a failure is not kept) and counted; the log says it once, without the message.
    assert scenario.cache.failures["render"] == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "exporter.web.scrape_cache"]
    assert len(lines) == 1
    assert "RuntimeError" in lines[0]
    assert "a bug" not in lines[0]


async def test_a_scraper_gone_before_the_body_was_sent_is_counted() -> None:
    scenario = Scenario(fleet(1))
    body = Body((b"x" * SEND_SLICE,) * 4, 4 * SEND_SLICE, gzip=False)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)
        await asyncio.sleep(0)  # the server's flow control: the watcher sees the disconnect meanwhile

    response = BodyResponse(body, scenario.cache, {})
    await response({"type": "http", "method": "GET"}, receive, send)  # type: ignore[arg-type]
    assert scenario.cache.failures == {"render": 0, "disconnected": 1}
    assert len(sent) < 5, "the rest of the body was sent to nobody"

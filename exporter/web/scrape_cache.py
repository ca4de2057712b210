"""/metrics at scale: concurrent scrapes of an unchanged snapshot share one rendering and one compression.

A scrape's body is, in order: the snapshot's families (:class:`~exporter.collector.SnapshotPage`: fixed
runs with the scrape-time families between them), the render errors counter, then the trailer parts
(the exporter's instruments, the planner's next refresh times). What each depends on decides how long
it is kept:

- the page: the snapshot (the same object: snapshots are immutable and replaced whole). Rendered and
  compressed once per snapshot, in a thread when the fleet is large, so that the poller keeps running;
- the scrape-time families (ages, a schedule's runs): the page and the scrape time taken to the whole
  second (``floor(now)``), so that concurrent scrapes share them: an age is as of the start of the
  second of the scrape;
- a trailer part that is ``per_second`` (the planner's plans): the second; the other parts (counters,
  budget, process figures) and the render errors counter: rendered at every scrape, as they are small.

Every one is rendered by the first scrape that needs it while the others wait for it (single flight),
and compressed on its own (``gzip_parts``), so a gzip scrape compresses only its small live part. The
body is sent as the shared parts themselves, in slices, under uvicorn's flow control: a scrape holds no
copy of the body, however large the fleet. The text is the same, byte for byte, as
``SnapshotRenderer.render(snapshot, floor(now), trailer)`` (a test compares them).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from exporter.clock import Clock
from exporter.collector import FAMILIES, LeftOut, SnapshotPage, SnapshotRenderer, TimedParts
from exporter.exposition import CONTENT_TYPE
from exporter.metrics import SCRAPE_FAILURES
from exporter.snapshot import Snapshot
from exporter.web.gzip_parts import Part, gzip_chunks

log = logging.getLogger(__name__)

#: The most bytes handed to the server at once: with its flow control (it waits while the socket's
#: buffer is full), what a slow scraper keeps in memory is about this much, not the body.
SEND_SLICE = 256 * 1024
#: From this many addons, pages and scrape-time families are rendered in a thread, not on the loop.
OFFLOAD_ADDONS = 250
#: Failures of the same reason are logged at most once per this many seconds (each one is counted).
LOG_INTERVAL_SECONDS = 60.0

T = TypeVar("T")

FailureReason = Literal["render", "disconnected"]
REASONS: tuple[FailureReason, ...] = ("render", "disconnected")


@dataclass(frozen=True, slots=True)
class TrailerPart:
    """A part of the body after the snapshot's: ``render`` runs on the event loop (it may read state the
    loop changes); ``per_second``: kept for the rest of the second it was rendered in."""

    name: str
    render: Callable[[], bytes]
    per_second: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class _Page:
    snapshot: Snapshot
    page: SnapshotPage
    fixed: tuple[Part, ...]


@dataclass(frozen=True, slots=True, eq=False)
class _Timed:
    parts: tuple[Part, ...]
    errors: tuple[LeftOut, ...]


@dataclass(frozen=True, slots=True)
class Body:
    """A scrape's body as the pieces it is made of (shared with other scrapes, never joined whole)."""

    chunks: tuple[bytes, ...]
    length: int
    gzip: bool

    def text(self) -> bytes:
        """The body joined (tests and benchmarks; the server sends the chunks)."""
        return b"".join(self.chunks)


class ScrapeCache:
    """Renders /metrics for concurrent scrapes, once per change (see the module's docstring)."""

    def __init__(
        self,
        renderer: SnapshotRenderer,
        *,
        snapshot: Callable[[], Snapshot],
        clock: Clock,
        trailer: Sequence[TrailerPart] = (),
        on_render: Callable[[str], None] | None = None,
        offload_addons: int = OFFLOAD_ADDONS,
    ) -> None:
        """``on_render`` is called with ``"page"`` or ``"timed"`` for each rendering (tests count them)."""
        self._renderer = renderer
        self._snapshot = snapshot
        self._clock = clock
        self._trailer = tuple(trailer)
        self.on_render = on_render
        self._offload = offload_addons
        #: The renderer is not for two threads at once: every rendering, in a thread or not, holds this.
        self.render_lock = threading.Lock()
        self._page: tuple[Snapshot, asyncio.Future[_Page]] | None = None
        self._timed: tuple[_Page, int, asyncio.Future[_Timed]] | None = None
        #: per_second trailer parts: name -> (second, part, what it left out)
        self._seconds: dict[str, tuple[int, Part, LeftOut | None]] = {}
        self.failures: dict[FailureReason, int] = dict.fromkeys(REASONS, 0)
        self._unlogged: dict[FailureReason, int] = dict.fromkeys(REASONS, 0)
        self._logged_at: dict[FailureReason, float] = {}

    # -- rendering ------------------------------------------------------------------------------------

    async def body(self, *, gzip: bool) -> Body:
        """The current body; raises what rendering raised (the caller answers 500 and counts it)."""
        snapshot = self._snapshot()
        now = self._clock.now()
        second = math.floor(now)
        page = await self._page_of(snapshot)
        timed = await self._timed_of(page, second)
        errors = self._renderer.errors
        left_out: list[LeftOut] = [*page.page.errors, *timed.errors]
        live: list[bytes] = []
        tail: list[Part] = []
        for part in self._trailer:
            if part.per_second:
                rendered, failure = self._per_second(part, second)
                # Parts before this one are live text; this one is shared: close the live run first.
                if live:
                    tail.append(Part.of(b"".join(live)))
                    live = []
                tail.append(rendered)
                if failure is not None:
                    left_out.append(failure)
                continue
            try:
                live.append(part.render())
            except Exception as error:  # a part that cannot be written is left out, never the page
                left_out.append((part.name, error, 1))
        if live:
            tail.append(Part.of(b"".join(live)))
        for family, cause, n in left_out:
            errors.count(family, cause, n)
        counter = Part.of(errors.render((family.name for family in FAMILIES), now).encode())
        parts: list[Part] = []
        for fixed, scrape_time in zip(page.fixed, (*timed.parts, None), strict=True):
            parts.append(fixed)
            if scrape_time is not None:
                parts.append(scrape_time)
        parts.append(counter)
        parts.extend(tail)
        if gzip:
            chunks = tuple(gzip_chunks(parts))
            return Body(chunks, sum(len(chunk) for chunk in chunks), gzip=True)
        pieces = tuple(piece for part in parts for piece in part.pieces)
        return Body(pieces, sum(part.size for part in parts), gzip=False)

    async def _page_of(self, snapshot: Snapshot) -> _Page:
        current = self._page
        if current is None or current[0] is not snapshot or _failed(current[1]):
            future = asyncio.ensure_future(self._run(snapshot, lambda: self._render_page(snapshot)))
            current = self._page = (snapshot, future)
        # Shielded: a scraper that goes away does not cancel the rendering the others wait for.
        return await asyncio.shield(current[1])

    async def _timed_of(self, page: _Page, second: int) -> _Timed:
        current = self._timed
        if current is None or current[0] is not page or current[1] != second or _failed(current[2]):
            future = asyncio.ensure_future(self._run(page.snapshot, lambda: self._render_timed(page, second)))
            current = self._timed = (page, second, future)
        return await asyncio.shield(current[2])

    async def _run(self, snapshot: Snapshot, work: Callable[[], T]) -> T:
        # A small fleet renders in less than a thread's hand-over costs (and stays on the loop that tests
        # run on virtual time); a large one in a thread, so that the poller keeps its turns meanwhile.
        if len(snapshot.addons) >= self._offload:
            return await asyncio.to_thread(work)
        return work()

    def _render_page(self, snapshot: Snapshot) -> _Page:
        with self.render_lock:
            page = self._renderer.page(snapshot)
        if self.on_render is not None:
            self.on_render("page")
        return _Page(snapshot, page, tuple(Part.of(*run) for run in page.fixed))

    def _render_timed(self, page: _Page, second: int) -> _Timed:
        with self.render_lock:
            timed: TimedParts = page.page.timed(second)
        if self.on_render is not None:
            self.on_render("timed")
        return _Timed(tuple(Part.of(text) for text in timed.parts), timed.errors)

    def _per_second(self, part: TrailerPart, second: int) -> tuple[Part, LeftOut | None]:
        kept = self._seconds.get(part.name)
        if kept is not None and kept[0] == second:
            return kept[1], kept[2]
        failure: LeftOut | None = None
        try:
            rendered = Part.of(part.render())
        except Exception as error:
            rendered, failure = Part.of(b""), (part.name, error, 1)
        self._seconds[part.name] = (second, rendered, failure)
        return rendered, failure

    # -- failures -------------------------------------------------------------------------------------

    def failed(self, reason: FailureReason, error: BaseException | None = None) -> None:
        """Counts a scrape that could not be served, and says so in one log line (at most one a minute
        per reason, with how many came since the last)."""
        self.failures[reason] += 1
        self._unlogged[reason] += 1
        now = self._clock.now()
        logged = self._logged_at.get(reason)
        if logged is not None and 0 <= now - logged < LOG_INTERVAL_SECONDS:
            return
        count, self._unlogged[reason] = self._unlogged[reason], 0
        self._logged_at[reason] = now
        what = (
            f"rendering failed ({type(error).__name__})"  # the class: a message may quote a value
            if reason == "render"
            else "the scraper went away before the body was sent"
        )
        log.warning(
            "a /metrics scrape could not be served: %s; %d such since the last line "
            '(northflank_exporter_scrape_failures_total{reason="%s"})',
            what,
            count,
            reason,
        )


def _failed(future: asyncio.Future[_Page] | asyncio.Future[_Timed]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


class ScrapeFailuresCollector(Collector):
    """``northflank_exporter_scrape_failures_total``, by reason (each one present, 0 when none)."""

    def __init__(self, cache: ScrapeCache) -> None:
        self._cache = cache

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            SCRAPE_FAILURES.name, SCRAPE_FAILURES.help, labels=SCRAPE_FAILURES.labels
        )
        for reason in REASONS:
            family.add_metric([reason], self._cache.failures[reason])
        yield family


class BodyResponse(Response):
    """A response sending a :class:`Body` in slices, stopping (and counting) when the scraper goes away."""

    def __init__(self, body: Body, cache: ScrapeCache, headers: dict[str, str]) -> None:
        headers = {**headers, "Content-Encoding": "gzip"} if body.gzip else headers
        super().__init__(headers=headers, media_type=CONTENT_TYPE)
        self._body = body
        self._cache = cache
        self.raw_headers = [
            (name, value) for name, value in self.raw_headers if name != b"content-length"
        ] + [(b"content-length", b"%d" % body.length)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            for piece in _slices(self._body.chunks):
                if gone.done():
                    self._cache.failed("disconnected")
                    return
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _slices(chunks: Sequence[bytes]) -> Iterator[bytes]:
    """The chunks as slices of about SEND_SLICE bytes: small ones joined (an addon's lines are a few
    hundred bytes), large ones cut; at most one slice is a copy at a time."""
    batch: list[bytes] = []
    batched = 0
    for chunk in chunks:
        if batched + len(chunk) <= SEND_SLICE:
            batch.append(chunk)
            batched += len(chunk)
            continue
        if batch:
            yield b"".join(batch)
            batch, batched = [], 0
        if len(chunk) <= SEND_SLICE:
            batch, batched = [chunk], len(chunk)
            continue
        view = memoryview(chunk)
        for start in range(0, len(chunk), SEND_SLICE):
            yield bytes(view[start : start + SEND_SLICE])
    if batch:
        yield b"".join(batch)


__all__ = ["Body", "BodyResponse", "ScrapeCache", "ScrapeFailuresCollector", "TrailerPart"]

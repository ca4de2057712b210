"""Secrets stay secret (issue 8, section 8), over a real socket: a stand-in API that echoes the bearer token
it receives, as given, lower-cased and upper-cased, in every field of its error bodies (message, id,
details) and in a response header, on 401, 403, 500 and 429.

Swept for the token in all three letter cases: every log record at DEBUG (caplog, and the output of the
exporter's own logfmt and JSON formatters, tracebacks included), the exceptions (str, repr, attributes,
chain), and the exporter's ``/`` and ``/metrics``.
"""

from __future__ import annotations

import io
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from exporter.clock import FixedClock
from exporter.logs import JsonFormatter, LogfmtFormatter, configure_logging
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import NorthflankError
from tests.support import running_exporter, serve_asgi, value

TOKEN = "Nf-Echo-T0ken-MiXeD-4c1e"
VARIANTS = (TOKEN, TOKEN.lower(), TOKEN.upper())
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()


def echoing_api(*, projects_fail_once: bool = False) -> Starlette:
    """Every route fails with the status its path asks for, echoing the token it was sent; the letter case
    turns with every request, so that each status is answered in every case across retries and tests.
    The projects and addons listings answer (the projects one 401 always, or only the first time)."""
    cases = itertools.cycle((lambda t: t, str.lower, str.upper))
    projects_calls = itertools.count(1)

    async def fail(request: Request) -> Response:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        echoed = next(cases)(sent)
        path = request.url.path
        status = 200
        if path == "/v1/projects":
            status = 401 if not projects_fail_once or next(projects_calls) == 1 else 200
        elif "/addons/" in path:
            status = {"backups": 500, "backup-schedules": 429, "restores": 403}[path.rsplit("/", 1)[1]]
        elif path.startswith("/v1/backup-destinations"):
            status = 403
        if status == 200:
            if path == "/v1/projects":
                return JSONResponse({"data": {"projects": [{"id": "p1", "name": "Shop"}]}})
            addon = {"id": "a1", "name": "db", "spec": {"type": "postgresql"}}
            return JSONResponse({"data": {"addons": [addon]}})
        body = {
            "error": {
                "status": status,
                "message": f"invalid token {echoed} (Bearer {echoed})",
                "id": echoed,
                "details": {"token": echoed, "authorization": f"Bearer {echoed}"},
            }
        }
        return JSONResponse(body, status_code=status, headers={"retry-after": "0", "x-echo": echoed})

    return Starlette(routes=[Route("/{path:path}", fail)])


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Logging as the exporter sets it up at --log.level=debug (configure_logging: the levels of every
    logger, httpx's and httpcore's included), written by its logfmt and JSON formatters (tracebacks
    included), and captured by caplog too."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    quieted = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    configure_logging("debug", "logfmt")
    out = io.StringIO()
    handlers = [logging.StreamHandler(out), logging.StreamHandler(out)]
    handlers[0].setFormatter(LogfmtFormatter())
    handlers[1].setFormatter(JsonFormatter())
    # configure_logging's own handler writes to stderr; ours write where the test can read it.
    root.handlers[:] = [*saved_handlers, *handlers]
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def assert_no_token(text: str, where: str) -> None:
    folded = text.casefold()
    for variant in VARIANTS:
        assert variant not in text, where
    assert TOKEN.casefold() not in folded, where


def exception_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def test_the_client_never_lets_the_echoed_token_out(
    all_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    async def no_wait(_: float) -> None:
        return None

    errors: list[NorthflankError] = []
    async with serve_asgi(echoing_api()) as url:
        client = NorthflankClient(
            base_url=url,
            token=SecretStr(TOKEN),
            clock=FixedClock(NOW),
            sleep=no_wait,
            rng=random.Random(3),
            max_retries=5,
        )
        async with client:
            calls: list[Callable[[], Awaitable[object]]] = [
                client.list_projects,  # 401
                lambda: client.list_backups("p1", "a1"),  # 500, retried
                lambda: client.list_backup_schedules("p1", "a1"),  # 429, retried
                lambda: client.list_addon_restores("p1", "a1"),  # 403
                client.list_backup_destinations,  # 403
            ] * 3  # every status in every letter case
            for call in calls:
                with pytest.raises(NorthflankError) as caught:
                    await call()
                errors.append(caught.value)
            assert_no_token(repr(client), "the client's repr")

    assert {e.reason for e in errors} == {"auth", "server_error", "rate_limited", "permission"}
    for error in errors:
        for link in exception_chain(error):
            for text in (str(link), repr(link), repr(vars(link))):
                assert_no_token(text, f"{type(link).__name__}")
        assert getattr(error, "error_id", None) is None
    assert any("[redacted]" in str(e) for e in errors)
    for record in caplog.records:
        assert_no_token(record.getMessage(), record.name)
        assert_no_token(repr(record.__dict__), record.name)
    assert_no_token(caplog.text, "caplog")
    assert_no_token(all_logs.getvalue(), "the formatted log")
    assert "level=debug logger=exporter.northflank.client" in all_logs.getvalue(), "debug is swept too"


async def test_the_exporter_never_shows_the_echoed_token(
    all_logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        serve_asgi(echoing_api(projects_fail_once=True)) as url,
        running_exporter(api_url=url, token=TOKEN, clock=FixedClock(NOW)) as exporter,
    ):
        await exporter.scheduler.refresh()  # 401 on the projects: the pass ends there
        pages = [await exporter.scrape_text(), (await exporter.http.get(f"{exporter.url}/")).text]
        # A pass past discovery: every listing but the projects and the addons echoes (500s are retried).
        await exporter.scheduler.refresh(deadline=60)
        pages += [await exporter.scrape_text(), (await exporter.http.get(f"{exporter.url}/")).text]
        samples = await exporter.scrape()

    errors = "northflank_exporter_refresh_errors_total"
    assert value(samples, errors, resource="projects", reason="auth") == 1
    assert value(samples, errors, resource="backups", reason="server_error") == 1
    assert value(samples, errors, resource="schedules", reason="rate_limited") == 1
    assert value(samples, errors, resource="restores", reason="permission") == 1
    assert value(samples, errors, resource="backup_destinations", reason="permission") == 1
    for page in pages:
        assert_no_token(page, "a page the exporter serves")
    for record in caplog.records:
        assert_no_token(record.getMessage(), record.name)
        assert_no_token(repr(record.__dict__), record.name)
    assert_no_token(caplog.text, "caplog")
    assert_no_token(all_logs.getvalue(), "the formatted log")

"""/metrics content negotiation over a real socket: gzip only when Accept-Encoding accepts it (tokens,
q-values, ``*``, any letter case), ``Vary: Accept-Encoding`` always, and the text format 0.0.4 whatever
Accept asks for."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.clock import FixedClock
from exporter.web.server import wants_gzip
from tests.support import RunningExporter, running_exporter

TOKEN = "nf-encoding-token"


@pytest.fixture
async def exporter() -> AsyncIterator[RunningExporter]:
    # Nothing is read from the API: the empty snapshot's exposition is all these tests need.
    async with running_exporter(
        api_url="http://127.0.0.1:9", token=TOKEN, clock=FixedClock(1_795_000_000.0)
    ) as running:
        yield running


async def _get(exporter: RunningExporter, headers: dict[str, str]) -> tuple[httpx.Headers, bytes]:
    """The response's headers and its body exactly as sent (httpx would otherwise gunzip it)."""
    request = exporter.http.build_request("GET", f"{exporter.url}/metrics")
    for name in ("accept-encoding", "accept"):
        request.headers.pop(name, None)
    request.headers.update(headers)
    response = await exporter.http.send(request, stream=True)
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    assert response.status_code == 200
    return response.headers, raw


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;Q=0.001", True),
        ("identity", False),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("*;q=0, gzip", True),
        ("br, deflate", False),
        ("notgzip, gzipped", False),
        ("identity;q=1, gzip;q=0.5", False),
        ("gzip;q=0.8, identity;q=0.5", True),
        ("gzip;q=nan", False),
        ("gzip, deflate, br, zstd", True),
    ],
)
async def test_gzip_only_when_accept_encoding_accepts_it(
    exporter: RunningExporter, accept_encoding: str | None, gzipped: bool
) -> None:
    headers = {} if accept_encoding is None else {"Accept-Encoding": accept_encoding}
    response_headers, raw = await _get(exporter, headers)
    assert response_headers["vary"] == "Accept-Encoding"
    if gzipped:
        assert response_headers["content-encoding"] == "gzip"
        body = gzip.decompress(raw)
    else:
        assert "content-encoding" not in response_headers
        body = raw
    assert b"# TYPE northflank_up gauge\n" in body


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        "application/openmetrics-text; version=0.0.1",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
        "*/*",
    ],
)
async def test_the_text_format_whatever_accept_says(exporter: RunningExporter, accept: str) -> None:
    headers, body = await _get(exporter, {"Accept": accept})
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# EOF" not in body  # no OpenMetrics


def test_unparsable_elements_are_ignored_not_fatal() -> None:
    assert wants_gzip(";;, gzip;q=abc, ,gzip;q=0.5") is True
    assert wants_gzip("gzip;q=2") is False
    assert wants_gzip("gzip;q=1.0001") is False


async def test_an_instrument_that_cannot_be_written_is_left_out_and_counted(
    exporter: RunningExporter,
) -> None:
    class Broken:
        def collect(self) -> object:
            raise ValueError("a collector bug")

    exporter.exporter.registry.register(Broken())  # type: ignore[arg-type]
    response = await exporter.http.get(f"{exporter.url}/metrics")
    assert response.status_code == 200
    assert "\nnorthflank_up " in response.text
    assert 'northflank_exporter_render_errors_total{family="instruments"} 1' in response.text
    # The API request counters live in that registry: with it left out, they are absent, not the page.
    assert "northflank_api_requests_total" not in response.text

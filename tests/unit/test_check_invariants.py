"""``--check`` without a token outside demo mode is a failed check, under ``python -O`` too."""

from __future__ import annotations

import asyncio
import io

import httpx

from exporter.check import check_config
from exporter.clock import FixedClock
from exporter.config import Settings


def test_a_check_without_a_token_fails_and_sends_nothing() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": {"projects": []}})

    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        check_config(
            Settings(), clock=FixedClock(1.7e9), transport=httpx.MockTransport(handler), out=out, err=err
        )
    )
    assert code == 1
    assert "no API token" in err.getvalue()
    assert out.getvalue() == ""
    assert sent == []

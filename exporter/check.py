"""``--config.check``: what a user runs before deploying: are the flags, the token and the API all right?"""

from __future__ import annotations

import sys
from typing import TextIO

import httpx

from exporter.apitoken import ApiToken
from exporter.clock import Clock
from exporter.config import Settings
from exporter.northflank.client import NorthflankClient
from exporter.northflank.errors import NorthflankError


async def check_config(
    settings: Settings,
    *,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
    out: TextIO = sys.stdout,
    err: TextIO | None = None,
) -> int:
    """One request (the project listing) with the configured token: 0 if it works, 1 if not. The
    verdict goes to ``out`` when the check passed, to ``err`` when it failed (where a script's
    ``2>`` and a terminal's error colouring expect a failure)."""
    err = err or sys.stderr  # looked up now: whatever sys.stderr is when the check runs
    if settings.demo:
        print("configuration OK (demo mode: no Northflank API is used)", file=out)
        return 0
    token: ApiToken | None = settings.token
    if token is None:
        # load_settings refuses this outside demo mode; Settings built another way may not.
        print("configuration check failed: no API token is configured", file=err)
        return 1
    async with NorthflankClient(
        base_url=settings.api_url,
        token=token,
        transport=transport,
        clock=clock,
        timeout=settings.request_timeout,
        max_retries=0,
    ) as client:
        try:
            projects = await client.list_projects(team=settings.teams[0] if settings.teams else None)
        except NorthflankError as error:
            print(f"configuration check failed: {error} ({error.reason})", file=err)
            return 1
        limit = client.rate_limit
    budget = f"; rate limit: {limit.remaining} of {limit.limit} requests left" if limit else ""
    found = f"{len(projects)} project(s) visible"
    print(f"configuration OK: {settings.api_url} accepted the token; {found}{budget}", file=out)
    return 0

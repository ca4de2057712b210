"""SIGHUP over a real socket: the rewritten --webhook.secret-file is in force for the next delivery (the
old secret gets 401), and a file that went bad keeps the secret in use."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import httpx
import pytest

from exporter.web.webhook import WebhookSecret
from tests.support import simulated_exporter

TOKEN = "nf-webhook-reload-token"
OLD = "whsec-old-Hk2-not-in-any-output"
NEW = "whsec-new-Wp9-not-in-any-output"
BODY = b'{"event": "addon-backup:success", "data": {"addonId": "no-such-addon"}}'


def _replace(path: Path, data: bytes) -> None:
    """As Docker, Vault agents and editors do: a new file renamed over the old one."""
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_bytes(data)
    os.replace(scratch, path)


async def test_sighup_makes_the_new_secret_the_only_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "webhook-secret"
    path.write_text(OLD + "\n")
    loop = asyncio.get_running_loop()
    async with simulated_exporter(
        "e2e", token=TOKEN, webhook_secret=WebhookSecret.from_file(path)
    ) as simulated:
        running = simulated.exporter
        url = running.webhook_url
        reloads = asyncio.Event()

        def on_sighup() -> None:
            running.exporter.reload()
            reloads.set()

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        sent = 0

        async def post(secret: str) -> int:
            nonlocal sent
            sent += 1  # a new event id each time: a duplicate would be answered without a check
            headers = {
                "X-Northflank-Notification-Integration-Token": secret,
                "X-Northflank-Notification-Integration-Event-Id": f"evt-{sent}",
            }
            response: httpx.Response = await running.http.post(url, content=BODY, headers=headers)
            return response.status_code

        async def reload() -> None:
            reloads.clear()
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(reloads.wait(), 5)

        try:
            assert (await post(OLD), await post(NEW)) == (202, 401)
            _replace(path, (NEW + "\n").encode())
            # Until the reload, the file's change is not in force.
            assert (await post(OLD), await post(NEW)) == (202, 401)
            await reload()
            assert (await post(OLD), await post(NEW)) == (401, 202)

            # A file that went bad (empty, then gone): one error line each, the new secret still in force.
            for spoiled in (b"\n", None):
                caplog.clear()
                if spoiled is None:
                    path.unlink()
                else:
                    _replace(path, spoiled)
                await reload()
                errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
                assert len(errors) == 1, [r.getMessage() for r in errors]
                assert "--webhook.secret-file" in errors[0].getMessage()
                assert (await post(OLD), await post(NEW)) == (401, 202)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
        text = await running.scrape_text()
    for secret in (OLD, NEW):
        assert secret not in caplog.text
        assert secret not in text

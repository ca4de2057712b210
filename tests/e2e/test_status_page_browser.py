"""The status page in a real browser: Debian's chromium, headless, against an exporter reading the e2e
scenario from the simulator over 127.0.0.1.

The DOM chromium built (``--dump-dom``) must hold one row per addon with the state /api/v1/addons gives
it, the filters must work as plain links, the page's Content-Security-Policy must not block anything of
its own (chromium logs every violation), and screenshots at desktop and phone widths are saved in the
test's temporary directory.
"""

from __future__ import annotations

import asyncio
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.e2e.binaries import require_binary
from tests.support import simulated_exporter

pytestmark = pytest.mark.e2e

TOKEN = "nf-browser-token-93a1"
#: Each chromium run is bounded: a hung browser fails the test instead of hanging the suite.
BROWSER_SECONDS = 30.0


class Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], str] = {}
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("class") == "row":
            self.rows[(found["data-project"] or "", found["data-addon"] or "")] = found["data-state"] or ""
        if tag == "style":
            self.styles += 1


async def chromium(binary: str, profile: Path, url: str, *args: str) -> tuple[str, str]:
    """Run headless chromium on ``url``; its stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(BROWSER_SECONDS):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode(), err.decode(errors="replace")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_page_in_chromium(tmp_path: Path) -> None:
    binary = require_binary("chromium")
    async with simulated_exporter("e2e", token=TOKEN) as simulated:
        running = simulated.exporter
        await running.scheduler.refresh()
        document = (await running.http.get(f"{running.url}/api/v1/addons")).json()
        expected = {(a["project"]["id"], a["addon"]["id"]): a["state"] for a in document["addons"]}
        assert len(expected) == len(simulated.simulator.fleet.addons)

        dom, log = await chromium(binary, tmp_path / "profile", f"{running.url}/", "--dump-dom")
        page = Rows()
        page.feed(dom)
        assert page.rows == expected
        assert page.styles == 1
        assert "Content Security Policy" not in log, log[-2000:]
        assert "e2e-failing" in dom
        assert "not OK" in dom

        # A filter is a link: the browser's own request, no script.
        dom, _ = await chromium(
            binary, tmp_path / "profile", f"{running.url}/?state=problems&sort=project", "--dump-dom"
        )
        filtered = Rows()
        filtered.feed(dom)
        problems = {k: v for k, v in expected.items() if not document_ok(document, k)}
        assert filtered.rows == problems
        assert problems, "the e2e scenario has addons that are not OK"

        shots = tmp_path / "screenshots"
        shots.mkdir()
        for name, size in (("desktop", (1280, 900)), ("phone", (390, 844))):
            target = shots / f"status-page-{name}.png"
            await chromium(
                binary,
                tmp_path / "profile",
                f"{running.url}/",
                f"--screenshot={target}",
                f"--window-size={size[0]},{size[1]}",
            )
            assert png_size(target)[0] == size[0]
            assert target.stat().st_size > 10_000  # a rendered page, not a blank one


def document_ok(document: dict[str, object], key: tuple[str, str]) -> bool:
    addons = document["addons"]
    assert isinstance(addons, list)
    return next(bool(a["ok"]) for a in addons if (a["project"]["id"], a["addon"]["id"]) == key)

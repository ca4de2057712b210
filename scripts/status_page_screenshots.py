"""Regenerate docs/img/status-page.png and docs/img/status-page-phone.png: the status page of the demo
fleet (simulated, at a fixed time) in headless chromium at desktop and phone widths.

    .venv/bin/python scripts/status_page_screenshots.py
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.test_status_page_browser import chromium  # noqa: E402
from tests.support import simulated_exporter  # noqa: E402

SHOTS = {"status-page.png": (1280, 1000), "status-page-phone.png": (390, 1400)}


async def main() -> None:
    binary = shutil.which("chromium")
    if binary is None:
        sys.exit("chromium is not installed")
    target = ROOT / "docs" / "img"
    target.mkdir(parents=True, exist_ok=True)
    async with simulated_exporter("demo", token="screenshots") as simulated:  # noqa: S106 (the simulator's)
        running = simulated.exporter
        await running.scheduler.refresh()
        with tempfile.TemporaryDirectory() as profile:
            for name, (width, height) in SHOTS.items():
                await chromium(
                    binary,
                    Path(profile),
                    f"{running.url}/",
                    f"--screenshot={target / name}",
                    f"--window-size={width},{height}",
                )
                print(target / name)


if __name__ == "__main__":
    asyncio.run(main())

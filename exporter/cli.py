"""Entry point: ``northflank-backup-exporter`` and ``python -m exporter``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.check import check_config
from exporter.clock import SystemClock
from exporter.config import ConfigError, Settings, load_settings
from exporter.logs import configure_logging

log = logging.getLogger("exporter")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except ConfigError as error:
        print(f"northflank-backup-exporter: error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        log.warning("%s", warning)
    if settings.config_check:
        return asyncio.run(check_config(settings, clock=SystemClock()))
    try:
        return asyncio.run(_run(settings))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


async def _run(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("starting northflank-backup-exporter %s", __version__)
    if settings.demo:
        from exporter.demo import demo_exporter

        exporter = demo_exporter(settings, clock=SystemClock())
    else:
        from exporter.app import Exporter

        exporter = Exporter(settings, clock=SystemClock())
    try:
        await exporter.run(stop)
    except OSError as error:
        log.error("%s", error)
        return 1
    log.info("stopped")
    return 0

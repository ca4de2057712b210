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
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["check"]:
        # A subcommand, not a flag: the exporter's flags follow it and mean the same.
        from exporter.status_check import main as check_main

        return check_main(args[1:])
    try:
        settings = load_settings(argv, os.environ)
    except ConfigError as error:
        print(f"northflank-backup-exporter: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug; still one line, with no token in it (the name only)
        print(
            f"northflank-backup-exporter: error: cannot load the configuration ({type(error).__name__})",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        log.warning("%s", warning)
    if settings.config_check:
        return _check(settings)
    try:
        return asyncio.run(_run(settings))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130


def _check(settings: Settings) -> int:
    """--config.check: whatever goes wrong is one line on stderr and exit 1, never a traceback."""
    try:
        return asyncio.run(check_config(settings, clock=SystemClock()))
    except Exception as error:  # the check reports, it does not crash
        detail = " ".join(str(error).split())
        secret = settings.token.get_secret_value() if settings.token is not None else ""
        if secret and secret.lower() in detail.lower():
            detail = ""  # never echo the token, in whatever case an error quoted it
        else:
            log.debug("the configuration check failed", exc_info=True)
        detail = detail[:200]
        print(
            f"northflank-backup-exporter: error: configuration check failed: {type(error).__name__}"
            + (f": {detail}" if detail else ""),
            file=sys.stderr,
        )
        return 1


async def _run(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Until the exporter exists, a SIGHUP has nothing to reload; it must not end the process either.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    log.info("starting northflank-backup-exporter %s", __version__)
    if settings.demo:
        from exporter.demo import demo_exporter

        exporter = demo_exporter(settings, clock=SystemClock())
    else:
        from exporter.app import Exporter

        exporter = Exporter(settings, clock=SystemClock())
    # SIGHUP: read the token file and the web config again, as Prometheus and its exporters do.
    loop.add_signal_handler(signal.SIGHUP, exporter.reload)
    try:
        await exporter.run(stop)
    except OSError as error:
        log.error("%s", error)
        return 1
    log.info("stopped")
    return 0

"""``northflank-backup-exporter check``: read the account once and say whether every backup is OK.

For people without Prometheus (cron, CI): one pass (the projects, each project's addons, then each addon's
backups and schedules), through the same client, request budget and refresher as the exporter, then
the status page's table in the terminal (colours only on a terminal) or its JSON (``--output json``,
the schema of ``/api/v1/addons`` with a ``result``). Exit status: 0 every addon OK, 1 something is not
OK, 2 it could not tell (the API unreachable, the token refused, a listing that failed, a timeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import httpx
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.budget import RequestBudget
from exporter.clock import Clock, SystemClock
from exporter.config import ConfigError, Settings, load_settings
from exporter.health import Health
from exporter.logs import configure_logging
from exporter.northflank.client import NorthflankClient
from exporter.poller import Refresher
from exporter.resources import Resource
from exporter.snapshot import SnapshotStore
from exporter.web.status_json import view_json
from exporter.web.status_rows import AddonRow
from exporter.web.status_view import ExporterStatus, StatusView, build_view
from exporter.web.status_words import ago, clean

log = logging.getLogger(__name__)

EXIT_OK, EXIT_NOT_OK, EXIT_UNKNOWN = 0, 1, 2
#: The whole pass gives up after this long (exit 2): the budget may hold requests for up to an hour,
#: and a cron job must end.
CHECK_TIMEOUT_SECONDS = 600.0
#: The listings one pass reads per addon: what the health of an addon needs, nothing else.
CHECK_RESOURCES = (Resource.BACKUPS, Resource.SCHEDULES)

USAGE = """usage: northflank-backup-exporter check [--output text|json] [exporter flags...]

Read the Northflank account once (within the request budget) and print the health of every addon's
backups. Exit status: 0 every addon OK, 1 some addon not OK, 2 could not tell. The exporter's flags
(--northflank.token-file, --northflank.team, --backup.schedule-grace, --demo...) apply.
"""


class CheckResult:
    """What one pass found: the view of every addon, and why it could not tell, if it could not."""

    def __init__(self, view: StatusView | None, errors: list[str]) -> None:
        self.view = view
        self.errors = errors

    @property
    def exit_code(self) -> int:
        if self.view is None:
            return EXIT_UNKNOWN
        states = [r.state for r in self.view.rows]
        if any(s.is_problem for s in states):
            return EXIT_NOT_OK
        if self.errors or any(s is Health.NOT_READ_YET for s in states):
            return EXIT_UNKNOWN
        return EXIT_OK

    @property
    def result(self) -> str:
        return {EXIT_OK: "ok", EXIT_NOT_OK: "not_ok"}.get(self.exit_code, "unknown")


async def read_once(
    settings: Settings,
    *,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
    api_url: str | None = None,
) -> CheckResult:
    """One pass over the account, within the request budget; never raises for an API failure."""
    token = settings.token
    if token is None:
        return CheckResult(None, ["no API token is configured"])
    store = SnapshotStore()
    budget = RequestBudget(clock=clock, budget=settings.request_budget, reserve=settings.rate_limit_reserve)
    errors: list[str] = []
    async with NorthflankClient(
        base_url=api_url or settings.api_url,
        token=token,
        transport=transport,
        clock=clock,
        gate=budget,
        timeout=settings.request_timeout,
    ) as client:
        refresher = Refresher(
            client,
            store,
            clock=clock,
            registry=CollectorRegistry(auto_describe=False),
            teams=settings.teams,
            concurrency=settings.concurrency,
            on_rate_limited=budget.rate_limited,
        )
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                discovery = await refresher.refresh_projects()
                if not discovery.ok:
                    error = discovery.error
                    reason = f"{error} ({error.reason})" if error is not None else "unknown error"
                    return CheckResult(None, [f"cannot list the projects: {reason}"])
                projects = list(store.current.projects)
                outcomes = await asyncio.gather(*(refresher.refresh_project_addons(p) for p in projects))
                errors += [
                    f"cannot list the addons of project {clean(p)}"
                    for p, o in zip(projects, outcomes, strict=True)
                    if not o.ok
                ]
                keys = [(key, r) for key in store.current.addons for r in CHECK_RESOURCES]
                outcomes = await asyncio.gather(*(refresher.refresh_addon(key, r) for key, r in keys))
                errors += [
                    f"cannot read the {r} of addon {clean(key[0])}/{clean(key[1])}"
                    for (key, r), o in zip(keys, outcomes, strict=True)
                    if not o.ok
                ]
        except TimeoutError:
            errors.append(f"the pass did not finish within {CHECK_TIMEOUT_SECONDS:.0f} s (request budget)")
    now = clock.now()
    status = ExporterStatus(
        api_up=store.current.api_up,
        requests_last_hour=budget.spent(now),
        request_budget=budget.limit,
        demo=settings.demo,
        version=__version__,
    )
    view = build_view(store.current, now=now, grace=settings.schedule_grace, exporter=status)
    return CheckResult(view, errors)


# --- output ------------------------------------------------------------------------------------------

_COLOURS = {
    Health.OK: "32",
    Health.IN_PROGRESS: "34",
    Health.NOT_READ_YET: "90",
    Health.NO_SCHEDULE: "33",
    Health.STUCK: "33",
    Health.LAST_ATTEMPT_FAILED: "33",
    Health.SCHEDULED_RUN_MISSED: "33",
}


def _cells(row: AddonRow, now: float) -> list[str]:
    missed = [s.missed_runs for s in row.schedules if s.missed_runs]
    return [
        row.state.label,
        row.project_name,
        row.addon_name,
        row.addon_type,
        ago(row.last_completed_at, now) if row.last_completed_at is not None else "none",
        str(row.consecutive_failures) if row.consecutive_failures is not None else "—",
        "; ".join(s.description for s in row.schedules)
        or ("none" if row.schedules_read_at is not None else "not read"),
        f"{sum(missed)} in 24 h" if missed else "no",
    ]


_HEADER = ["STATE", "PROJECT", "ADDON", "TYPE", "LAST BACKUP", "FAILURES", "SCHEDULE", "MISSED"]
_MAX_WIDTH = 40


def render_text(result: CheckResult, *, colour: bool) -> str:
    lines: list[str] = []
    view = result.view
    if view is not None:
        rows = [
            [c if len(c) <= _MAX_WIDTH else c[: _MAX_WIDTH - 1] + "…" for c in _cells(r, view.now)]
            for r in view.rows
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADER)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(_HEADER, widths, strict=True)).rstrip())
        for row, cells in zip(view.rows, rows, strict=True):
            text = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            if colour:
                code = _COLOURS.get(row.state, "31")
                state = cells[0].ljust(widths[0])
                text = f"\x1b[{code}m{state}\x1b[0m" + text[len(state) :]
            lines.append(text)
        bad = sum(n for h, n in view.counts.items() if h.is_problem)
        by_state = ", ".join(f"{n} {h.label}" for h, n in view.counts.items() if n and h.is_problem)
        summary = f"{bad} of {view.total} addon(s) not OK" + (f" ({by_state})" if by_state else "")
        lines.append("")
        lines.append(summary + (" [demo: simulated data]" if view.exporter.demo else ""))
    for error in result.errors:
        lines.append(f"could not tell: {error}")
    return "\n".join(lines) + "\n"


def render_json(result: CheckResult) -> str:
    document = view_json(result.view) if result.view is not None else {"version": 1, "addons": []}
    document["result"] = result.result
    document["errors"] = result.errors
    return json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2) + "\n"


def _split_output(argv: Sequence[str]) -> tuple[str | None, list[str], str | None]:
    """``--output`` (its value, or an error) and the exporter's own flags."""
    output: str | None = "text"
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--output":
            if i + 1 >= len(args):
                return None, rest, "--output needs a value: text or json"
            output, i = args[i + 1], i + 2
            continue
        if arg.startswith("--output="):
            output = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    if output not in ("text", "json"):
        return None, rest, f"--output must be text or json, not {clean(str(output))!r}"
    return output, rest, None


def main(argv: Sequence[str], *, out: TextIO | None = None, clock: Clock | None = None) -> int:
    out = out or sys.stdout
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE, end="", file=out)
        return EXIT_OK
    output, rest, problem = _split_output(argv)
    if problem is not None or output is None:
        print(f"northflank-backup-exporter check: error: {problem}", file=sys.stderr)
        return EXIT_UNKNOWN
    try:
        settings = load_settings(rest, os.environ)
    except ConfigError as error:
        print(f"northflank-backup-exporter check: error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN
    configure_logging(settings.log_level, settings.log_format)
    clock = clock or SystemClock()
    transport: httpx.AsyncBaseTransport | None = None
    api_url: str | None = None
    if settings.demo:
        from pydantic import SecretStr

        from exporter.demo import DEMO_API_URL
        from exporter.simulator.app import DEFAULT_TOKEN, Simulator

        simulator = Simulator.from_scenario("demo", clock=clock)
        transport, api_url = simulator.transport(), DEMO_API_URL
        settings = dataclasses.replace(settings, token=SecretStr(DEFAULT_TOKEN))
    try:
        result = asyncio.run(read_once(settings, clock=clock, transport=transport, api_url=api_url))
    except Exception as error:  # a bug: one line, exit 2, never a traceback with a token in it
        log.debug("the check failed", exc_info=True)
        result = CheckResult(None, [f"the check failed ({type(error).__name__})"])
    if output == "json":
        out.write(render_json(result))
    else:
        out.write(render_text(result, colour=out.isatty() and os.environ.get("NO_COLOR") is None))
    return result.exit_code


__all__ = ["CHECK_TIMEOUT_SECONDS", "CheckResult", "main", "read_once", "render_json", "render_text"]

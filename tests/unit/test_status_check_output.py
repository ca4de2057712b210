"""The terminal output of ``check``: colours only when asked, and no control sequence from the data."""

from __future__ import annotations

import json
from dataclasses import replace

from exporter.status_check import EXIT_NOT_OK, EXIT_OK, EXIT_UNKNOWN, CheckResult, render_json, render_text
from exporter.web.status_view import ExporterStatus, build_view
from tests.hostile_inputs import worst_case_snapshot
from tests.support import MONDAY_NOON

NOW = MONDAY_NOON


def _result(errors: list[str] | None = None) -> CheckResult:
    snapshot = worst_case_snapshot(now=NOW)
    view = build_view(snapshot, now=NOW, grace=7200.0, exporter=ExporterStatus(version="t"))
    return CheckResult(view, errors or [])


def test_colours_only_when_asked_and_none_from_the_data() -> None:
    result = _result()
    plain = render_text(result, colour=False)
    coloured = render_text(result, colour=True)
    assert "\x1b" not in plain  # the hostile names hold control characters: replaced, never written
    assert coloured.count("\x1b[") == 2 * len(result.view.rows)  # type: ignore[union-attr]
    assert all(len(line) < 400 for line in plain.splitlines())  # 10 KB names are cut in the table


def test_exit_codes_and_json() -> None:
    result = _result()
    assert result.exit_code == EXIT_NOT_OK  # the worst case has no completed backup and no schedule
    assert CheckResult(result.view, ["cannot read the backups of addon p/a"]).exit_code == EXIT_NOT_OK
    assert result.view is not None
    ok_only = replace(result.view, rows=tuple(r for r in result.view.rows if r.state.is_ok))
    assert CheckResult(ok_only, []).exit_code == EXIT_OK
    assert CheckResult(ok_only, ["cannot read the backups of addon p/a"]).exit_code == EXIT_UNKNOWN
    unknown = CheckResult(None, ["cannot list the projects: refused (auth)"])
    assert unknown.exit_code == EXIT_UNKNOWN
    document = json.loads(render_json(unknown))
    assert document == {"version": 1, "addons": [], "result": "unknown", "errors": unknown.errors}
    full = json.loads(render_json(result))
    assert full["version"] == 1
    assert full["result"] in ("ok", "not_ok")

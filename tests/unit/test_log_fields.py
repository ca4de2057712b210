"""Log fields (issue 10, section 4): context passed as ``extra`` becomes logfmt fields and JSON keys; every
value, however hostile, stays on its one line and reads back as it was; uvicorn logs as ``http``."""

from __future__ import annotations

import json
import logging
import re

from hypothesis import given
from hypothesis import strategies as st

from exporter.logs import JsonFormatter, LogfmtFormatter
from tests.hostile_inputs import NASTY, hostile_text

_PAIR = re.compile(r'([a-z_][a-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict logfmt reader: quoted values are JSON strings (as go-logfmt reads them); the pairs
    must cover the whole line."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(line):
        match = _PAIR.match(line, position)
        assert match is not None, f"not logfmt at {position}: {line!r}"
        key, raw = match.groups()
        assert key not in fields, key
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
        position = match.end()
    return fields


def record(name: str = "exporter.poller", msg: str = "refresh failed", **extra: object) -> logging.LogRecord:
    logger = logging.getLogger(name)
    return logger.makeRecord(name, logging.WARNING, __file__, 1, msg, (), None, extra=extra)


def test_extra_context_becomes_fields_after_the_message() -> None:
    rec = record(resource="backups", project="p1", addon="a1", reason="auth", attempt=2, ratio=0.5)
    fields = parse_logfmt(LogfmtFormatter().format(rec))
    assert list(fields)[:4] == ["ts", "level", "logger", "msg"]
    assert fields | {"ts": ""} == {
        "ts": "",
        "level": "warn",
        "logger": "exporter.poller",
        "msg": "refresh failed",
        "resource": "backups",
        "project": "p1",
        "addon": "a1",
        "reason": "auth",
        "attempt": "2",
        "ratio": "0.5",
    }
    keys = json.loads(JsonFormatter().format(rec))
    assert {k: keys[k] for k in ("resource", "project", "addon", "reason", "attempt", "ratio")} == {
        "resource": "backups",
        "project": "p1",
        "addon": "a1",
        "reason": "auth",
        "attempt": 2,
        "ratio": 0.5,
    }


def test_a_field_cannot_replace_the_standard_ones_and_odd_names_are_left_out() -> None:
    rec = record(level_x="x", Bad="x", other=None)
    rec.__dict__["we ird"] = "x"
    fields = parse_logfmt(LogfmtFormatter().format(rec))
    assert fields["level"] == "warn"
    assert "Bad" not in fields
    assert "other" not in fields
    assert "level_x" in fields


def test_uvicorns_loggers_are_named_http() -> None:
    for name, shown in (("uvicorn.error", "http"), ("uvicorn", "http"), ("uvicorn.access", "http.access")):
        line = LogfmtFormatter().format(record(name, color_message="\x1b[36mcoloured\x1b[0m"))
        assert parse_logfmt(line)["logger"] == shown
        assert "color_message" not in line
        assert json.loads(JsonFormatter().format(record(name)))["logger"] == shown


def test_the_worst_string_of_the_metrics_tests_stays_on_one_line() -> None:
    for formatter in (LogfmtFormatter(), JsonFormatter()):
        line = formatter.format(record(msg=NASTY, addon=NASTY))
        assert len(line.splitlines()) == 1, line
        line.encode("utf-8")


@given(key=st.sampled_from(["addon", "project", "msg"]), value=hostile_text)
def test_any_value_is_one_logfmt_line_that_reads_back(key: str, value: str) -> None:
    rec = record(msg=value) if key == "msg" else record(**{key: value})
    line = LogfmtFormatter().format(rec)
    assert len(line.splitlines()) == 1
    line.encode("utf-8")  # writable to a UTF-8 stderr, lone surrogates included
    assert parse_logfmt(line)[key] == value


@given(value=hostile_text)
def test_any_value_is_one_json_line_that_reads_back(value: str) -> None:
    line = JsonFormatter().format(record(msg=value, addon=value))
    assert len(line.splitlines()) == 1
    line.encode("utf-8")
    parsed = json.loads(line)
    assert parsed["msg"] == value
    assert parsed["addon"] == value

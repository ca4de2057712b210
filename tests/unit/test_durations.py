"""One duration parser, each caller's syntax: flags as Prometheus reads them, the web config as Go."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.durations import FLAG_SYNTAX, GO_SYNTAX, parse_duration


@pytest.mark.parametrize(
    ("text", "flag", "go"),
    [
        ("30s", 30.0, 30.0),
        ("1h30m", 5400.0, 5400.0),
        ("500ms", 0.5, 0.5),
        (" 5m ", 300.0, 300.0),
        ("0", 0.0, 0.0),
        ("2d", 172800.0, None),  # days and weeks: Prometheus only
        ("1w", 604800.0, None),
        ("250us", None, 0.00025),  # below a millisecond: Go only
        ("10ns", None, 1e-8),
        ("-1s", None, -1.0),  # a sign: Go only (the web config then treats <= 0 as off)
        ("+0", None, 0.0),
        ("1.s", None, 1.0),  # a bare point: Go only
        (".5s", None, 0.5),
        ("1.5h", 5400.0, 5400.0),
        ("", None, None),
        ("5", None, None),
        ("5 m", None, None),
        ("5y", None, None),
        ("1h-30m", None, None),
    ],
)
def test_each_syntax_accepts_what_it_always_did(text: str, flag: float | None, go: float | None) -> None:
    for syntax, expected in ((FLAG_SYNTAX, flag), (GO_SYNTAX, go)):
        if expected is None:
            with pytest.raises(ValueError, match="duration"):
                parse_duration(text, syntax)
        else:
            assert parse_duration(text, syntax) == pytest.approx(expected)


def test_only_the_web_config_reads_an_integer_as_nanoseconds() -> None:
    assert parse_duration(1_500_000_000, GO_SYNTAX) == 1.5
    for value in (True, 1.0, None):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value, GO_SYNTAX)
    with pytest.raises(ValueError, match="duration"):
        parse_duration(30, FLAG_SYNTAX)


@given(st.text(max_size=12))
def test_anything_either_parses_or_is_a_value_error(text: str) -> None:
    for syntax in (FLAG_SYNTAX, GO_SYNTAX):
        message = ""
        try:
            seconds = parse_duration(text, syntax)
        except ValueError as error:
            message = str(error)
            seconds = 0.0
        assert message == "" or "duration" in message
        assert seconds == seconds  # never NaN

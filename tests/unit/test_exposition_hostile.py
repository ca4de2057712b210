"""The hand-written text format stays valid whatever the API sent: values as Go parses them, label values
always UTF-8, and what cannot be written left out and counted instead of failing the page."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import utils as prometheus_utils
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import SnapshotRenderer
from exporter.exposition import RenderError, escape_label_value, format_value, label_set
from exporter.snapshot import AddonSnapshot, BackupSummary, Fetched, Snapshot
from tests.hostile_inputs import HUGE_INT, NASTY, worst_case_snapshot
from tests.support import parse_samples, value

NOW = 1_795_900_000.0  # 2026-11-28, after every time in the worst case

#: What Go's strconv.ParseFloat accepts, as the exposition spells it (no hex floats, no underscores).
_GO_FLOAT = re.compile(r"[+-]?(?:Inf|NaN|[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)")


def _go_parse(text: str) -> float:
    """Reads ``text`` as Prometheus does; fails where Go fails (out of range), where Python reads inf."""
    assert _GO_FLOAT.fullmatch(text), text
    parsed = float(text)
    if math.isinf(parsed):
        assert text in ("+Inf", "-Inf"), f"{text}: strconv.ParseFloat: value out of range"
    return parsed


def floatToGoString(number: float) -> str:  # noqa: N802  # prometheus_client's, typed
    text: str = prometheus_utils.floatToGoString(number)  # type: ignore[no-untyped-call]
    return text


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(
    "number",
    [
        2**53 + 1,
        -(2**53) - 1,
        2**53,
        10**20,
        1e308,
        -1e308,
        sys.float_info.max,
        5e-324,
        -5e-324,
        1e15,
        1e16,
        123456789.125,
        0.1,
        0,
        -0.0,
        True,
        float("nan"),
        float("inf"),
        float("-inf"),
    ],
)
def test_values_read_back_as_prometheus_client_writes_them(number: float) -> None:
    assert _same(_go_parse(format_value(number)), float(floatToGoString(number)))


@pytest.mark.parametrize(
    ("number", "expected"), [(HUGE_INT, "+Inf"), (-HUGE_INT, "-Inf"), (10**330 * 86400, "+Inf")]
)
def test_an_int_beyond_float64_is_infinite_not_out_of_range(number: int, expected: str) -> None:
    with pytest.raises(OverflowError):
        floatToGoString(number)  # where prometheus_client itself gives up
    assert format_value(number) == expected


def test_special_values_are_spelled_as_go_spells_them() -> None:
    assert [format_value(v) for v in (math.nan, math.inf, -math.inf)] == ["NaN", "+Inf", "-Inf"]


@given(st.one_of(st.integers(min_value=-(10**500), max_value=10**500), st.integers(), st.floats()))
def test_every_int_and_float_is_written_as_go_reads_it(number: float) -> None:
    try:
        expected = float(number)
    except OverflowError:
        expected = math.inf if number > 0 else -math.inf
    assert _same(_go_parse(format_value(number)), expected)


@pytest.mark.parametrize("not_a_number", [None, "1e308", b"1", object(), [1]])
def test_what_is_not_a_number_is_a_render_error(not_a_number: object) -> None:
    with pytest.raises(RenderError):
        format_value(not_a_number)  # type: ignore[arg-type]


_any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.characters(categories=["Cc"]))


@given(st.text(_any_char, max_size=50))
def test_every_label_value_encodes_as_utf8(text: str) -> None:
    escaped = escape_label_value(text)
    escaped.encode("utf-8")  # raised UnicodeEncodeError for a lone surrogate
    assert "\n" not in escaped
    expected = re.sub("[\ud800-\udfff]", "\ufffd", text)
    exposition = f'# TYPE m gauge\nm{{l="{escaped}"}} 1\n'
    [family] = text_string_to_metric_families(exposition)
    assert family.samples[0].labels == {"l": expected}


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    assert label_set(("a", "b"), ("x\udc80y", '"\\\n')) == 'a="x\ufffdy",b="\\"\\\\\\n"'


def _clean(text: str) -> str:
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def test_the_worst_case_renders_every_addon_and_destination() -> None:
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    body = renderer.render(worst_case_snapshot(now=NOW), NOW)
    samples = parse_samples(body.decode("utf-8", errors="strict"))  # raised UnicodeEncodeError before
    hostile = {"project": "project", "addon": "addon"}
    schedule = _clean(f"schedule-{NASTY}")
    retention = "northflank_addon_backup_schedule_retention_seconds"
    assert value(samples, retention, **hostile, schedule=schedule) == math.inf  # 10**330 days
    assert value(samples, "northflank_addon_backups_size_bytes", **hostile) == math.inf
    assert value(samples, "northflank_addon_backup_last_completed_size_bytes", **hostile) == math.inf
    assert len([k for k in samples if k[0] == "northflank_addon_info"]) == 2
    destination = "destination"
    assert value(samples, "northflank_backup_destination_size_bytes", destination=destination) == math.inf


def _addon(addon_id: str, **changes: object) -> AddonSnapshot:
    addon = AddonSnapshot(
        project_id="p", project_name="P", addon_id=addon_id, addon_name="n", addon_type="redis"
    )
    return dataclasses.replace(addon, **changes)  # type: ignore[arg-type]


def _errors(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], family: str) -> float | None:
    return value(samples, "northflank_exporter_render_errors_total", family=family)


def test_a_value_that_cannot_be_written_drops_its_series_only_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    summary = BackupSummary(counts={}, last_completed_at=NOW - 60, last_completed_size_bytes="12")  # type: ignore[arg-type]
    bad = _addon("bad", backups=Fetched(summary, NOW))
    snapshot = dataclasses.replace(Snapshot(), addons={("p", "bad"): bad, ("p", "good"): _addon("good")})
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    family = "northflank_addon_backup_last_completed_size_bytes"

    first = parse_samples(renderer.render(snapshot, NOW).decode())
    assert value(first, family, project="p", addon="bad") is None
    assert value(first, "northflank_addon_backup_last_completed_age_seconds", project="p", addon="bad") == 60
    assert (
        value(
            first,
            "northflank_addon_info",
            project="p",
            addon="good",
            addon_name="n",
            project_name="P",
            addon_type="redis",
        )
        == 1
    )
    assert _errors(first, family) == 1
    assert _errors(first, "northflank_addon_info") == 0  # every family present, from 0

    second = parse_samples(renderer.render(snapshot, NOW + 30).decode())
    assert _errors(second, family) == 2  # left out again at this scrape
    lines = [r for r in caplog.records if "could not be written" in r.getMessage()]
    assert len(lines) == 1
    assert family in lines[0].getMessage()
    assert "'12'" not in lines[0].getMessage()

    renderer.render(snapshot, NOW + 30 + 600)
    assert len([r for r in caplog.records if "could not be written" in r.getMessage()]) == 2


def test_an_addon_that_cannot_be_written_at_all_leaves_the_others() -> None:
    broken = _addon("x", addon_name=None)
    snapshot = dataclasses.replace(Snapshot(), addons={("p", "x"): broken, ("p", "good"): _addon("good")})
    renderer = SnapshotRenderer(schedule_grace_seconds=3600, version="test")
    samples = parse_samples(renderer.render(snapshot, NOW).decode())
    assert {dict(labels)["addon"] for name, labels in samples if name == "northflank_addon_info"} == {"good"}
    assert _errors(samples, "northflank_addon_info") == 1

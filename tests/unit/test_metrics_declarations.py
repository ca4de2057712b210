"""The one declaration table of metric families (exporter.metrics) and the registry rendering without
``_created`` samples (exporter.exposition.render_registry)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from exporter import metrics
from exporter.exposition import DuplicateMetricError, Family, render_registry, unique


def test_every_declared_family_is_unique_with_help_and_a_known_type() -> None:
    names = [family.name for family in metrics.FAMILIES]
    assert len(names) == len(set(names))
    for family in metrics.FAMILIES:
        assert family.help.strip(), family.name
        assert family.type in {"gauge", "counter", "histogram"}, family.name
        # Prometheus conventions: _total only on counters, the unit at the end of the name.
        assert family.name.endswith("_total") == (family.type == "counter"), family.name
        if family.unit:
            assert family.name.removesuffix("_total").endswith(f"_{family.unit}"), family.name


def test_a_name_declared_twice_fails() -> None:
    first = Family("northflank_example", "One.", ())
    again = Family("northflank_example", "The same name, other help.", ("addon",))
    with pytest.raises(DuplicateMetricError, match="northflank_example"):
        unique((first,), (again,))


@pytest.mark.parametrize(
    ("declared", "clashing"),
    [
        # A counter's samples are <base>_total; its family is <base> to prometheus_client.
        (Family("northflank_things_total", "Counter.", (), "counter"), Family("northflank_things", "G.", ())),
        (
            Family("northflank_wait_seconds", "Histogram.", (), "histogram"),
            Family("northflank_wait_seconds_count", "Gauge.", ()),
        ),
    ],
)
def test_a_name_clashing_with_another_familys_samples_fails(declared: Family, clashing: Family) -> None:
    with pytest.raises(DuplicateMetricError):
        unique((declared, clashing))


def test_joining_a_group_of_families_keeps_their_order() -> None:
    extra = (
        Family("northflank_exporter_example_one", "One.", ()),
        Family("northflank_example_two", "Two.", ()),
    )
    joined = unique(metrics.FAMILIES, extra)
    assert joined[-2:] == extra
    with pytest.raises(DuplicateMetricError):
        unique(metrics.FAMILIES, (metrics.UP,))


def test_registry_rendering_has_no_created_samples_and_every_family_once() -> None:
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("northflank_example_requests_total", "Requests.", ["code"], registry=registry)
    counter.labels("200").inc(3)
    Histogram("northflank_example_duration_seconds", "Durations.", registry=registry).observe(0.2)
    Gauge("northflank_example_level", "Level.", registry=registry).set(7)

    text = render_registry(registry).decode()

    assert "_created" not in text
    assert 'northflank_example_requests_total{code="200"} 3.0' in text
    assert "northflank_example_duration_seconds_count 1.0" in text
    assert "northflank_example_level 7.0" in text
    for name, kind in (
        ("northflank_example_requests_total", "counter"),
        ("northflank_example_duration_seconds", "histogram"),
        ("northflank_example_level", "gauge"),
    ):
        assert text.count(f"# TYPE {name} {kind}\n") == 1
        assert text.count(f"# HELP {name} ") == 1
    # Per call, not process-wide: prometheus_client's own rendering is unchanged.
    assert "northflank_example_requests_created" in generate_latest(registry).decode()

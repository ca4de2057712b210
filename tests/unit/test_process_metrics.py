"""process_* (issue 10, section 4): declared in exporter.metrics as prometheus_client's ProcessCollector
writes them, so that a library upgrade that renames or rewords one fails here, not on /metrics."""

from __future__ import annotations

import sys

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.exposition import render_registry
from exporter.metrics import PROCESS_FAMILIES


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ProcessCollector reads /proc")
def test_the_declared_process_families_are_what_the_collector_writes() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    text = render_registry(registry).decode()
    headers = [line.split(" ", 3) for line in text.splitlines() if line.startswith("# ")]
    helps = {name: rest for _, kind, name, rest in headers if kind == "HELP"}
    types = {name: rest for _, kind, name, rest in headers if kind == "TYPE"}
    assert helps == {family.name: family.help for family in PROCESS_FAMILIES}
    assert types == {family.name: family.type for family in PROCESS_FAMILIES}

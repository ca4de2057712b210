"""The saver's metrics (``--storage.path`` only): failed saves, and how old the state on disk is.

A save that fails leaves the previous file, so the exporter carries on serving good data while a restart
would bring back an ever older state: these two families make that visible before a restart does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.metrics import STATE_LAST_SAVE, STATE_SAVE_FAILURES
from exporter.state.saver import StateSaver


class StateSaverCollector(Collector):
    """``northflank_exporter_state_save_failures_total`` (0 until the first failure) and
    ``northflank_exporter_state_last_save_timestamp_seconds`` (absent until there is a state on disk)."""

    def __init__(self, saver: StateSaver) -> None:
        self._saver = saver

    def describe(self) -> Iterable[Metric]:
        # Nothing for the registry to check: exporter.metrics declares these families and checks them.
        return ()

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            STATE_SAVE_FAILURES.name, STATE_SAVE_FAILURES.help, value=self._saver.failures
        )
        last = GaugeMetricFamily(STATE_LAST_SAVE.name, STATE_LAST_SAVE.help)
        if self._saver.last_saved_at is not None:
            last.add_metric([], self._saver.last_saved_at)
        yield last


__all__ = ["StateSaverCollector"]

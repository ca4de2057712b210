"""The Prometheus text format (0.0.4), written directly: the snapshot collector's hot path.

prometheus_client's ``generate_latest`` validates and escapes every label of every sample on every
scrape (about 10 µs a sample); a fleet of 1000 addons has some 35 000 samples. Here label sets are
escaped once per addon and reused while the addon's data is unchanged, so a scrape costs little more
than joining strings.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RenderError(ValueError):
    """A label value or a sample value that cannot be written: its series is left out and counted."""


#: Lone UTF-16 surrogates: a legal JSON escape (``"\\udc80"``) that no UTF-8 encoder accepts.
_SURROGATES = re.compile("[\ud800-\udfff]")


def escape_label_value(value: str) -> str:
    """The value escaped for a label, and always valid UTF-8 once encoded: Prometheus rejects the whole
    scrape over one invalid label value, and Python cannot encode a lone surrogate at all."""
    if not isinstance(value, str):
        raise RenderError(f"a label value must be a string, not {type(value).__name__}")
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text if text.isascii() else _SURROGATES.sub("\ufffd", text)


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def label_set(names: Iterable[str], values: Iterable[str]) -> str:
    """``{a="1",b="2"}`` without the braces, values escaped; names are ours and need none."""
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


#: Every integer up to this magnitude is a float64 exactly, so its digits are what Prometheus stores.
_EXACT_INT = 2**53


def format_value(value: float) -> str:
    """The value as Prometheus' Go parser (``strconv.ParseFloat``) reads it, for every int and float.

    Go rejects a number beyond the float64 range (``value out of range``) where Python reads inf, and
    one such sample fails the whole scrape: an int too large for a float64 is written as ``+Inf`` or
    ``-Inf``, as a float64 is all Prometheus would store. Otherwise the same value as prometheus_client's
    ``floatToGoString``, spelled shorter for integers. Anything that is not a number raises RenderError.
    """
    if isinstance(value, int):  # bools too: 1 and 0
        if -_EXACT_INT <= value <= _EXACT_INT:
            return str(int(value))
        try:
            value = float(value)
        except OverflowError:
            return "+Inf" if value > 0 else "-Inf"
    elif not isinstance(value, float):
        value = _as_float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _as_float(value: object) -> float:
    if isinstance(value, str | bytes | bytearray):
        raise RenderError(f"a sample value must be a number, not {type(value).__name__}")
    try:
        return float(value)  # type: ignore[arg-type]  # Decimal, Fraction, numpy scalars...
    except (TypeError, ValueError, OverflowError):
        raise RenderError(f"a sample value must be a number, not {type(value).__name__}") from None


def sample(name: str, labels: str, value: float) -> str:
    if labels:
        return f"{name}{{{labels}}} {format_value(value)}\n"
    return f"{name} {format_value(value)}\n"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its name as exposed (``_info`` included), HELP, TYPE and label names."""

    name: str
    help: str
    labels: tuple[str, ...]
    type: str = "gauge"
    #: The base unit the name ends in (``seconds``, ``bytes``), for readers: format 0.0.4 has no UNIT line.
    unit: str = ""

    @property
    def header(self) -> str:
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.type}\n"


class DuplicateMetricError(ValueError):
    """Two families declare the same name, or one's samples would carry another's name."""


def sample_names(family: Family) -> tuple[str, ...]:
    """The names the family's samples (and its HELP/TYPE) can carry."""
    if family.type == "counter":
        base = family.name.removesuffix("_total")
        return (base, f"{base}_total")
    if family.type in ("histogram", "summary"):
        suffixes = ("_bucket", "_sum", "_count") if family.type == "histogram" else ("_sum", "_count")
        return (family.name, *(family.name + suffix for suffix in suffixes))
    return (family.name,)


def unique(*groups: Iterable[Family]) -> tuple[Family, ...]:
    """The families of every group, in order; raises DuplicateMetricError when two share a name."""
    families: list[Family] = []
    owner: dict[str, str] = {}
    for group in groups:
        for family in group:
            for name in sample_names(family):
                if name in owner:
                    raise DuplicateMetricError(
                        f"metric name {name} is declared twice (by {owner[name]} and by {family.name})"
                    )
                owner[name] = family.name
            families.append(family)
    return tuple(families)


class RenderErrors:
    """Counts what the renderer leaves out, by family, and says so in the log at most once an interval:
    a bad value is rendered (and left out) at every scrape, and a line per scrape would drown the log."""

    def __init__(self, family: Family, *, log_interval_seconds: float = 600.0) -> None:
        #: The counter's declaration (exporter.metrics.RENDER_ERRORS), passed in: metrics.py imports Family.
        self._family = family
        self._interval = log_interval_seconds
        self._totals: dict[str, int] = {}
        #: Left out since the last log line: family -> (count, the kind of error).
        self._unlogged: dict[str, tuple[int, str]] = {}
        self._logged_at: float | None = None

    def count(self, family: str, error: BaseException, n: int = 1) -> None:
        self._totals[family] = self._totals.get(family, 0) + n
        seen, _ = self._unlogged.get(family, (0, ""))
        # The class, never the message: a message may quote the value, and values are untrusted.
        self._unlogged[family] = (seen + n, type(error).__name__)

    def render(self, families: Iterable[str], now: float) -> str:
        """The counter, one series per family in ``families`` (0 when none) and per family counted; logs
        what was left out since the last line when the interval has passed (``now``: the scrape time)."""
        if self._unlogged and (self._logged_at is None or not 0 <= now - self._logged_at < self._interval):
            left_out = ", ".join(
                f"{family} ({n}, {kind})" for family, (n, kind) in sorted(self._unlogged.items())
            )
            log.warning(
                "series left out of /metrics as they could not be written, by family: %s; see "
                "northflank_exporter_render_errors_total (logged at most every %gs)",
                left_out,
                self._interval,
            )
            self._unlogged.clear()
            self._logged_at = now
        names = dict.fromkeys([*families, *sorted(self._totals)])
        body = "".join(
            sample(self._family.name, label_set(("family",), (name,)), self._totals.get(name, 0))
            for name in names
        )
        return self._family.header + body


class _WithoutCreated(Collector):
    """A registry's families minus the ``<name>_created`` samples prometheus_client adds to counters and
    histograms: they double the series for a time nobody queries. Per call, not process-wide (as
    ``disable_created_metrics()`` would be)."""

    def __init__(self, registry: Collector) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for metric in self._registry.collect():
            created = f"{metric.name}_created"
            if any(s.name == created for s in metric.samples):
                metric = _with_samples(metric, [s for s in metric.samples if s.name != created])
            yield metric


def _with_samples(metric: Metric, samples: list[Sample]) -> Metric:
    copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    copy.samples = samples
    return copy


def render_registry(registry: Collector) -> bytes:
    """The registry's families in format 0.0.4, without ``_created`` samples."""
    return generate_latest(_WithoutCreated(registry))

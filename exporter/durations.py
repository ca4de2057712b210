"""The one duration parser, for the two syntaxes the exporter reads.

Both are a run of ``<number><unit>`` parts summed (``1h30m``); they differ only where the programs whose
files and flags we mirror differ, so a value that works there works here and nothing more:

- :data:`FLAG_SYNTAX`, the command-line flags, is Prometheus' ``model.Duration`` (``--storage.tsdb.retention``
  and friends): units ``ms s m h d w``, no sign, a number with no bare point (``1.5h`` yes, ``1.h``/``.5h``
  no), ``0`` alone allowed, only text.
- :data:`GO_SYNTAX`, the web config file, is Go's ``time.Duration`` as the exporter-toolkit's YAML gives it:
  units ``ns us µs μs ms s m h`` (no days), an optional sign, ``1.`` and ``.5`` allowed, ``0``/``+0``/``-0``
  alone allowed, and a YAML integer counts nanoseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class DurationSyntax:
    part: re.Pattern[str]
    units: Mapping[str, float]
    signed: bool
    integer_nanoseconds: bool
    example: str


FLAG_SYNTAX: Final = DurationSyntax(
    part=re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)"),
    units=MappingProxyType({"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}),
    signed=False,
    integer_nanoseconds=False,
    example="30s, 5m, 1h30m",
)

GO_SYNTAX: Final = DurationSyntax(
    part=re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"),
    units=MappingProxyType(
        {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    ),
    signed=True,
    integer_nanoseconds=True,
    example="1s, 500ms, 1m30s",
)


def parse_duration(value: object, syntax: DurationSyntax = FLAG_SYNTAX) -> float:
    """Seconds in ``value``; :class:`ValueError` (its message says "duration") for anything else."""
    # bool is an int to Python but never a duration in YAML's eyes.
    if isinstance(value, int) and not isinstance(value, bool) and syntax.integer_nanoseconds:
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError(f"must be a duration such as {syntax.example}")
    text = value.strip()
    if text == "0" or (syntax.signed and text in ("+0", "-0")):
        return 0.0
    sign, body = 1.0, text
    if syntax.signed:
        # Every leading sign goes, as it always has here (Go takes one): a file that starts today keeps
        # starting.
        sign, body = (-1.0 if text.startswith("-") else 1.0), text.lstrip("+-")
    position, total = 0, 0.0
    for match in syntax.part.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * syntax.units[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ValueError(f"invalid duration {value!r} (use e.g. {syntax.example})")
    return sign * total


__all__ = ["FLAG_SYNTAX", "GO_SYNTAX", "DurationSyntax", "parse_duration"]

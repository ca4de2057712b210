"""What every /metrics text must satisfy, checked line by line (stricter than prometheus_client's parser,
which accepts a family with no HELP, or one declared twice)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Sample names a family of that type may carry besides its own name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": (),
    "info": ("_info",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "untyped": (),
    "unknown": (),
    "stateset": (),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]")


@dataclass
class Declared:
    help: str | None = None
    type: str | None = None
    samples: int = 0
    lines: list[int] = field(default_factory=list)


def declared_families(text: str) -> dict[str, Declared]:
    """Each family of ``text`` with its HELP, TYPE and sample count; raises AssertionError on the first
    family declared twice, a sample outside the family declared just before it, or a TYPE without a
    HELP before it (or a HELP with no text)."""
    families: dict[str, Declared] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            assert len(parts) >= 3, f"line {number}: {line!r}"
            kind, name = parts[1], parts[2]
            rest = parts[3] if len(parts) == 4 else ""
            family = families.setdefault(name, Declared())
            if name != current:
                assert not family.lines, (
                    f"line {number}: {name} declared again, apart from line {family.lines[0]}"
                )
                current = name
            family.lines.append(number)
            if kind == "HELP":
                assert family.help is None, f"line {number}: a second HELP for {name}"
                assert rest.strip(), f"line {number}: {name} has an empty HELP"
                family.help = rest
            else:
                assert family.type is None, f"line {number}: a second TYPE for {name}"
                assert family.help is not None, f"line {number}: TYPE of {name} before (or without) its HELP"
                assert rest in SUFFIXES, f"line {number}: {name} has TYPE {rest!r}"
                family.type = rest
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"line {number}: not a sample: {line!r}"
        sample = match.group(1)
        assert current is not None, f"line {number}: {sample} before any HELP/TYPE"
        family = families[current]
        assert family.help is not None, f"line {number}: {sample} of {current}, which has no HELP"
        assert family.type is not None, f"line {number}: {sample} of {current}, which has no TYPE"
        allowed = {current, *(current + suffix for suffix in SUFFIXES[family.type])}
        assert sample in allowed, f"line {number}: {sample} is not a sample of the family {current}"
        family.samples += 1
    return families


def assert_every_family_declared(text: str) -> dict[str, Declared]:
    """Every family with samples has exactly one non-empty HELP and one TYPE, before its samples."""
    families = declared_families(text)
    for name, family in families.items():
        assert family.help is not None, f"{name} has no HELP"
        assert family.type is not None, f"{name} has no TYPE"
    return families

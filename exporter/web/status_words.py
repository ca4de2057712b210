"""Words and times as the status page and the ``check`` table show them, and :func:`clean`, which makes
any text from the API safe to encode and show (lone surrogates and control characters replaced), so that
no renderer can fail on it; escaping for HTML is the page's job. Pure functions of their arguments.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence

from exporter.schedule import DAY, HOUR, WEEK
from exporter.snapshot import ScheduleSummary

_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    """``text`` with what cannot be encoded (lone surrogates) or shown (controls) replaced by U+FFFD."""
    if text.isascii() and text.isprintable():  # the usual name; nothing _UNSAFE matches (a quarter the time)
        return text
    return _UNSAFE.sub("\ufffd", text)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def retention_words(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds <= 0 or seconds >= 1e12:
        return "kept ?"
    s = int(seconds)
    if s % WEEK == 0 and 2 <= s // WEEK <= 12:
        return f"kept {_plural(s // WEEK, 'week')}"
    if s % DAY == 0:
        return f"kept {_plural(s // DAY, 'day')}"
    if s % HOUR == 0:
        return f"kept {_plural(s // HOUR, 'hour')}"
    return f"kept {_plural(max(1, s // 60), 'minute')}"


def _times(values: Sequence[int], fmt: Callable[[int], str], limit: int = 4) -> str:
    shown = [fmt(v) for v in values[:limit]]
    more = len(values) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def schedule_words(schedule: ScheduleSummary) -> str:
    """``daily 02:30 UTC, dump, kept 7 days``."""
    calendar = schedule.calendar
    offsets = calendar.offsets
    if calendar.period_seconds == HOUR:
        when = "hourly at " + _times(sorted({o // 60 for o in offsets}), lambda m: f":{m:02d}")
    else:
        times = sorted({o % DAY for o in offsets})
        clock = _times(times, lambda t: f"{t // HOUR:02d}:{t % HOUR // 60:02d}") + " UTC"
        if calendar.period_seconds == DAY:
            when = f"daily {clock}"
        else:
            days = sorted({o // DAY for o in offsets})
            when = "weekly " + ", ".join(_DAYS[d % 7] for d in days) + f" {clock}"
    return f"{when}, {clean(schedule.backup_type)}, {retention_words(schedule.retention_seconds)}"


def utc(at: float | None) -> str:
    """``2026-11-28 02:31 UTC``; a dash when unknown or out of range."""
    if at is None or not math.isfinite(at):
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    except (OverflowError, OSError, ValueError):
        return "—"


def duration_words(seconds: float | None) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``45 s``: two units at most."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(max(0.0, min(seconds, 1e12)))
    if s < 60:
        return f"{s} s"
    if s < HOUR:
        return f"{s // 60} min"
    if s < DAY:
        return f"{s // HOUR} h {s % HOUR // 60} min" if s % HOUR >= 60 else f"{s // HOUR} h"
    return f"{s // DAY} d {s % DAY // HOUR} h" if s % DAY >= HOUR else f"{s // DAY} d"


def ago(at: float | None, now: float) -> str:
    if at is None or not math.isfinite(at):
        return "—"
    if at > now:
        return "in " + duration_words(at - now)
    return duration_words(now - at) + " ago"


def size_words(size: float | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "—"  # pragma: no cover


__all__ = [
    "ago",
    "clean",
    "duration_words",
    "retention_words",
    "schedule_words",
    "size_words",
    "utc",
]

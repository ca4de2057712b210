"""The rate-limit headers of the Northflank API, and the API's clock, read as untrusted input.

Headers are input too. Numbers are ASCII digits only (``"²"`` passes ``str.isdigit``, then ``int()``
raises). ``Retry-After`` and ``x-ratelimit-reset`` may be seconds to wait or a unix time (in seconds or
milliseconds, on the API's clock), ``Retry-After`` also an HTTP date; a date or unix time is read against
the API's clock (the response's ``Date`` header, else ours plus :attr:`HeaderReader.server_time_offset`),
so a server clock hours ahead does not stretch the wait. No header makes the exporter wait longer than the
API's documented window (an hour): a value that would, or that makes no sense, is counted in
``northflank_api_invalid_headers_total{header}`` and ignored, never obeyed.

The functions here are pure: they say what a header means, or ``None`` when it makes no sense;
:class:`HeaderReader` applies them to a response and hands what it ignored to the client, which counts and
logs it.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections import deque
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from exporter.clock import Clock

#: The API's documented rate-limit window: no header makes the exporter wait longer than this.
RATE_LIMIT_WINDOW_SECONDS = 3600.0
#: A wait read from a header may overshoot the window by this much (clock granularity, latency) and is
#: then read as the whole window; beyond it the value makes no sense.
WAIT_SLACK_SECONDS = 60.0
#: A Date header further than this from our clock is a broken header, not clock skew.
MAX_CLOCK_OFFSET_SECONDS = 86400.0
#: The offset is the median of this many latest Date headers: one odd proxy does not move it.
CLOCK_OFFSET_SAMPLES = 5
#: A header value (other than Date) longer than this is not parsed.
MAX_HEADER_CHARS = 64
#: Above this a waiting header's number is a unix time in seconds (from 2001 on), and above
#: _EPOCH_MILLIS in milliseconds (from 1973 on); a unix time past _EPOCH_MILLIS_MAX (year 5138 in
#: milliseconds) is no time. Between the window and _EPOCH_SECONDS a number is neither: nonsense.
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e11
_EPOCH_MILLIS_MAX = 1e14

#: ASCII only: in a regex character class 0-9 is ASCII, unlike \d or str.isdigit.
_ASCII_INT = re.compile(r"[0-9]{1,18}")
_ASCII_NUMBER = re.compile(r"[0-9]{1,18}(?:\.[0-9]{0,9})?")


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The rate-limit headers of one response; ``reset_at`` and ``observed_at`` are unix seconds."""

    limit: int
    remaining: int
    reset_at: float
    observed_at: float


class ServerClockOffset:
    """Seconds the API's clock is ahead of ours, the median of the offsets of its latest ``Date``
    headers: one odd proxy does not move it."""

    def __init__(self) -> None:
        self._offsets: deque[float] = deque(maxlen=CLOCK_OFFSET_SAMPLES)

    def observe(self, offset: float) -> None:
        self._offsets.append(offset)

    @property
    def seconds(self) -> float:
        """0.0 until a Date header was read."""
        if not self._offsets:
            return 0.0
        return float(statistics.median(self._offsets))


@dataclass(frozen=True, slots=True)
class HeaderReading:
    """What the headers of one response said, the nonsensical values already counted and dropped."""

    rate_limit: RateLimitStatus | None
    #: seconds until the rate-limit window resets, when x-ratelimit-reset made sense
    reset: float | None
    #: the API's clock when it answered: its Date header, else our clock plus the known offset
    server_now: float


class InvalidHeader(Protocol):
    """Counts and logs a header value that makes no sense (never the value itself)."""

    def __call__(self, header: str, why: str, *, loud: int = logging.WARNING) -> None: ...


class HeaderReader:
    """Reads the ``Date`` and rate-limit headers of each response, the latter against the API's clock.
    A value that makes no sense is handed to ``invalid`` and ignored."""

    def __init__(self, clock: Clock, invalid: InvalidHeader) -> None:
        self._clock = clock
        self._invalid = invalid
        self._offset = ServerClockOffset()

    @property
    def server_time_offset(self) -> float:
        return self._offset.seconds

    def read(self, headers: httpx.Headers) -> HeaderReading:
        """Date (the API's clock) first, then the rate-limit headers read against it."""
        now = self._clock.now()
        server_now = now + self.server_time_offset
        date = headers.get("date")
        if date is not None:
            at = http_date(date)
            if at is None or not abs(at - now) < MAX_CLOCK_OFFSET_SECONDS:
                # INFO, not WARNING: ignoring it changes nothing but the skew correction (none, as
                # before any Date was read), whereas an ignored rate-limit header changes what is sent.
                self._invalid(
                    "date",
                    "not an HTTP date within a day of the exporter's clock; assuming no clock skew",
                    loud=logging.INFO,
                )
            else:
                self._offset.observe(at - now)
                server_now = at
        limit = self._count_header(headers, "x-ratelimit-limit")
        remaining = self._count_header(headers, "x-ratelimit-remaining")
        reset: float | None = None
        raw_reset = headers.get("x-ratelimit-reset")
        if raw_reset is not None:
            reset = header_wait(raw_reset, server_now)
            if reset is None:
                self._invalid(
                    "x-ratelimit-reset", "neither seconds nor a unix time within the API's 1 h window"
                )
        if limit is None or remaining is None or reset is None:
            return HeaderReading(None, reset, server_now)
        status = RateLimitStatus(limit=limit, remaining=remaining, reset_at=now + reset, observed_at=now)
        return HeaderReading(status, reset, server_now)

    def _count_header(self, headers: httpx.Headers, name: str) -> int | None:
        value = headers.get(name)
        if value is None:
            return None
        count = ascii_int(value)
        if count is None:
            self._invalid(name, "not a number of ASCII digits")
        return count


def ascii_int(value: str) -> int | None:
    """A non-negative integer of ASCII digits (at most 18); anything else is ``None``."""
    text = value.strip(" \t")
    return int(text) if _ASCII_INT.fullmatch(text) else None


def _bounded_wait(seconds: float) -> float | None:
    """A wait of at most the rate-limit window: a little more is the window (clock granularity), a
    little in the past is now; anything further either way makes no sense."""
    if not math.isfinite(seconds):
        return None
    if (
        -RATE_LIMIT_WINDOW_SECONDS - WAIT_SLACK_SECONDS
        <= seconds
        <= RATE_LIMIT_WINDOW_SECONDS + WAIT_SLACK_SECONDS
    ):
        return min(max(seconds, 0.0), RATE_LIMIT_WINDOW_SECONDS)
    return None


def header_wait(value: str, server_now: float) -> float | None:
    """Seconds to wait, from a header saying either that many seconds or until when, as a unix time in
    seconds or milliseconds on the API's clock (``server_now``). ``None``: it makes no sense."""
    text = value.strip(" \t")
    if len(text) > MAX_HEADER_CHARS or not _ASCII_NUMBER.fullmatch(text):
        return None
    number = float(text)
    if number < _EPOCH_SECONDS:
        # Seconds to wait; ten years of them is not a wait but a broken header.
        return _bounded_wait(number) if number <= RATE_LIMIT_WINDOW_SECONDS + WAIT_SLACK_SECONDS else None
    if number >= _EPOCH_MILLIS_MAX:
        return None
    at = number / 1000 if number >= _EPOCH_MILLIS else number
    return _bounded_wait(at - server_now)


def http_date(value: str) -> float | None:
    """An HTTP date (RFC 9110: ``Tue, 14 Nov 2023 22:14:00 GMT``) as a unix time; ``None`` if not one."""
    text = value.strip(" \t")
    if len(text) > MAX_HEADER_CHARS or not text.isascii():
        return None
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": RFC 5322 for "UTC, source unknown"
            return None
        at = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return at if math.isfinite(at) else None


def retry_after_wait(value: str, server_now: float) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds, a unix time, or an HTTP date on the API's clock
    (``server_now``; a past date is 0). ``None``: it makes no sense."""
    if _ASCII_NUMBER.fullmatch(value.strip(" \t")):
        return header_wait(value, server_now)
    at = http_date(value)
    return None if at is None else _bounded_wait(at - server_now)


__all__ = [
    "CLOCK_OFFSET_SAMPLES",
    "MAX_CLOCK_OFFSET_SECONDS",
    "MAX_HEADER_CHARS",
    "RATE_LIMIT_WINDOW_SECONDS",
    "WAIT_SLACK_SECONDS",
    "HeaderReader",
    "HeaderReading",
    "InvalidHeader",
    "RateLimitStatus",
    "ServerClockOffset",
    "ascii_int",
    "header_wait",
    "http_date",
    "retry_after_wait",
]

"""Problems of untrusted input logged loudly at most once per hour per kind, the rest at DEBUG.

A broken API repeats itself on every refresh: one WARNING says what and that the counters count the rest,
without flooding the log.
"""

from __future__ import annotations

import logging

from exporter.clock import Clock

#: Invalid items and ignored headers are logged at WARNING at most once per this long (per resource,
#: per header); the rest at DEBUG: the counters say how many there were.
PROBLEM_LOG_SECONDS = 3600.0


class ProblemLog:
    """When each kind of problem (an invalid item of a resource, an ignored header) was last logged loudly."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logged: dict[str, float] = {}

    def level(self, problem: str, loud: int = logging.WARNING) -> tuple[int, str]:
        """``loud`` (and a note saying the next ones are quieter) at most once per PROBLEM_LOG_SECONDS
        per kind of problem; DEBUG otherwise: the counters say how many there were."""
        now = self._clock.now()
        last = self._logged.get(problem)
        if last is not None and 0 <= now - last < PROBLEM_LOG_SECONDS:
            return logging.DEBUG, ""
        self._logged[problem] = now
        return loud, f"; further {problem} are logged at debug level for {PROBLEM_LOG_SECONDS:g}s"


__all__ = ["PROBLEM_LOG_SECONDS", "ProblemLog"]

"""Every request the simulator answered: when (by the injected clock), which route, which status."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RequestRecord:
    time: float
    method: str
    #: The route template without the team prefix (``/v1/projects/{projectId}/addons``), None if unknown.
    route: str | None
    path: str
    #: None while unanswered (a hanging request that was never answered stays None).
    status: int | None = None
    #: The kind of the injected fault that answered it, if any.
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> RequestRecord:
        self._records.append(record)
        return record

    def clear(self) -> None:
        self._records.clear()

    @property
    def records(self) -> list[RequestRecord]:
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def count(self, *, status: int | None = None, route: str | None = None) -> int:
        return sum(
            1
            for r in self._records
            if (status is None or r.status == status) and (route is None or r.route == route)
        )

    def max_in_window(self, seconds: float = 3600.0, *, exclude_status: tuple[int, ...] = ()) -> int:
        """The most requests in any rolling window of ``seconds`` (windows are half-open: [t, t + s))."""
        times = sorted(r.time for r in self._records if r.status not in exclude_status)
        best = 0
        first = 0
        for last, t in enumerate(times):
            while times[first] <= t - seconds:
                first += 1
            best = max(best, last - first + 1)
        return best


__all__ = ["RequestLog", "RequestRecord"]

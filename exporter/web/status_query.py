"""The status page's query: filter by state and project, and sort, from query parameters. The HTML page,
``/api/v1/addons`` and ``check`` share it; what a parameter cannot mean is ignored, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.health import Health
from exporter.web.status_rows import AddonRow

SORTS: Mapping[str, str] = {
    "state": "health, worst first",
    "project": "project, then addon",
    "addon": "addon name",
    "age": "oldest completed backup first",
    "freshness": "least recently read first",
}
#: ``state=problems``: every state that is a condition of an alert.
PROBLEMS = "problems"


@dataclass(frozen=True, slots=True)
class Query:
    states: frozenset[Health] = frozenset()
    problems_only: bool = False
    project: str | None = None
    sort: str = "state"

    @classmethod
    def parse(cls, params: Iterable[tuple[str, str]], projects: Iterable[str]) -> Query:
        """From query parameters; values that mean nothing here (an unknown state, project or sort) are
        ignored, so an old bookmark or a typo shows more, never an error."""
        known_projects = set(projects)
        by_value = {h.value: h for h in Health}
        states: set[Health] = set()
        problems_only = False
        project = None
        sort = "state"
        for name, value in params:
            if name == "state":
                for part in value.split(","):
                    if part in by_value:
                        states.add(by_value[part])
                    elif part == PROBLEMS:
                        problems_only = True
            elif name == "project" and value in known_projects:
                project = value
            elif name == "sort" and value in SORTS:
                sort = value
        return cls(frozenset(states), problems_only, project, sort)

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """This query's parameters with ``changes`` (None removes one), for links."""
        states = [h.value for h in Health if h in self.states] + ([PROBLEMS] if self.problems_only else [])
        values: dict[str, str | None] = {
            "state": ",".join(states) or None,
            "project": self.project,
            "sort": None if self.sort == "state" else self.sort,
        }
        values.update(changes)
        return [(k, v) for k, v in values.items() if v]

    def matches(self, row: AddonRow) -> bool:
        if self.project is not None and row.project_id != self.project:
            return False
        if not self.states and not self.problems_only:
            return True
        return row.state in self.states or (self.problems_only and row.state.is_problem)


def sort_key(sort: str) -> Callable[[AddonRow], tuple[Any, ...]]:
    def names(row: AddonRow) -> tuple[str, str, str, str]:
        return (row.project_name.casefold(), row.addon_name.casefold(), row.project_id, row.addon_id)

    if sort == "project":
        return names
    if sort == "addon":
        return lambda r: (r.addon_name.casefold(), *names(r))
    if sort == "age":
        # Never completed first (the oldest possible), then the oldest newest backup.
        return lambda r: (
            r.last_completed_at is not None,
            r.last_completed_at if r.last_completed_at is not None else 0.0,
            *names(r),
        )
    if sort == "freshness":
        return lambda r: (r.read_at is not None, r.read_at if r.read_at is not None else 0.0, *names(r))
    return lambda r: (r.state.rank, *names(r))


__all__ = ["PROBLEMS", "SORTS", "Query", "sort_key"]

"""The state the budget and the planner export and restore, as plain typed values (no file format here:
that is :mod:`exporter.state.codec`'s business)."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.northflank.ratelimit import RateLimitStatus
from exporter.resources import Resource


@dataclass(frozen=True, slots=True)
class BudgetState:
    """The request budget's memory: the sliding log of the requests sent and the last rate-limit state."""

    #: When each request still in the window was sent, oldest first.
    sent: tuple[float, ...] = ()
    rate_limit: RateLimitStatus | None = None
    #: Nothing goes out before this (a 429 that said to come back later); None: no hold.
    blocked_until: float | None = None
    #: The (plausible) limit the API announced last; None: none seen yet.
    announced: int | None = None


@dataclass(frozen=True, slots=True)
class BucketLevel:
    """A token bucket's level at ``updated`` (its rate and capacity follow from the configuration)."""

    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """What the planner knows of one listing: when it was last read and when it is next due."""

    #: The listing, as the planner's ``Target`` names it (kept apart from the planner's types, which
    #: import this module).
    resource: Resource
    project: str
    addon: str
    known_since: float
    due: float
    #: The plan's tier (``exporter.planner.policy.Tier``'s value).
    tier: int
    last_attempt: float | None = None
    last_success: float | None = None
    failures: int = 0
    cost: int = 1
    forced: float | None = None


@dataclass(frozen=True, slots=True)
class PlannerState:
    targets: tuple[TargetRecord, ...] = ()
    #: Discovery had succeeded (the snapshot was made ready).
    ready: bool = False
    #: The token buckets by name ("global" and the tiers' shares).
    buckets: tuple[tuple[str, BucketLevel], ...] = ()


__all__ = ["BucketLevel", "BudgetState", "PlannerState", "TargetRecord"]

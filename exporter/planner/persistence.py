"""The planner's state across a restart (--storage.path): every listing's plan and the token buckets'
levels, saved by :mod:`exporter.state.saver` and taken back by the next process (:class:`.loop.PlanningLoop`
delegates here)."""

from __future__ import annotations

from collections.abc import Mapping

from exporter.buckets import TokenBucket
from exporter.planner.policy import PROJECTS
from exporter.planner.targets import TargetBook
from exporter.state.records import BucketLevel, PlannerState, TargetRecord


def export_state(book: TargetBook, buckets: Mapping[str, TokenBucket]) -> PlannerState:
    """Every listing's last read and next due time, and the buckets' levels: what the next process
    resumes from. A read in flight is saved with the plan it was started on (due: read again)."""
    records = tuple(
        TargetRecord(
            resource=target.resource,
            project=target.project,
            addon=target.addon,
            known_since=state.known_since,
            due=state.plan.due,
            tier=int(state.plan.tier),
            last_attempt=state.last_attempt,
            last_success=state.last_success,
            failures=state.failures,
            cost=state.cost,
            forced=state.forced,
        )
        for target, state in book.states.items()
    )
    return PlannerState(
        targets=records,
        ready=book.ready,
        buckets=tuple((name, BucketLevel(b.tokens, b.updated)) for name, b in buckets.items()),
    )


def restore_buckets(buckets: Mapping[str, TokenBucket], state: PlannerState, now: float) -> None:
    """Take the previous process's bucket levels at once (a restart must not refill them)."""
    for name, level in state.buckets:
        bucket = buckets.get(name)
        if bucket is None:
            continue
        # A bucket may be in debt (a refresh cost more than planned), never by more than it holds.
        bucket.tokens = min(bucket.capacity, max(-bucket.capacity, level.tokens))
        bucket.updated = min(level.updated, now)


def resume(book: TargetBook, state: PlannerState, now: float) -> bool:
    """Take the previous process's plans (when the loop starts: they need the snapshot); whether the
    projects listing was answered before (then it need not go first)."""
    book.restore(state.targets, ready=state.ready, now=now)
    projects = book.states.get(PROJECTS)
    # The token the file was saved for (see exporter.state.codec) was taken: its next projects
    # listing comes when planned, and a 401 anywhere makes it go first again.
    return projects is not None and projects.last_success is not None


__all__ = ["export_state", "restore_buckets", "resume"]

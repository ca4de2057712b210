"""What webhook events do to the plans (exporter.web.webhook): an event naming an addon marks it (and its
project) as pushed and asks for a read at once; an event naming no known addon moves close fast checks
forward. The loop (:mod:`.loop`) starts the reads asked for and, while events come, keeps room in the
budget for them (:meth:`Pushes.headroom`)."""

from __future__ import annotations

import asyncio
import math

from exporter.buckets import MIN_WAIT
from exporter.budget import RequestBudget
from exporter.clock import Clock
from exporter.planner.policy import (
    FLOOR_CEILING,
    PRIORITY_FIRST_READS,
    PUSH_FLOOR,
    PUSH_TRUST,
    Target,
    Tier,
)
from exporter.planner.targets import TargetBook
from exporter.resources import Resource
from exporter.snapshot import AddonKey

#: An event naming no known addon moves forward the fast checks due this soon, at most this many.
HINT_DUE_HORIZON = 600.0
HINT_DUE_LIMIT = 32
#: While webhook events come, this share of the rolling window's budget is left to the reads they ask
#: for: the runs of many addons end together (on the hour), and their events should not queue.
PUSH_HEADROOM = 0.2


class Pushes:
    """The webhook's entry points into the planner's plans, and the reads they asked for."""

    def __init__(self, book: TargetBook, budget: RequestBudget, *, clock: Clock, wake: asyncio.Event) -> None:
        self._book = book
        self._budget = budget
        self._clock = clock
        #: Set to wake the loop: a plan moved or a read was asked for.
        self._wake = wake
        #: Addons a webhook event asked to read at once, oldest first (see :meth:`hint`).
        self.hinted: dict[AddonKey, float] = {}
        #: When the latest webhook event named a known addon.
        self._last_push: float | None = None

    def hint(self, addon: str, project: str | None = None, *, read: bool = True) -> bool:
        """A webhook event named ``addon`` (in ``project``, when the event said which): the addon (and its
        project) count as pushed from now on (:func:`~exporter.planner.policy.push_covered`: their fast
        checks wait for the events) and, with ``read``, its backups are read at once, ahead of every
        tier, within the budget (the global bucket and the request gate, as the fast tier; the fast
        tier's share pays). Whether the addon is known; an unknown one changes nothing."""
        key = self._find_addon(addon, project)
        if key is None:
            return False
        now = self._clock.now()
        book = self._book
        before = book.pushed_projects.get(key[0])
        book.pushed_addons[key] = now
        book.pushed_projects[key[0]] = now
        self._last_push = now
        if read:
            # Only the events that end a backup ask for a read: what the loss estimate compares with.
            book.ended_addons[key] = now
            self.hinted.setdefault(key, now)
        # A project newly pushed: every addon of it waits for its events from now on.
        newly = before is None or before < now - PUSH_TRUST
        for other in [k for k in book.by_addon if k[0] == key[0]] if newly else [key]:
            state = book.states.get(Target(Resource.BACKUPS, *other))
            if state is not None:
                book.replan(state, now)
        self._wake.set()
        return True

    def hint_due(self) -> int:
        """A backup event that named no known addon: a backup ended somewhere. The fast tier's backup
        checks due within HINT_DUE_HORIZON (runs under way or about to be looked at), at most
        HINT_DUE_LIMIT of them, earliest first, are due now; how many moved."""
        now = self._clock.now()
        book = self._book
        candidates = []
        for entry in book.queues[Tier.FAST]:
            state = book.states.get(entry.target)
            if (
                state is not None
                and state.version == entry.version
                and not state.in_flight
                and entry.target.resource is Resource.BACKUPS
                and now < entry.due <= now + HINT_DUE_HORIZON
            ):
                candidates.append((entry.due, entry.seq, state))
        candidates.sort(key=lambda c: (c[0], c[1]))
        for _, _, state in candidates[:HINT_DUE_LIMIT]:
            state.forced = now
            book.replan(state, now)
        if candidates:
            self._wake.set()
        return min(len(candidates), HINT_DUE_LIMIT)

    def pushed_floor(self) -> float | None:
        """The floor of the addons webhook events cover (None: no event named any addon yet)."""
        floor = self._book.cadence.floor
        return max(floor, PUSH_FLOOR) if self._book.pushed_addons and floor > FLOOR_CEILING else None

    def _find_addon(self, addon: str, project: str | None) -> AddonKey | None:
        by_addon = self._book.by_addon
        if project is not None and (project, addon) in by_addon:
            return (project, addon)
        # Events may name the addon alone; an id found in two projects is ambiguous: no guess.
        matches = [key for key in by_addon if key[1] == addon]
        return matches[0] if len(matches) == 1 else None

    def headroom(self, now: float) -> float:
        """While webhook events name addons (the last within PUSH_TRUST), the warm-up is over and the
        deliveries are not being lost (:mod:`.losses`), how long the tiers must wait so that PUSH_HEADROOM
        of the rolling window stays free for the webhook's reads; 0 otherwise."""
        if self._last_push is None or self._last_push < now - PUSH_TRUST:
            return 0.0
        if self._book.losses.lossy:
            # Polled as usual (see policy.plan_backups): the room would come out of polling alone's budget.
            return 0.0
        first = self._book.top(Tier.NEW)
        if first is not None and first.order <= PRIORITY_FIRST_READS:
            return 0.0  # the warm-up's first reads go at the whole budget's pace: they are finite
        budget = self._budget
        allowed = budget.limit - math.ceil(PUSH_HEADROOM * budget.limit)
        spent = budget.spent(now)
        if spent < allowed:
            return 0.0
        times = budget.sent_times()
        excess = spent - allowed
        return max(MIN_WAIT, times[min(excess, len(times) - 1)] + budget.window - now)


__all__ = ["HINT_DUE_HORIZON", "HINT_DUE_LIMIT", "PUSH_HEADROOM", "Pushes"]

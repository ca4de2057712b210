"""What the planner knows of every target: its state, its current plan and the queues the loop picks the due
ones from. Recording what a read said, following the fleet as projects and addons come and go, and fitting
the cadence to the fleet and the budget all happen here; the loop (:mod:`.loop`) decides only what starts
when, and the decisions themselves are pure functions in :mod:`.policy`."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.northflank.errors import NorthflankError, NotFoundError
from exporter.planner.losses import DeliveryLosses
from exporter.planner.policy import (
    DESTINATIONS,
    FLOOR_CEILING,
    NEW_ORDER,
    PROJECTS,
    RESOURCE_RANK,
    RUN_FLOOR_MAX,
    BackupsView,
    Cadence,
    PeriodicView,
    Plan,
    PlannerSettings,
    Shares,
    Target,
    Tier,
    fit_cadence,
    fit_shares,
    plan_backups,
    plan_periodic,
    push_covered,
    unannounced,
)
from exporter.poller import Outcome
from exporter.resources import Resource
from exporter.snapshot import AddonKey, Snapshot
from exporter.state.records import TargetRecord

log = logging.getLogger(__name__)

#: The order a new addon's targets are added in (it breaks no ties: their ranks differ).
_ADDON_TARGET_ORDER = (Resource.SCHEDULES, Resource.BACKUPS, Resource.RESTORES)
#: The listings whose answers make the snapshot ready (see TargetBook._answered).
_DISCOVERY_LISTINGS = frozenset((Resource.PROJECTS, Resource.ADDONS))


def target_fields(target: Target) -> dict[str, str]:
    """A target as log fields (``resource=backups project=... addon=...``), not words of the message."""
    fields = {"resource": str(target.resource)}
    if target.project:
        fields["project"] = target.project
    if target.addon:
        fields["addon"] = target.addon
    return fields


def _set_member(items: set[AddonKey], key: AddonKey, member: bool) -> bool:
    """Make ``key`` a member of ``items`` or not; whether that changed anything."""
    if member == (key in items):
        return False
    if member:
        items.add(key)
    else:
        items.discard(key)
    return True


@dataclass(slots=True)
class TargetState:
    """What the planner knows of one target."""

    target: Target
    known_since: float
    plan: Plan
    version: int = 0
    last_attempt: float | None = None
    last_success: float | None = None
    failures: int = 0
    #: Requests the last successful read took (its page count): what the next one is expected to cost.
    cost: int = 1
    in_flight: bool = False
    #: Due no later than this (a 404 elsewhere says this listing is out of date).
    forced: float | None = None


@dataclass(order=True, slots=True)
class QueueEntry:
    """A plan in its tier's queue; superseded once its target's version moves on."""

    #: In the new tier, the target's place in NEW_ORDER (backups before schedules...); else 0.
    order: int
    due: float
    rank: int
    seq: int
    version: int = field(compare=False)
    target: Target = field(compare=False)


class TargetBook:
    """Every target's state and plan, and a queue of plans per tier (earliest due first)."""

    def __init__(
        self, *, settings: PlannerSettings, limit: float, snapshot: Callable[[], Snapshot | None]
    ) -> None:
        self._settings = settings
        #: The current snapshot; None until the planner runs (nothing has been read yet).
        self._snapshot = snapshot
        self.states: dict[Target, TargetState] = {}
        self.by_addon: dict[AddonKey, list[Target]] = {}
        self.queues: dict[Tier, list[QueueEntry]] = {tier: [] for tier in Tier}
        self._seq = itertools.count()
        #: Until ready: the discovery listings not answered yet (the projects: not listed successfully).
        self._discovering: set[Target] = set()
        self.ready = False
        #: Addons with an hourly schedule (never floored: their runs refresh them) and without any.
        self._hourly: set[AddonKey] = set()
        self._unscheduled: set[AddonKey] = set()
        #: Addons whose runs come at least every RUN_FLOOR_MAX, hourly ones not included (policy.fit_shares).
        self._run_floored: set[AddonKey] = set()
        #: Projects whose addon listings are targets.
        self._projects: set[str] = set()
        #: The request budget (requests per hour) the cadence is fitted to.
        self.limit = limit
        self.cadence = self._fit()
        #: What each capped tier's bucket refills at (the loop follows it).
        self.shares = self._fit_shares(self.cadence)
        #: Moves on whenever a target comes or goes (the exposition re-sorts its samples then).
        self.targets_version = 0
        #: When a webhook event last named each addon and each project (see policy.push_covered).
        self.pushed_addons: dict[AddonKey, float] = {}
        self.pushed_projects: dict[str, float] = {}
        #: When a backup end event (success, failure, abort) last named each addon, and the newest backup
        #: end each addon's reads have shown (see :meth:`_judge_delivery`).
        self.ended_addons: dict[AddonKey, float] = {}
        self._newest_end: dict[AddonKey, float] = {}
        self.losses = DeliveryLosses()

    def _current(self) -> Snapshot:
        snapshot = self._snapshot()
        if snapshot is None:
            raise RuntimeError("the planner follows the fleet only while it runs")
        return snapshot

    def _answered(self, target: Target, *, ok: bool) -> bool:
        """The API answered a read of ``target``. Discovery has succeeded once the projects were listed
        successfully and every listed project's addon listing was answered (the syncs add the addon
        listings of the projects found before this): then the snapshot is marked ready. A failed addon
        listing is retried and counted; it does not hold readiness, as a failed projects listing does
        (the token refused, the API unreachable: nothing the exporter could serve). Whether this answer
        made the planner ready."""
        if ok or target.resource is not Resource.PROJECTS:
            self._discovering.discard(target)
        if self.ready or self._discovering:
            return False
        self.ready = True
        return True

    def _not_found(self, target: Target, now: float) -> None:
        """A 404: the listing that says this target exists is out of date; read it again now."""
        if target.addon:
            parent = Target(Resource.ADDONS, target.project)
        elif target.resource is Resource.ADDONS:
            parent = PROJECTS
        else:
            return
        state = self.states.get(parent)
        if state is not None:
            state.forced = now if state.forced is None else min(state.forced, now)
            self.replan(state, now)

    def _sync_projects(self, now: float) -> None:
        projects = self._current().projects
        for project_id in projects:
            target = Target(Resource.ADDONS, project_id)
            if target not in self.states:
                self.add(target, now)
        for target in [t for t in self.states if t.resource is Resource.ADDONS and t.project not in projects]:
            self.drop(target)
        for key in [k for k in self.by_addon if k[0] not in projects]:
            self.drop_addon(key)
        self.refit(now)

    def _sync_addons(self, project_id: str, now: float) -> None:
        snapshot = self._current()
        listed = {key for key in snapshot.addons if key[0] == project_id}
        for key in sorted(listed - self.by_addon.keys()):
            targets = [Target(resource, *key) for resource in _ADDON_TARGET_ORDER]
            self.by_addon[key] = targets
            for target in targets:
                self.add(target, now)
        for key in [k for k in self.by_addon if k[0] == project_id and k not in listed]:
            self.drop_addon(key)
        self.refit(now)

    def _schedules_read(self, key: AddonKey, now: float) -> None:
        addon = self._current().addons.get(key)
        schedules = addon.schedules.value if addon is not None and addon.schedules is not None else ()
        hourly = any(s.calendar.max_interval_seconds <= FLOOR_CEILING for s in schedules)
        run_floored = not hourly and any(s.calendar.max_interval_seconds <= RUN_FLOOR_MAX for s in schedules)
        changed = (
            _set_member(self._hourly, key, hourly)
            | _set_member(self._unscheduled, key, not schedules)
            | _set_member(self._run_floored, key, run_floored)
        )
        if changed:
            self.refit(now)
        backups = self.states.get(Target(Resource.BACKUPS, *key))
        if backups is not None:
            self.replan(backups, now)

    def add(self, target: Target, now: float) -> None:
        if target.resource is Resource.ADDONS:
            self._projects.add(target.project)
        state = TargetState(target=target, known_since=now, plan=Plan(now, Tier.NEW, "new"))
        self.targets_version += 1
        self.states[target] = state
        if target.resource in _DISCOVERY_LISTINGS and not self.ready:
            self._discovering.add(target)
        state.plan = self._plan(state)
        self.push(state)

    def drop(self, target: Target) -> None:
        if target.resource is Resource.ADDONS:
            self._projects.discard(target.project)
            self.pushed_projects.pop(target.project, None)
        self.targets_version += 1
        state = self.states.pop(target, None)
        if state is not None:
            state.version += 1
        self._discovering.discard(target)

    def drop_addon(self, key: AddonKey) -> None:
        for target in self.by_addon.pop(key, ()):
            self.drop(target)
        self._hourly.discard(key)
        self._unscheduled.discard(key)
        self._run_floored.discard(key)
        self.pushed_addons.pop(key, None)
        self.ended_addons.pop(key, None)
        self._newest_end.pop(key, None)

    def push(self, state: TargetState) -> None:
        state.version += 1
        order = NEW_ORDER[state.target.resource] if state.plan.tier is Tier.NEW else 0
        entry = QueueEntry(
            order,
            state.plan.due,
            RESOURCE_RANK[state.target.resource],
            next(self._seq),
            state.version,
            state.target,
        )
        queue = self.queues[state.plan.tier]
        heapq.heappush(queue, entry)
        if len(queue) > 64 and len(queue) > 3 * len(self.states):
            # Drop the entries of superseded plans so that the queues stay proportional to the fleet.
            live = [
                e for e in queue if (s := self.states.get(e.target)) is not None and s.version == e.version
            ]
            heapq.heapify(live)
            self.queues[state.plan.tier] = live

    def replan(self, state: TargetState, now: float) -> None:
        if state.in_flight or self.states.get(state.target) is not state:
            return
        plan = self._plan(state)
        if state.forced is not None and state.forced < plan.due:
            plan = Plan(state.forced, plan.tier, "forced")
        state.plan = plan
        self.push(state)

    def force_all(self, now: float) -> None:
        """Every target due now (a forced pass); for one in flight, the read under way is the pass's."""
        for state in list(self.states.values()):
            state.forced = now
            self.replan(state, now)

    def _plan(self, state: TargetState) -> Plan:
        target, cadence = state.target, self.cadence
        if target.resource is Resource.BACKUPS:
            return plan_backups(
                self._backups_view(state),
                floor=cadence.floor,
                floor_unscheduled=cadence.floor_unscheduled,
                floor_by_runs=self._settings.max_staleness is None,
            )
        view = PeriodicView(state.known_since, state.last_attempt, state.last_success, state.failures)
        if target.resource is Resource.SCHEDULES:
            return plan_periodic(view, interval=cadence.schedules, tier=Tier.SLOW)
        if target.resource is Resource.RESTORES:
            return plan_periodic(view, interval=cadence.restores, tier=Tier.SLOW)
        return plan_periodic(view, interval=cadence.discovery, tier=Tier.DISCOVERY)

    def _backups_view(self, state: TargetState) -> BackupsView:
        snapshot = self._snapshot()
        addon = snapshot.addons.get(state.target.key) if snapshot is not None else None
        fetched = addon.backups if addon is not None else None
        schedules = addon.schedules.value if addon is not None and addon.schedules is not None else ()
        return BackupsView(
            known_since=state.known_since,
            last_attempt=state.last_attempt,
            last_success=fetched.at if fetched is not None else None,
            failures=state.failures,
            summary=fetched.value if fetched is not None else None,
            calendars=tuple(s.calendar for s in schedules),
            pushed_at=self.pushed_addons.get(state.target.key),
            project_pushed_at=self.pushed_projects.get(state.target.project),
            push_lossy=self.losses.lossy,
        )

    def _judge_delivery(self, state: TargetState, now: float) -> None:
        """A read of an addon's backups succeeded: when it shows a backup end newer than the last read did
        and the addon was pushed (as of before this read), whether an event announced that end counts
        towards the loss estimate; when the estimate flips, every addon's backups are replanned (the
        fallback timing of the pushed ones changes)."""
        key = state.target.key
        view = self._backups_view(state)
        summary = view.summary
        if summary is None:
            return
        ends = [t for t in (summary.last_completed_at, summary.last_failed_at) if t is not None]
        if not ends:
            return
        newest = max(ends)
        before = self._newest_end.get(key)
        if before is None:
            # The first read is the baseline: what ended before it may predate the webhook.
            self._newest_end[key] = newest
            return
        if newest <= before:
            return
        # Whether its events were expected: named by one, or its project lately. Without the summary: this
        # read may show the backup whose start event was lost too.
        covered = push_covered(
            BackupsView(
                known_since=view.known_since,
                last_success=view.last_success,
                pushed_at=view.pushed_at,
                project_pushed_at=view.project_pushed_at,
            )
        )
        if not covered:
            self._newest_end[key] = newest
            return
        lost = unannounced(newest, self.ended_addons.get(key), read_at=now)
        if lost is None:
            return  # its event may still come: a later read judges it
        self._newest_end[key] = newest
        if self.losses.observe(lost):
            log.info(
                "webhook deliveries %s (%.0f%% of recent backup ends came without an event)",
                "are being lost: polling as usual" if self.losses.lossy else "are back: waiting for events",
                100 * self.losses.share,
            )
            for other in list(self.states.values()):
                if other is not state and other.target.resource is Resource.BACKUPS:
                    self.replan(other, now)

    def _fit(self) -> Cadence:
        addons = len(self.by_addon)
        destinations = self.states.get(DESTINATIONS)
        return fit_cadence(
            self.limit,
            addons=addons,
            floor_addons=addons - len(self._hourly),
            unscheduled_addons=len(self._unscheduled),
            discovery_items=1 + len(self._projects) + (destinations.cost if destinations is not None else 1),
            settings=self._settings,
        )

    def _fit_shares(self, cadence: Cadence) -> Shares:
        addons = len(self.by_addon)
        destinations = self.states.get(DESTINATIONS)
        return fit_shares(
            self.limit,
            cadence,
            addons=addons,
            floor_addons=addons - len(self._hourly),
            unscheduled_addons=len(self._unscheduled),
            # A configured max staleness is a promise: runs do not floor an addon then.
            run_floored_addons=len(self._run_floored) if self._settings.max_staleness is None else 0,
            discovery_items=1 + len(self._projects) + (destinations.cost if destinations is not None else 1),
        )

    def refit(self, now: float) -> None:
        """Refit the cadence to the fleet and the budget; replan everything when it moved by over 5%."""
        cadence = self._fit()
        self.shares = self._fit_shares(cadence)
        old = self.cadence
        if all(
            math.isclose(a, b, rel_tol=0.05)
            for a, b in (
                (cadence.floor, old.floor),
                (cadence.floor_unscheduled, old.floor_unscheduled),
                (cadence.discovery, old.discovery),
                (cadence.schedules, old.schedules),
                (cadence.restores, old.restores),
            )
        ):
            return
        self.cadence = cadence
        log.debug("refresh cadence for %d addons: %s", len(self.by_addon), cadence)
        for state in list(self.states.values()):
            if state.last_attempt is not None:
                self.replan(state, now)

    def top(self, tier: Tier) -> QueueEntry | None:
        queue = self.queues[tier]
        while queue:
            entry = queue[0]
            state = self.states.get(entry.target)
            if state is not None and not state.in_flight and state.version == entry.version:
                return entry
            heapq.heappop(queue)
        return None

    def record(self, state: TargetState, outcome: Outcome | None, requests: int, now: float) -> bool:
        """What a read of ``state``'s target said (None: it failed unexpectedly), and the ``requests`` it
        took; whether discovery has now succeeded (see :meth:`_answered`). A rate-limited read is not
        recorded here: the loop keeps it due."""
        target = state.target
        if self.states.get(target) is not state:
            return False  # dropped while it ran (its project or addon disappeared)
        error: NorthflankError | None = outcome.error if outcome is not None else None
        if outcome is not None and outcome.gone:
            if target.addon:
                self.drop_addon(target.key)
            else:
                self.drop(target)
            return self._answered(target, ok=False)
        state.last_attempt = now
        state.forced = None
        if outcome is not None and outcome.ok:
            state.last_success = now
            state.failures = 0
            state.cost = max(1, requests)
        else:
            state.failures += 1
            if isinstance(error, NotFoundError):
                self._not_found(target, now)
        if outcome is not None and outcome.ok:
            match target.resource:
                case Resource.PROJECTS:
                    self._sync_projects(now)
                case Resource.ADDONS:
                    self._sync_addons(target.project, now)
                case Resource.SCHEDULES:
                    self._schedules_read(target.key, now)
                case Resource.BACKUPS:
                    self._judge_delivery(state, now)
        became_ready = self._answered(target, ok=outcome is not None and outcome.ok)
        self.replan(state, now)
        return became_ready

    def restore(self, records: tuple[TargetRecord, ...], *, ready: bool, now: float) -> None:
        """The previous process's plans (--storage.path), before anything is read: each listing keeps
        when it was last read, its failures and its cost, and is planned from them (and the restored
        snapshot) as if the exporter had never stopped. Then the fleet the snapshot shows is followed:
        targets the file lacks are added, ones the snapshot no longer has are dropped."""
        for record in records:
            try:
                target = Target(record.resource, record.project, record.addon)
                tier = Tier(record.tier)
            except ValueError:
                continue  # the codec checks these; a record the planner cannot read is not guessed at
            if target in self.states:
                continue
            if target.addon:
                self.by_addon.setdefault(target.key, []).append(target)
            elif target.resource is Resource.ADDONS:
                self._projects.add(target.project)
            self.states[target] = TargetState(
                target=target,
                known_since=min(record.known_since, now),
                plan=Plan(record.due, tier, "restored"),
                last_attempt=record.last_attempt,
                last_success=record.last_success,
                failures=max(0, record.failures),
                cost=max(1, record.cost),
                forced=record.forced,
            )
        self.targets_version += 1
        self.ready = ready
        snapshot = self._current()
        for key in self.by_addon:
            addon = snapshot.addons.get(key)
            if addon is None or addon.schedules is None:
                continue
            schedules = addon.schedules.value
            hourly = any(s.calendar.max_interval_seconds <= FLOOR_CEILING for s in schedules)
            run_floored = not hourly and any(
                s.calendar.max_interval_seconds <= RUN_FLOOR_MAX for s in schedules
            )
            _set_member(self._hourly, key, hourly)
            _set_member(self._unscheduled, key, not schedules)
            _set_member(self._run_floored, key, run_floored)
        self._discovering = set()
        if not ready:
            unread = (t for t, s in self.states.items() if s.last_success is None)
            self._discovering = {t for t in unread if t.resource in _DISCOVERY_LISTINGS}
        self._sync_projects(now)
        for project_id in snapshot.projects:
            self._sync_addons(project_id, now)
        self.cadence = self._fit()
        self.shares = self._fit_shares(self.cadence)
        for state in list(self.states.values()):
            self.replan(state, now)


__all__ = ["QueueEntry", "TargetBook", "TargetState", "target_fields"]

"""The planner's pure decisions: the tiers, the targets, and when each target is next worth a request.

Nothing here reads a clock or holds state: every function maps what the last reads said to a plan, so the
policy can be tested (and reasoned about) without an event loop. See :mod:`exporter.planner`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum

from exporter import defaults
from exporter.resources import Resource
from exporter.schedule import EARLY_START_SECONDS, ScheduleCalendar
from exporter.snapshot import AddonKey, BackupSummary

HOUR = 3600.0

# -- the tiers --------------------------------------------------------------------------------------------


class Tier(IntEnum):
    """Refresh tiers; a lower value goes first."""

    FAST = 0
    NEW = 1
    DISCOVERY = 2
    FLOOR = 3
    SLOW = 4

    @property
    def label(self) -> str:
        return self.name.lower()


#: The token bucket of each capped tier's own share. ``new`` has none: it only uses what is idle.
TIER_BUCKET: Mapping[Tier, str] = {
    Tier.FAST: "fast",
    Tier.DISCOVERY: "slow",
    Tier.FLOOR: "floor",
    Tier.SLOW: "slow",
}
OWN_ORDER = (Tier.FAST, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
#: Who gets the budget no tier is using: first reads first (they are finite, so they cannot starve the
#: others), then the fast tier, but only once it is behind (see FAST_BORROW_LATENESS).
BORROW_ORDER = (Tier.NEW, Tier.FAST, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
#: The fast tier keeps to its own share while its checks are less than this late; past it, it also
#: takes budget no other tier is using. (Below it, extra follow-ups would cost more than they gain.)
FAST_BORROW_LATENESS = 600.0
#: While first reads of backups and schedules wait, the discovery, floor and slow tiers hold their own
#: shares back for them, but not for a refresh more than this overdue: a fleet whose first reads take
#: many hours still notices projects and addons that come and go.
WARMUP_HOLD = 3600.0
#: The order of first reads in the ``new`` tier: discovery's listings (they find the addons), then every
#: addon's backups (what the alerts need), then schedules, then restores.
NEW_ORDER: Mapping[Resource, int] = {
    Resource.PROJECTS: 0,
    Resource.ADDONS: 0,
    Resource.BACKUP_DESTINATIONS: 0,
    Resource.BACKUPS: 1,
    Resource.SCHEDULES: 2,
    Resource.RESTORES: 3,
}
#: First reads up to this place in NEW_ORDER (discovery, backups, schedules) go before the periodic
#: tiers' own shares; restores only take what is idle.
PRIORITY_FIRST_READS = 2
#: The tiers that hold their own shares back during the warm-up.
HELD_IN_WARMUP = frozenset((Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW))


#: Share of the budget each bucket refills at. The remaining 10% absorbs new resources, extra pages and
#: retries.
BUCKET_SHARES: Mapping[str, float] = {"fast": 0.30, "floor": 0.20, "slow": 0.40}
#: How much each bucket may save up, in seconds of its refill: the fast tier absorbs a cluster of runs.
BUCKET_BURST_SECONDS: Mapping[str, float] = {"fast": 600.0, "floor": 300.0, "slow": 300.0}
#: The global bucket paces the whole budget over the hour, with this much of it available at once.
GLOBAL_BURST_SHARE = 0.1

# -- backups: when a listing is worth a request -----------------------------------------------------------

#: The first look at a scheduled run: this fraction of the typical duration after the run time (the
#: short end of how long a run takes: a look earlier than that is almost always wasted).
FIRST_CHECK_FRACTION = 0.6
#: Follow-ups while a backup runs (or its run has not started yet): this fraction of its typical
#: duration apart, clamped to [MIN_FOLLOW_UP, MAX_FOLLOW_UP].
FOLLOW_UP_FRACTION = 0.15
MIN_FOLLOW_UP = 60.0
MAX_FOLLOW_UP = 300.0
#: A scheduled run's backup is initiated within two minutes of its time: without one after this long,
#: the run is late or missed, and the planner stops waiting for it (the floor still looks).
START_WINDOW = 180.0
#: A backup initiated up to this long before a run belongs to that run (Northflank may start early): the
#: same tolerance as the missed-run verdicts'.
EARLY_START = float(EARLY_START_SECONDS)
#: A backup running longer than this many typical durations plus GIVE_UP_SLACK is followed only by
#: the floor: it is stuck, or far off what its history says.
GIVE_UP_FACTOR = 3.0
GIVE_UP_SLACK = 900.0
#: The typical duration assumed before an addon has a completed backup to learn it from.
DEFAULT_TYPICAL_DURATION = 300.0
#: The floor refreshes an addon at most this often unless ``max_staleness`` says otherwise.
FLOOR_CEILING = HOUR
#: Addons without a schedule are floored this many times as often: it is the only way to see their
#: (manual) backups, while a scheduled addon's floor rarely finds anything its schedule did not predict.
UNSCHEDULED_FLOOR_FACTOR = 4.0
#: A failed refresh is retried after this, doubling per consecutive failure, up to its usual interval.
RETRY_BASE = 60.0

#: Among refreshes due at the same time in a tier, discovery's listings go first: they find the others.
RESOURCE_RANK: Mapping[Resource, int] = {
    Resource.PROJECTS: 0,
    Resource.ADDONS: 1,
    Resource.BACKUP_DESTINATIONS: 2,
    Resource.SCHEDULES: 3,
    Resource.BACKUPS: 4,
    Resource.RESTORES: 5,
}
#: The targets the planner reads; the other resources (a destination's own backups) are read by no tier.
PLANNED_RESOURCES = frozenset(RESOURCE_RANK)


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One listing to read: ``resource`` is projects, addons (of ``project``), the backup destinations,
    or an addon's backups, schedules or restores."""

    resource: Resource
    project: str = ""
    addon: str = ""

    def __post_init__(self) -> None:
        # A target the loop cannot dispatch would be planned forever and never read.
        if not isinstance(self.resource, Resource) or self.resource not in PLANNED_RESOURCES:
            raise ValueError(f"the planner does not read {self.resource!r}")
        if self.resource.per_addon != bool(self.addon):
            raise ValueError(f"{self.resource} is not read for addon {self.addon!r}")

    @property
    def key(self) -> AddonKey:
        return (self.project, self.addon)


PROJECTS = Target(Resource.PROJECTS)
DESTINATIONS = Target(Resource.BACKUP_DESTINATIONS)


@dataclass(frozen=True, slots=True)
class Plan:
    """When a target is next due, in which tier, and why (for logs and tests)."""

    due: float
    tier: Tier
    reason: str


# -- pure decisions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """The knobs (flags) of the planner."""

    #: The longest an addon's backups may go unread; None: as often as the floor's share allows, at most
    #: hourly.
    max_staleness: float | None = None
    discovery_interval: float = defaults.DISCOVERY_INTERVAL
    schedules_interval: float = defaults.SCHEDULES_INTERVAL
    restores_interval: float = defaults.RESTORES_INTERVAL
    #: Refreshes in flight at most.
    concurrency: int = defaults.CONCURRENCY


@dataclass(frozen=True, slots=True)
class Cadence:
    """The intervals of the periodic tiers, once fitted to the budget."""

    #: Each scheduled addon's backups are read at least this often.
    floor: float
    #: Each addon without a schedule: ``floor / UNSCHEDULED_FLOOR_FACTOR``.
    floor_unscheduled: float
    discovery: float
    schedules: float
    restores: float


def fit_cadence(
    budget: float,
    *,
    addons: int,
    floor_addons: int,
    discovery_items: int,
    settings: PlannerSettings,
    unscheduled_addons: int = 0,
) -> Cadence:
    """The periodic intervals for a fleet and a budget (requests per hour).

    The floor: ``max_staleness`` when set; otherwise the floor's share of the budget spread over the
    ``floor_addons`` (those no hourly schedule refreshes anyway; the ``unscheduled_addons`` among them
    count UNSCHEDULED_FLOOR_FACTOR times), but not more often than hourly. The slow tiers: their
    configured intervals, stretched to fit their share; discovery first (up to half of it), then
    schedules and restores stretched by the same factor.
    """
    floor_rate = BUCKET_SHARES["floor"] * budget
    if settings.max_staleness is not None:
        floor = settings.max_staleness
    else:
        weighted = floor_addons + (UNSCHEDULED_FLOOR_FACTOR - 1) * unscheduled_addons
        floor = max(FLOOR_CEILING, weighted * HOUR / floor_rate)
    slow_rate = BUCKET_SHARES["slow"] * budget
    discovery_rate = discovery_items * HOUR / settings.discovery_interval
    discovery_share = slow_rate / 2
    discovery = settings.discovery_interval * max(1.0, discovery_rate / discovery_share)
    rest = slow_rate - min(discovery_rate, discovery_share)
    per_addon = addons * HOUR / settings.schedules_interval + addons * HOUR / settings.restores_interval
    stretch = max(1.0, per_addon / rest)
    return Cadence(
        floor=floor,
        floor_unscheduled=floor / UNSCHEDULED_FLOOR_FACTOR,
        discovery=discovery,
        schedules=settings.schedules_interval * stretch,
        restores=settings.restores_interval * stretch,
    )


def retry_delay(failures: int, interval: float) -> float:
    """How long after its latest failure a target is tried again: doubling, up to its usual interval."""
    return min(interval, RETRY_BASE * 2.0 ** min(failures - 1, 30))


@dataclass(frozen=True, slots=True)
class PeriodicView:
    """What the planner knows of a periodic target."""

    known_since: float
    last_attempt: float | None = None
    last_success: float | None = None
    failures: int = 0


def plan_periodic(view: PeriodicView, *, interval: float, tier: Tier, first: Tier = Tier.NEW) -> Plan:
    """Never read: due at once, in the ``first`` tier. Else ``interval`` after the last success, or a
    backed-off retry after a failure."""
    if view.last_attempt is None:
        return Plan(view.known_since, first, "new")
    if view.failures:
        return Plan(view.last_attempt + retry_delay(view.failures, interval), tier, "retry")
    last = view.last_success if view.last_success is not None else view.last_attempt
    return Plan(last + interval, tier, "periodic")


@dataclass(frozen=True, slots=True)
class BackupsView:
    """What the planner knows of an addon's backups: the last successful read and what it said."""

    known_since: float
    last_attempt: float | None = None
    #: When the listing was last read successfully (the snapshot's refresh time).
    last_success: float | None = None
    failures: int = 0
    summary: BackupSummary | None = None
    #: The addon's schedules (empty: none, or not known yet).
    calendars: tuple[ScheduleCalendar, ...] = ()


def typical_duration(summary: BackupSummary | None) -> float:
    if summary is None or summary.typical_duration_seconds is None:
        return DEFAULT_TYPICAL_DURATION
    return max(1.0, summary.typical_duration_seconds)


def follow_up_gap(typical: float) -> float:
    return min(MAX_FOLLOW_UP, max(MIN_FOLLOW_UP, FOLLOW_UP_FRACTION * typical))


def pending_run(
    calendars: Iterable[ScheduleCalendar], *, read_at: float, last_initiated: float | None
) -> float | None:
    """The scheduled run the addon's next backup is expected from, as of a read at ``read_at``.

    The earliest run after both the newest backup's initiation (a backup initiated up to EARLY_START
    before a run counts as that run's) and ``read_at - START_WINDOW`` (a run that had not started that
    long after its time is late or missed: waiting on it would never end).
    """
    anchor = read_at - START_WINDOW
    if last_initiated is not None:
        anchor = max(anchor, last_initiated + EARLY_START)
    return min((c.next_run(anchor) for c in calendars), default=None)


def plan_backups(view: BackupsView, *, floor: float, floor_unscheduled: float | None = None) -> Plan:
    """When an addon's backups are next worth a request, from what the last read said.

    The earliest of: the floor (``floor`` after the last read, ``floor_unscheduled`` when the addon has
    no known schedule); a follow-up while a backup is in
    progress (from a fraction of its typical duration after it started, then every follow-up gap, until
    it is far past its typical duration); and the pending scheduled run's first check (a fraction of
    the typical duration after the run time), or, when that check found the run not started yet, a
    follow-up until it is too late to start.
    """
    if view.last_attempt is None:
        return Plan(view.known_since, Tier.NEW, "new")
    read_at = view.last_success
    if read_at is None:
        return Plan(view.last_attempt + retry_delay(max(1, view.failures), floor), Tier.FLOOR, "retry")
    summary = view.summary
    typical = typical_duration(summary)
    gap = follow_up_gap(typical)
    if not view.calendars and floor_unscheduled is not None:
        floor = floor_unscheduled
    best = Plan(read_at + floor, Tier.FLOOR, "floor")
    started = summary.in_progress_started_at if summary is not None else None
    if started is not None and read_at < started + GIVE_UP_FACTOR * typical + GIVE_UP_SLACK:
        due = max(read_at + gap, started + FIRST_CHECK_FRACTION * typical)
        if due <= best.due:
            best = Plan(due, Tier.FAST, "in-progress")
    run = pending_run(
        view.calendars,
        read_at=read_at,
        last_initiated=summary.last_initiated_at if summary is not None else None,
    )
    if run is not None:
        first = run + FIRST_CHECK_FRACTION * typical
        plan = (
            Plan(first, Tier.FAST, "scheduled-run")
            if read_at < first
            else Plan(read_at + gap, Tier.FAST, "run-not-started")
        )
        if plan.due <= best.due:
            best = plan
    if view.failures:
        retry = view.last_attempt + retry_delay(view.failures, floor)
        if retry > best.due:
            best = replace(best, due=retry, reason="retry")
    return best

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
#: others), then the fast tier at once (it takes what the other tiers leave: see fit_shares), then the
#: others catching up.
BORROW_ORDER = (Tier.NEW, Tier.FAST, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
#: Once the first reads left are restores' (see PRIORITY_FIRST_READS), they come after the fast tier too:
#: at 1000 addons they would otherwise take every idle token for hours while runs wait to be read.
BORROW_ORDER_LATE_FIRST_READS = (Tier.FAST, Tier.NEW, Tier.DISCOVERY, Tier.FLOOR, Tier.SLOW)
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


#: The most of the budget each capped tier's bucket refills at: the floor's and the slow tier's are caps
#: (they get what their fitted cadence spends, at most this: see fit_shares); the fast tier's is its least
#: (it gets what the others leave).
BUCKET_SHARES: Mapping[str, float] = {"fast": 0.30, "floor": 0.20, "slow": 0.40}
#: Share of the budget no bucket refills at: it absorbs new resources, extra pages and retries.
SPARE_SHARE = 0.10
#: The floor and the slow tier refill at this many times what their cadence spends (within their caps):
#: room to catch up after the warm-up or an outage, since the fast tier borrows every idle token first.
SHARE_HEADROOM = 2.0
#: How much each bucket may save up, in seconds of its refill: the fast tier absorbs a cluster of runs.
BUCKET_BURST_SECONDS: Mapping[str, float] = {"fast": 600.0, "floor": 300.0, "slow": 300.0}
#: The global bucket paces the whole budget over the hour, with this much of it available at once.
GLOBAL_BURST_SHARE = 0.1

# -- backups: when a listing is worth a request -----------------------------------------------------------

#: The first look at a scheduled run: this fraction of the typical duration after the run time (the
#: short end of how long a run takes: a look earlier than that is almost always wasted).
FIRST_CHECK_FRACTION = 0.6
#: Once the floor is stretched past hourly (the budget is short), a scheduled run's first look also waits
#: this long for the run to start (runs start up to two minutes after their time): a look before the
#: backup can have ended costs a request the fast tier then lacks for another addon's run.
START_ALLOWANCE = 120.0
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
#: Once the floor is stretched past hourly, an addon whose runs come at least this often is floored no
#: more often than its runs come: each run's fast checks read it anyway, so the floor between runs would
#: only find a manual backup, and the fast tier spends that budget on every addon's runs instead.
RUN_FLOOR_MAX = 24 * HOUR
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


@dataclass(frozen=True, slots=True)
class Shares:
    """What each capped tier's token bucket refills at, in requests per hour."""

    fast: float
    floor: float
    slow: float

    def items(self) -> tuple[tuple[str, float], ...]:
        return (("fast", self.fast), ("floor", self.floor), ("slow", self.slow))


def fit_shares(
    budget: float,
    cadence: Cadence,
    *,
    addons: int,
    floor_addons: int,
    discovery_items: int,
    unscheduled_addons: int = 0,
    run_floored_addons: int = 0,
) -> Shares:
    """The buckets' rates for a fleet, its fitted ``cadence`` and a budget (requests per hour).

    The slow tier (discovery, schedules, restores) and the floor get SHARE_HEADROOM times what their
    cadence spends, at most their BUCKET_SHARES; the fast tier gets the rest but SPARE_SHARE, at least
    its own BUCKET_SHARES.
    The floor's spending counts the ``unscheduled_addons`` at ``floor_unscheduled`` and the other
    ``floor_addons`` at ``floor``, but not the ``run_floored_addons`` among them while the floor is
    stretched past hourly (their runs refresh them: see RUN_FLOOR_MAX). So when the fleet is too big for
    the budget, every request not needed by discovery, schedules, restores and the floor goes to reading
    scheduled runs' backups as they end, instead of a fixed share of them.
    """
    slow = min(
        BUCKET_SHARES["slow"] * budget,
        SHARE_HEADROOM
        * (
            discovery_items * HOUR / cadence.discovery
            + addons * HOUR / cadence.schedules
            + addons * HOUR / cadence.restores
        ),
    )
    floored = floor_addons - unscheduled_addons
    if cadence.floor > FLOOR_CEILING:
        floored -= run_floored_addons
    floor = min(
        BUCKET_SHARES["floor"] * budget,
        SHARE_HEADROOM
        * (max(0, floored) * HOUR / cadence.floor + unscheduled_addons * HOUR / cadence.floor_unscheduled),
    )
    fast = max(BUCKET_SHARES["fast"] * budget, (1.0 - SPARE_SHARE) * budget - slow - floor)
    return Shares(fast=fast, floor=floor, slow=slow)


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
    #: When the latest webhook event named this addon, and this addon's project (None: never).
    pushed_at: float | None = None
    project_pushed_at: float | None = None
    #: Whether webhook deliveries are being lost (:mod:`exporter.planner.losses`): pushed or not, the
    #: addon is then polled as usual.
    push_lossy: bool = False


# -- webhook push: what is left to polling when Northflank says when a backup ends -------------------------

#: A pushed addon's fast checks wait for its events: its first check comes ``push_fallback`` after the run
#: (or the start of the backup in progress), to catch a lost delivery. The shorter the budget (the more
#: the floor is stretched past hourly), the later: a check that comes before the backup ends costs a
#: request the event would have saved (a run lasts over its typical duration half the time, over 1.5
#: typical durations ~9% of it). One typical duration up to a floor stretched PUSH_FALLBACK_KNEE times,
#: then a tenth more per stretch, up to PUSH_FALLBACK_MAX; plus PUSH_FALLBACK_SLACK (a run starts up to
#: two minutes late).
PUSH_FALLBACK_KNEE = 5.0
PUSH_FALLBACK_PER_STRETCH = 0.1
PUSH_FALLBACK_MAX = 1.5
PUSH_FALLBACK_SLACK = 120.0
#: A pushed addon with a schedule is floored at least this far apart: each event reads it; the floor is
#: left to catch what the webhook lost. (An addon without one keeps its floor: a lost event of a manual
#: backup is seen as soon as without a webhook.)
PUSH_FLOOR = 26 * HOUR
#: An addon never named by an event counts as pushed while its project was named this recently (an
#: integration may cover only some projects).
PUSH_TRUST = 2 * HOUR
#: The exporter's and the API's clocks may differ this much when an event is compared with a backup.
PUSH_SKEW = 300.0


def push_covered(view: BackupsView) -> bool:
    """Whether the webhook is expected to say when this addon's next backup ends: an event named the
    addon after its newest known backup was initiated (a backup initiated after the latest event is one
    whose delivery was lost: polled as usual until an event comes again); or, never named itself, its
    project was named within PUSH_TRUST of the last read."""
    summary = view.summary
    last = summary.last_initiated_at if summary is not None else None
    if view.pushed_at is not None:
        return last is None or view.pushed_at >= last - PUSH_SKEW
    read_at = view.last_success
    return (
        view.project_pushed_at is not None
        and read_at is not None
        and view.project_pushed_at >= read_at - PUSH_TRUST
    )


#: A backup end read this soon after it ended may have its event still on the way: judged at a later read.
PUSH_DELIVERY_GRACE = 120.0


def unannounced(ended_at: float, event_at: float | None, *, read_at: float) -> bool | None:
    """Whether a backup that ended at ``ended_at`` (the API's time) came with no event: the latest backup
    end event for its addon (None: none yet) came before it, beyond the clocks' PUSH_SKEW. None: too
    early to say, as of a read at ``read_at`` (an event is awaited for PUSH_DELIVERY_GRACE)."""
    if event_at is not None and event_at >= ended_at - PUSH_SKEW:
        return False
    return None if read_at < ended_at + PUSH_DELIVERY_GRACE else True


def push_fallback(typical: float, stretch: float) -> float:
    """How long after a run (or a backup's start) a pushed addon is checked anyway, for a floor stretched
    ``stretch`` times past hourly."""
    over = max(0.0, stretch - PUSH_FALLBACK_KNEE)
    factor = min(PUSH_FALLBACK_MAX, 1.0 + PUSH_FALLBACK_PER_STRETCH * over)
    return factor * typical + PUSH_FALLBACK_SLACK


def typical_duration(summary: BackupSummary | None) -> float:
    if summary is None or summary.typical_duration_seconds is None:
        return DEFAULT_TYPICAL_DURATION
    return max(1.0, summary.typical_duration_seconds)


def follow_up_gap(typical: float) -> float:
    return min(MAX_FOLLOW_UP, max(MIN_FOLLOW_UP, FOLLOW_UP_FRACTION * typical))


def run_interval(calendars: Iterable[ScheduleCalendar]) -> float | None:
    """The longest gap between two runs of the addon's most frequent schedule (None: no schedule)."""
    return min((c.max_interval_seconds for c in calendars), default=None)


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


def plan_backups(
    view: BackupsView,
    *,
    floor: float,
    floor_unscheduled: float | None = None,
    floor_by_runs: bool = True,
) -> Plan:
    """When an addon's backups are next worth a request, from what the last read said.

    The earliest of: the floor (``floor`` after the last read, ``floor_unscheduled`` when the addon has
    no known schedule; when the floor is stretched past hourly and ``floor_by_runs`` (the floor is not a
    configured max staleness: that is a promise), no less than the gap between its runs if they come at
    least every RUN_FLOOR_MAX); a follow-up while a backup is in
    progress (from a fraction of its typical duration after it started, then every follow-up gap, until
    it is far past its typical duration); and the pending scheduled run's first check (a fraction of
    the typical duration after the run time, START_ALLOWANCE later when the floor is stretched), or,
    when that check found the run not started yet, a follow-up until it is too late to start.
    """
    if view.last_attempt is None:
        return Plan(view.known_since, Tier.NEW, "new")
    read_at = view.last_success
    if read_at is None:
        return Plan(view.last_attempt + retry_delay(max(1, view.failures), floor), Tier.FLOOR, "retry")
    summary = view.summary
    typical = typical_duration(summary)
    gap = follow_up_gap(typical)
    stretch = floor / FLOOR_CEILING
    unscheduled = not view.calendars and floor_unscheduled is not None
    if unscheduled and floor_unscheduled is not None:
        floor = floor_unscheduled
    runs_every = run_interval(view.calendars)
    if floor_by_runs and stretch > 1 and runs_every is not None and runs_every <= RUN_FLOOR_MAX:
        # The budget is short: its runs refresh it; the floor waits for a run that did not come.
        floor = max(floor, runs_every)
    # Only when the budget is short (the floor stretched past hourly): with room to spare, polling as
    # usual costs little and catches a lost delivery as soon as without a webhook.
    # Nor while deliveries are being lost: the late fallback would then see a lost backup later than
    # polling alone.
    pushed = stretch > 1 and not view.push_lossy and push_covered(view)
    first_check = FIRST_CHECK_FRACTION * typical
    if pushed:
        if not unscheduled:
            floor = max(floor, PUSH_FLOOR)
        first_check = push_fallback(typical, stretch)
    best = Plan(read_at + floor, Tier.FLOOR, "floor")
    started = summary.in_progress_started_at if summary is not None else None
    if started is not None and read_at < started + GIVE_UP_FACTOR * typical + GIVE_UP_SLACK:
        due = max(read_at + gap, started + first_check)
        if due <= best.due:
            best = Plan(due, Tier.FAST, "in-progress")
    run = pending_run(
        view.calendars,
        read_at=read_at,
        last_initiated=summary.last_initiated_at if summary is not None else None,
    )
    if run is not None:
        first = run + first_check
        if stretch > 1 and not pushed:
            first += START_ALLOWANCE
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

"""The refresh planner: what to read from the Northflank API next, and when, within the request budget.

Every listing the exporter reads is a *target* (the projects, a project's addons, the destinations with
their backups, and each addon's backups, schedules and restores) with a *plan*: when it is next due and
in which *tier*. The plans are pure functions of what the last reads said (:func:`plan_backups`,
:func:`plan_periodic`); the :class:`Planner` only keeps them in queues and starts the due ones as the
budget allows.

Readiness: the snapshot is marked ready once discovery has succeeded, i.e. the projects were listed
successfully and every listed project's addon listing was answered (successfully or not: a project
whose listing fails is retried and counted, it does not hold readiness). From then on the exporter
serves what it has; ``northflank_exporter_initial_read_ratio`` shows how far the first reads are.

The projects listing goes first and alone at start, in a forced pass (:meth:`PlanningLoop.read_everything`)
and while the token is refused (a 401 anywhere sends it at once): any other listing would be refused
too, so one request says whether the token works; the rest follows once it is answered otherwise.

Tiers, in priority order:

``fast``
    Backup listings when something is expected to have changed: a first look a fraction of the addon's
    typical backup duration (learned from its history) after each scheduled run, then a follow-up every
    ~15% of that duration (at least a minute apart) while the run has not started or its backup is in
    progress, until it reaches a final state. A backup in progress found any other way (a manual one)
    is followed the same way. The only *essential* refreshes: they still go out when the account's
    rate limit is in its reserve.
``new``
    The first read of anything discovery found, at once, in this order: discovery's own listings, then
    every addon's backups (the *warm-up*: then each addon's last backup is known), then schedules, then
    restores. Until every addon's backups and schedules have been read once, these first reads also go
    before the discovery, floor and slow tiers' own shares (a refresh of theirs more than WARMUP_HOLD
    overdue still goes): the warm-up takes about what one request per addon costs, and the schedules
    that the fast tier plans by are known soon after.
``discovery``
    The projects, each project's addons, the destinations: every ``discovery_interval``.
``floor``
    Each addon's backups at least every ``max_staleness`` (four times as often for an addon without a
    schedule), oldest first: manual backups and anything the schedules do not predict are still seen.
``slow``
    Schedules and restores, every ``schedules_interval`` / ``restores_interval``.

How the budget is spent. Three token buckets refill at shares fitted to the fleet
(:func:`~exporter.planner.policy.fit_shares`): discovery and slow together twice what their cadence
spends, at most 40%; the floor twice what it spends, at most 20%; the fast tier the rest but a spare
10% (at least 30%). A global bucket refills at the whole budget (paced over the hour, with a tenth of it
available at once). A due refresh starts when its tier's bucket and the global one have the tokens (its
expected cost: the page count of its last read); what the capped tiers leave unused in the global bucket
goes first to ``new`` (finite: it cannot starve anyone), then to ``fast`` at once (it takes what the
other tiers leave), then to the others catching up. Once the floor is stretched past hourly, an addon
whose runs come at least daily is floored by its runs, a run's first look allows two minutes for the
run to start, and restores' first reads borrow after the fast tier: the budget goes to reading runs as
they end. The request gate
(:class:`~exporter.budget.RequestBudget`) still holds every request to the rolling-hour budget, the
reserve and any 429. So no tier starves another, and a small fleet spends only what its plans need.

When the fleet is too big for the budget: the floor and slow intervals are fitted to their shares
(:func:`fit_cadence`) and stretch evenly (``northflank_exporter_stalest_refresh_age_seconds`` and
``northflank_exporter_planned_interval_seconds`` show by how much); the fast tier's due checks queue
earliest-due first, so the spacing of checks widens evenly across addons instead of some addons going
unchecked, and each check tends to find its backup final (fewer requests per backup).

Within a tier the earliest due goes first; a target is never refreshed twice at once. The planner waits
on an :class:`asyncio.Event` (set when a refresh ends or stop is asked) with a timeout to the next due
time or the next token: it never polls. Everything reads the injected clock: under a virtual clock
(:mod:`exporter.virtual_time`) its decisions are deterministic.
"""

from exporter.buckets import TokenBucket
from exporter.metrics import NEXT_REFRESH
from exporter.planner.loop import PlanningLoop, Refreshes
from exporter.planner.metrics import NextRefreshRenderer, PlannerCollector, initial_read_ratio
from exporter.planner.policy import (
    BUCKET_SHARES,
    DESTINATIONS,
    EARLY_START,
    FIRST_CHECK_FRACTION,
    FLOOR_CEILING,
    GIVE_UP_FACTOR,
    GIVE_UP_SLACK,
    HOUR,
    MIN_FOLLOW_UP,
    PROJECTS,
    RETRY_BASE,
    START_WINDOW,
    UNSCHEDULED_FLOOR_FACTOR,
    WARMUP_HOLD,
    BackupsView,
    Cadence,
    PeriodicView,
    Plan,
    PlannerSettings,
    Target,
    Tier,
    fit_cadence,
    follow_up_gap,
    pending_run,
    plan_backups,
    plan_periodic,
    retry_delay,
    typical_duration,
)
from exporter.planner.scheduler import Planner

__all__ = [
    "BUCKET_SHARES",
    "DESTINATIONS",
    "EARLY_START",
    "FIRST_CHECK_FRACTION",
    "FLOOR_CEILING",
    "GIVE_UP_FACTOR",
    "GIVE_UP_SLACK",
    "HOUR",
    "MIN_FOLLOW_UP",
    "NEXT_REFRESH",
    "PROJECTS",
    "RETRY_BASE",
    "START_WINDOW",
    "UNSCHEDULED_FLOOR_FACTOR",
    "WARMUP_HOLD",
    "BackupsView",
    "Cadence",
    "NextRefreshRenderer",
    "PeriodicView",
    "Plan",
    "Planner",
    "PlannerCollector",
    "PlannerSettings",
    "PlanningLoop",
    "Refreshes",
    "Target",
    "Tier",
    "TokenBucket",
    "fit_cadence",
    "follow_up_gap",
    "initial_read_ratio",
    "pending_run",
    "plan_backups",
    "plan_periodic",
    "retry_delay",
    "typical_duration",
]

"""Every metric family the exporter exposes, declared once: name (as exposed), type, help, label names, unit.

The modules that write samples (``collector.py`` for the snapshot, ``exposition.py`` for render errors,
``northflank/metrics.py`` for the API client, ``poller.py``, ``budget.py``, ``web/connections.py``) take
their families from here and declare none of their own, so /metrics has one list to read and
:data:`FAMILIES` checks, at import (that is, at start), that no name is declared twice, nor collides with
another family's samples (a counter's ``_total``, a histogram's ``_bucket``/``_sum``/``_count``).

To add a group of families (the planner's, say): declare them here as :class:`Family` values in a tuple
(``PLANNER_FAMILIES``), add that tuple to the ``unique(...)`` call that builds :data:`FAMILIES`, and have
the module that writes them use ``family.name``, ``family.help`` and ``family.labels``.
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.exposition import Family
from exporter.resources import Resource


class DuplicateMetricError(ValueError):
    """Two families declare the same name, or one's samples would carry another's name."""


def sample_names(family: Family) -> tuple[str, ...]:
    """The names the family's samples (and its HELP/TYPE) can carry."""
    if family.type == "counter":
        base = family.name.removesuffix("_total")
        return (base, f"{base}_total")
    if family.type in ("histogram", "summary"):
        suffixes = ("_bucket", "_sum", "_count") if family.type == "histogram" else ("_sum", "_count")
        return (family.name, *(family.name + suffix for suffix in suffixes))
    return (family.name,)


def unique(*groups: Iterable[Family]) -> tuple[Family, ...]:
    """The families of every group, in order; raises DuplicateMetricError when two share a name."""
    families: list[Family] = []
    owner: dict[str, str] = {}
    for group in groups:
        for family in group:
            for name in sample_names(family):
                if name in owner:
                    raise DuplicateMetricError(
                        f"metric name {name} is declared twice (by {owner[name]} and by {family.name})"
                    )
                owner[name] = family.name
            families.append(family)
    return tuple(families)


# --- The snapshot's families (rendered by collector.py) --------------------------------------------------

_FRESHNESS = (
    " Read by the exporter's background poll of the Northflank API, not at scrape time: as fresh as"
    ' northflank_exporter_last_refresh_timestamp_seconds{{resource="{resource}"}} says.'
)
ADDON_LABELS = ("project", "addon")
SCHEDULE_LABELS = ("project", "addon", "schedule")


def _family(name: str, text: str, labels: tuple[str, ...] = (), resource: Resource | None = None) -> Family:
    unit = next((unit for unit in ("seconds", "bytes", "ratio") if name.endswith(f"_{unit}")), "")
    return Family(
        name, text + (_FRESHNESS.format(resource=resource) if resource is not None else ""), labels, unit=unit
    )


UP = _family(
    "northflank_up",
    "1 when the exporter can read the Northflank API: 0 when its last discovery of projects failed or has "
    "not run yet, or when any resource fails for every subject "
    "(northflank_exporter_resource_up says which).",
)
RESOURCE_UP = _family(
    "northflank_exporter_resource_up",
    "0 when the Northflank API refuses or fails every read of the resource: of the latest reads per "
    "project, addon or destination, none succeeded and at least one failed with an auth, permission, "
    "server, timeout or connection error (for projects: the last discovery failed or has not run yet). "
    "A read failing for another reason (a deleted addon's 404) is left out, and one failing subject "
    "among readable ones leaves it at 1.",
    ("resource",),
)
BUILD_INFO = _family("northflank_exporter_build_info", "Version of northflank-backup-exporter.", ("version",))
ADDON_INFO = _family(
    "northflank_addon_info",
    "Names and type of each Northflank addon the exporter discovered; join on (project, addon).",
    (*ADDON_LABELS, "addon_name", "project_name", "addon_type"),
)
BACKUP_AGE = _family(
    "northflank_addon_backup_last_completed_age_seconds",
    "Seconds between the scrape and the completion of the newest completed backup of the addon.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
BACKUPS_BY_STATUS = _family(
    "northflank_addon_backups",
    "Backups the addon retains, by status; every status is present, 0 when none.",
    (*ADDON_LABELS, "status"),
    Resource.BACKUPS,
)
BACKUPS_FUTURE_DATED = _family(
    "northflank_addon_backups_future_dated",
    "Backups of the addon initiated or completed more than 5 minutes after the API's current time (its "
    "Date header's clock) when read: left out of every other backup metric of the addon, as a time "
    "that has not come yet cannot make the addon look freshly backed up.",
    ADDON_LABELS,
    Resource.BACKUPS,
)

LAST_COMPLETED = _family(
    "northflank_addon_backup_last_completed_timestamp_seconds",
    "When the newest completed backup of the addon completed (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_COMPLETED_SIZE = _family(
    "northflank_addon_backup_last_completed_size_bytes",
    "Size of the newest completed backup of the addon.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_COMPLETED_DURATION = _family(
    "northflank_addon_backup_last_completed_duration_seconds",
    "How long the newest completed backup of the addon took, from initiation to completion.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
LAST_FAILED = _family(
    "northflank_addon_backup_last_failed_timestamp_seconds",
    "When the newest failed or aborted backup attempt of the addon ended (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)
CONSECUTIVE_FAILURES = _family(
    "northflank_addon_backup_consecutive_failures",
    "Failed or aborted backup attempts of the addon initiated after its newest completed backup.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
BACKUPS_SIZE = _family(
    "northflank_addon_backups_size_bytes",
    "Total size of the completed backups the addon retains.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
OLDEST_COMPLETED = _family(
    "northflank_addon_backup_oldest_completed_timestamp_seconds",
    "When the oldest retained completed backup of the addon completed: the start of its recovery window.",
    ADDON_LABELS,
    Resource.BACKUPS,
)
IN_PROGRESS_STARTED = _family(
    "northflank_addon_backup_in_progress_started_timestamp_seconds",
    "When the oldest backup of the addon that has not reached a final state was initiated (unix time).",
    ADDON_LABELS,
    Resource.BACKUPS,
)

SCHEDULE_COVERED = _family(
    "northflank_addon_backup_schedule_covered",
    "1 when the addon has at least one backup schedule, 0 when it has none.",
    ADDON_LABELS,
    Resource.SCHEDULES,
)
COVERAGE_RATIO = _family(
    "northflank_project_backup_schedule_coverage_ratio",
    "Share of the project's addons that have at least one backup schedule (0-1).",
    ("project",),
    Resource.SCHEDULES,
)
SCHEDULE_INFO = _family(
    "northflank_addon_backup_schedule_info",
    "Each backup schedule of an addon: its interval, backup type and compression (none for snapshots).",
    (*SCHEDULE_LABELS, "interval", "backup_type", "compression"),
)
SCHEDULE_RETENTION = _family(
    "northflank_addon_backup_schedule_retention_seconds",
    "How long the backups of the schedule are retained.",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_NEXT = _family(
    "northflank_addon_backup_schedule_next_run_timestamp_seconds",
    "The next run of the schedule after the scrape (unix time; schedules are in UTC).",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_PREVIOUS = _family(
    "northflank_addon_backup_schedule_previous_run_timestamp_seconds",
    "The latest run of the schedule at or before the scrape (unix time).",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
SCHEDULE_MAX_INTERVAL = _family(
    "northflank_addon_backup_schedule_max_interval_seconds",
    "The longest gap between two consecutive runs of the schedule.",
    SCHEDULE_LABELS,
    Resource.SCHEDULES,
)
_RUN_WINDOW = (
    "a run is missed when no backup of the schedule's type was initiated from 5 minutes before it to "
    "the grace period (--backup.schedule-grace) after it (or to shortly before the next run)"
)
SCHEDULE_MISSED = _family(
    "northflank_addon_backup_schedule_missed",
    f"1 when the newest run of the schedule whose grace period has ended was missed: {_RUN_WINDOW}.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
SCHEDULE_MISSED_RUNS = _family(
    "northflank_addon_backup_schedule_missed_runs",
    f"Runs of the schedule in the 24 hours before the scrape that were missed, once their grace period "
    f"has ended: {_RUN_WINDOW}. Runs whose backup would have expired are not judged.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
SCHEDULE_LAST_MISSED = _family(
    "northflank_addon_backup_schedule_last_missed_run_timestamp_seconds",
    "When the newest missed run of the schedule was due (unix time), within the last 2 days for hourly "
    "schedules and the last 35 days (at most the retention) for the others; absent when none was missed.",
    SCHEDULE_LABELS,
    Resource.BACKUPS,
)
RESTORES = _family(
    "northflank_addon_restores",
    "Restores of the addon's backups, by status; every status is present, 0 when none.",
    (*ADDON_LABELS, "status"),
    Resource.RESTORES,
)
RESTORE_LAST = _family(
    "northflank_addon_restore_last_timestamp_seconds",
    "When the newest restore of the addon with this status completed, or was requested if it has not.",
    (*ADDON_LABELS, "status"),
    Resource.RESTORES,
)
DESTINATION_INFO = _family(
    "northflank_backup_destination_info",
    "Each custom backup destination (S3 bucket) of the account, by id with its name.",
    ("destination", "destination_name"),
)
DESTINATION_BACKUPS = _family(
    "northflank_backup_destination_backups",
    "Backups stored in the destination, by status; every status is present, 0 when none.",
    ("destination", "status"),
    Resource.DESTINATION_BACKUPS,
)
DESTINATION_SIZE = _family(
    "northflank_backup_destination_size_bytes",
    "Total size of the completed backups stored in the destination.",
    ("destination",),
    Resource.DESTINATION_BACKUPS,
)
DESTINATION_LAST = _family(
    "northflank_backup_destination_last_completed_timestamp_seconds",
    "When the newest completed backup of the addon stored in the destination completed (unix time).",
    ("destination", "project", "addon"),
    Resource.DESTINATION_BACKUPS,
)
LAST_REFRESH = _family(
    "northflank_exporter_last_refresh_timestamp_seconds",
    "When the exporter last read each resource from the Northflank API successfully (unix time). project "
    "and addon are empty for account-wide resources.",
    ("project", "addon", "resource"),
)

#: The families of BACKUP_GAUGES (collector.py), in exposition order.
BACKUP_GAUGE_FAMILIES: tuple[Family, ...] = (
    LAST_COMPLETED,
    LAST_COMPLETED_SIZE,
    LAST_COMPLETED_DURATION,
    LAST_FAILED,
    CONSECUTIVE_FAILURES,
    BACKUPS_SIZE,
    OLDEST_COMPLETED,
    IN_PROGRESS_STARTED,
    BACKUPS_FUTURE_DATED,
)

#: Every family of the snapshot, in exposition order.
SNAPSHOT_FAMILIES: tuple[Family, ...] = (
    UP,
    RESOURCE_UP,
    BUILD_INFO,
    ADDON_INFO,
    BACKUP_AGE,
    BACKUPS_BY_STATUS,
    *BACKUP_GAUGE_FAMILIES,
    SCHEDULE_COVERED,
    COVERAGE_RATIO,
    SCHEDULE_INFO,
    SCHEDULE_RETENTION,
    SCHEDULE_NEXT,
    SCHEDULE_PREVIOUS,
    SCHEDULE_MAX_INTERVAL,
    SCHEDULE_MISSED,
    SCHEDULE_MISSED_RUNS,
    SCHEDULE_LAST_MISSED,
    RESTORES,
    RESTORE_LAST,
    DESTINATION_INFO,
    DESTINATION_BACKUPS,
    DESTINATION_SIZE,
    DESTINATION_LAST,
    LAST_REFRESH,
)


# --- The renderer's own counter (exposition.py) -----------------------------------------------------------

RENDER_ERRORS = Family(
    "northflank_exporter_render_errors_total",
    "Series left out of the exposition because they could not be written (a value that is not a number, "
    "say), by the family they belong to, counted at every scrape that leaves them out; an addon that "
    "cannot be written at all counts under northflank_addon_info. The rest of the page is served.",
    ("family",),
    "counter",
)

# --- The request budget (budget.py); ``{window}`` is the rolling window, e.g. ``3600s`` ------------------

API_REQUEST_BUDGET = Family(
    "northflank_exporter_api_request_budget",
    "Northflank API requests the exporter allows itself per rolling {window} "
    "(--northflank.request-budget, else half the x-ratelimit-limit the API announces).",
    (),
)
API_REQUESTS_LAST_HOUR = Family(
    "northflank_exporter_api_requests_last_hour",
    "Northflank API requests (every attempt) the exporter sent in the last {window}; never more "
    "than northflank_exporter_api_request_budget.",
    (),
)
REFRESH_DEFERRED = Family(
    "northflank_exporter_refresh_deferred_seconds",
    "How long from now ordinary refreshes are held back: until the rate-limit window resets "
    "(after a 429, or while the account's remaining requests are below the reserve), or until "
    "the rolling budget has room. 0 when they are not.",
    (),
    unit="seconds",
)
BUDGET_FAMILIES: tuple[Family, ...] = (API_REQUEST_BUDGET, API_REQUESTS_LAST_HOUR, REFRESH_DEFERRED)

# --- The API client (northflank/metrics.py) ---------------------------------------------------------------

API_REQUESTS = Family(
    "northflank_api_requests_total",
    "HTTP requests the exporter sent to the Northflank API, every retry included (each one costs the "
    "account's rate-limit budget), by route template and HTTP status code "
    "(or timeout / connection_error when no response came).",
    ("endpoint", "code"),
    "counter",
)
API_REQUEST_DURATION = Family(
    "northflank_api_request_duration_seconds",
    "Time from sending a request to the Northflank API to the end of reading its response, "
    "per attempt, by route template.",
    ("endpoint",),
    "histogram",
    unit="seconds",
)
API_RATE_LIMIT_LIMIT = Family(
    "northflank_api_rate_limit_limit",
    "Requests the Northflank account may send per rate-limit window, from the x-ratelimit-limit "
    "header of the latest API response that carried the rate-limit headers.",
    (),
)
API_RATE_LIMIT_REMAINING = Family(
    "northflank_api_rate_limit_remaining",
    "Requests left to the Northflank account in the current rate-limit window (shared with every "
    "other client of the account), from the x-ratelimit-remaining header of the latest API response "
    "that carried the rate-limit headers.",
    (),
)
API_RATE_LIMIT_RESET = Family(
    "northflank_api_rate_limit_reset_timestamp_seconds",
    "Unix time at which the Northflank rate-limit window resets: the time of the latest API response "
    "that carried the rate-limit headers plus its x-ratelimit-reset header.",
    (),
    unit="seconds",
)
API_INVALID_HEADERS = Family(
    "northflank_api_invalid_headers_total",
    "Response headers of the Northflank API the exporter ignored because their value made no sense "
    "(not ASCII digits, a wait longer than the 1 h rate-limit window, a Date a day or more off), "
    "by header name.",
    ("header",),
    "counter",
)
INVALID_ITEMS = Family(
    "northflank_exporter_invalid_items_total",
    "Items of a Northflank API listing skipped because they failed validation (the rest of the "
    "listing is kept), by resource.",
    ("resource",),
    "counter",
)
INVALID_VALUES = Family(
    "northflank_exporter_invalid_values_total",
    "Values of listed Northflank API items read as unknown because they made no sense (a size that "
    "is not a number of bytes below 2^63, a timestamp after 2200 or unreadable): the item is kept "
    "without them. By resource.",
    ("resource",),
    "counter",
)
API_FAMILIES: tuple[Family, ...] = (
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_RATE_LIMIT_LIMIT,
    API_RATE_LIMIT_REMAINING,
    API_RATE_LIMIT_RESET,
    API_INVALID_HEADERS,
    INVALID_ITEMS,
    INVALID_VALUES,
)

# --- The refresher (poller.py) ----------------------------------------------------------------------------

REFRESH_ERRORS = Family(
    "northflank_exporter_refresh_errors_total",
    "Failed refreshes of a resource from the Northflank API, by resource and reason. The "
    "resource keeps its last good data meanwhile.",
    ("resource", "reason"),
    "counter",
)

# --- The HTTP side's connection guard (web/connections.py) -----------------------------------------------

HTTP_CONNECTIONS = Family(
    "northflank_exporter_http_connections",
    "HTTP connections open to the exporter (TLS handshakes included).",
    (),
)
HTTP_CONNECTIONS_MAX = Family(
    "northflank_exporter_http_connections_max",
    "The most HTTP connections kept open at once (--web.max-connections, lowered to leave "
    "descriptors below the open files limit for the API client); beyond it they are refused.",
    (),
)
HTTP_CONNECTIONS_REFUSED = Family(
    "northflank_exporter_http_connections_refused_total",
    "HTTP connections refused (503, closed) because the most allowed were open.",
    (),
    "counter",
)
HTTP_READ_TIMEOUTS = Family(
    "northflank_exporter_http_read_timeouts_total",
    "HTTP connections closed because their client did not send a complete request within --web.read-timeout.",
    (),
    "counter",
)
HTTP_ACCEPT_ERRORS = Family(
    "northflank_exporter_http_accept_errors_total",
    "Failed accepts of HTTP connections for want of descriptors or memory (EMFILE, ENFILE...); "
    "the exporter retries each second.",
    (),
    "counter",
)
CONNECTION_FAMILIES: tuple[Family, ...] = (
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_MAX,
    HTTP_CONNECTIONS_REFUSED,
    HTTP_READ_TIMEOUTS,
    HTTP_ACCEPT_ERRORS,
)

#: Every family declared above, once each: building it raises DuplicateMetricError on a clash, so a
#: duplicate stops the exporter at import, before it serves a page Prometheus would reject.
FAMILIES: tuple[Family, ...] = unique(
    SNAPSHOT_FAMILIES,
    (RENDER_ERRORS,),
    BUDGET_FAMILIES,
    API_FAMILIES,
    (REFRESH_ERRORS,),
    CONNECTION_FAMILIES,
)

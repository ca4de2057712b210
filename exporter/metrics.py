"""Every metric family the exporter exposes, declared once: name (as exposed), type, help, label names, unit.

The modules that write samples (``collector.py`` for the snapshot, ``exposition.py`` for render errors,
``northflank/metrics.py`` for the API client, ``poller.py``, ``budget.py``, ``planner/metrics.py``,
``web/connections.py``, ``state/metrics.py``...) take their families from here and declare none of
their own, so /metrics has one list to read and :data:`FAMILIES` checks, at import (that is, at start),
that no name is declared twice, nor collides with another family's samples (a counter's ``_total``, a
histogram's ``_bucket``/``_sum``/``_count``).

To add a group of families: declare them here as :class:`Family` values in a tuple (as
``PLANNER_FAMILIES``), add that tuple to the ``unique(...)`` call that builds :data:`FAMILIES`, and have
the module that writes them use ``family.name``, ``family.help`` and ``family.labels``. The snapshot's
families, the largest group, are declared in ``snapshot_families.py`` (a family of the snapshot goes
there and into its ``SNAPSHOT_FAMILIES``) and exposed from here like every other: import them from here.
"""

from __future__ import annotations

from exporter.exposition import Family, unique

# The snapshot's families (rendered by collector.py) are declared in snapshot_families.py and exposed
# from here with all the others: its __all__ names every one of them.
from exporter.snapshot_families import *  # noqa: F403
from exporter.snapshot_families import SNAPSHOT_FAMILIES

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

# --- The planner (planner/metrics.py), computed at scrape time from its plans and the snapshot ------------

STALEST_REFRESH_AGE = Family(
    "northflank_exporter_stalest_refresh_age_seconds",
    "Seconds since the least recently read addon backup listing was read (or, if never, since "
    "the addon was discovered). Grows when the fleet is too big for the request budget.",
    (),
    unit="seconds",
)
PLANNED_REFRESHES = Family(
    "northflank_exporter_planned_refreshes_total",
    "Refreshes the planner started, by tier: fast (scheduled runs and backups in progress), new "
    "(first reads), discovery, floor (backups not read for a while), slow (schedules, restores).",
    ("tier",),
    "counter",
)
PLANNED_INTERVAL = Family(
    "northflank_exporter_planned_interval_seconds",
    "The refresh interval of each periodic tier after fitting it into the request budget: floor "
    "(each addon's backups at least this often), discovery, schedules, restores.",
    ("tier",),
    unit="seconds",
)
INITIAL_READ_RATIO = Family(
    "northflank_exporter_initial_read_ratio",
    "Share (0 to 1) of the addons the exporter has discovered whose resource (backups, schedules, "
    "restores) it has read successfully at least once: the progress of the first complete read "
    "after start, which reads every addon's backups before any schedule or restore. 0 until the "
    "projects were listed once; 1 when there is no addon.",
    ("resource",),
    unit="ratio",
)
#: Rendered by the planner itself in the text format (one sample per target: thousands in a large fleet).
NEXT_REFRESH = Family(
    "northflank_exporter_next_refresh_timestamp_seconds",
    "When the exporter plans to read each resource from the Northflank API next (unix time; in the past "
    "when the refresh is overdue, waiting for the request budget). project and addon are empty for "
    "account-wide resources.",
    ("project", "addon", "resource"),
    unit="seconds",
)
PLANNER_FAMILIES: tuple[Family, ...] = (
    STALEST_REFRESH_AGE,
    PLANNED_REFRESHES,
    PLANNED_INTERVAL,
    INITIAL_READ_RATIO,
    NEXT_REFRESH,
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

# --- The /metrics route (web/scrape_cache.py) ---------------------------------------------------------------

SCRAPE_FAILURES = Family(
    "northflank_exporter_scrape_failures_total",
    "Scrapes of /metrics that could not be served, by reason: render (the page could not be written: an "
    "HTTP 500 was answered; see the log) or disconnected (the scraper went away before the whole body "
    "was sent, as when its scrape timeout ran out).",
    ("reason",),
    "counter",
)
SCRAPE_FAMILIES: tuple[Family, ...] = (SCRAPE_FAILURES,)

# --- The notification webhook (web/webhook.py), exposed only with --webhook.listen-address -------------

WEBHOOK_EVENTS = Family(
    "northflank_exporter_webhook_events_total",
    "Deliveries to the Northflank notification webhook, by event (the four addon-backup events, or other) "
    "and outcome: accepted (an addon's backups are read at once), duplicate (an event id seen before), "
    "unauthorized (no or a wrong integration token), too_large, invalid (not a JSON object), unmatched (a "
    "backup event naming no known addon: the planner's due checks were moved forward) or ignored (not a "
    "backup event). An event is a hint: the metrics come from the API.",
    ("event", "outcome"),
    "counter",
)
WEBHOOK_LAST_EVENT = Family(
    "northflank_exporter_webhook_last_event_timestamp_seconds",
    "When the latest delivery carrying the integration's token reached the webhook (unix time); absent "
    "until the first one.",
    (),
    unit="seconds",
)
WEBHOOK_FAMILIES: tuple[Family, ...] = (WEBHOOK_EVENTS, WEBHOOK_LAST_EVENT)

# --- The saved state (state/metrics.py), exposed only with --storage.path ---------------------------------

STATE_SAVE_FAILURES = Family(
    "northflank_exporter_state_save_failures_total",
    "Saves of the state to --storage.path that failed (the directory not writable, the disk full...): "
    "the previous state file is kept as it was, and a restart would restore that older state. The log "
    "says why, once per distinct problem.",
    (),
    "counter",
)
STATE_LAST_SAVE = Family(
    "northflank_exporter_state_last_save_timestamp_seconds",
    "When the state in the --storage.path file was taken (unix time): what a restart would restore is as "
    "of then. The state is saved at most every 5 seconds, and only when it changed; at start, the time of "
    "the file that was restored; absent while there is none.",
    (),
    unit="seconds",
)
STATE_FAMILIES: tuple[Family, ...] = (STATE_SAVE_FAILURES, STATE_LAST_SAVE)

# --- The process (prometheus_client's ProcessCollector, registered by app.py) -------------------------------

#: What every Prometheus client library exposes about its process, named and worded as they do (a test
#: compares these with what prometheus_client's ProcessCollector yields). Linux only: elsewhere the
#: collector yields nothing.
PROCESS_FAMILIES: tuple[Family, ...] = (
    Family("process_virtual_memory_bytes", "Virtual memory size in bytes.", (), unit="bytes"),
    Family("process_resident_memory_bytes", "Resident memory size in bytes.", (), unit="bytes"),
    Family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        (),
        unit="seconds",
    ),
    Family(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        (),
        "counter",
        unit="seconds",
    ),
    Family("process_open_fds", "Number of open file descriptors.", ()),
    Family("process_max_fds", "Maximum number of open file descriptors.", ()),
)

#: Every family declared above, once each: building it raises DuplicateMetricError on a clash, so a
#: duplicate stops the exporter at import, before it serves a page Prometheus would reject.
FAMILIES: tuple[Family, ...] = unique(
    SNAPSHOT_FAMILIES,
    (RENDER_ERRORS,),
    BUDGET_FAMILIES,
    API_FAMILIES,
    (REFRESH_ERRORS,),
    PLANNER_FAMILIES,
    CONNECTION_FAMILIES,
    SCRAPE_FAMILIES,
    WEBHOOK_FAMILIES,
    STATE_FAMILIES,
    PROCESS_FAMILIES,
)

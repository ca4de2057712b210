"""Every default value of the exporter, in one place (as httpx keeps its own in ``_config.py``).

Flags, ``Settings``, the client, the budget, the poller and the planner all take their defaults from here,
so a default is changed once. ``tests/unit/test_config.py`` checks that the flags' defaults, parsed, are
these values.
"""

from __future__ import annotations

API_URL = "https://api.northflank.com"
LISTEN_ADDRESS = ":10150"
TELEMETRY_PATH = "/metrics"
#: Below this share of the account's rate limit left, only essential refreshes go out.
RATE_LIMIT_RESERVE = 0.2
#: API requests in flight at most.
CONCURRENCY = 4
#: Deadline of one API request, in seconds.
REQUEST_TIMEOUT = 10.0
DISCOVERY_INTERVAL = 1800.0
SCHEDULES_INTERVAL = 3600.0
RESTORES_INTERVAL = 3600.0
#: How long after a scheduled run its backup may start before the run counts as missed.
SCHEDULE_GRACE = 7200.0
MAX_CONNECTIONS = 128
#: Seconds a client has to send a complete request.
READ_TIMEOUT = 10.0
#: Whole seconds a kept-alive connection may wait for its next request.
IDLE_TIMEOUT = 60

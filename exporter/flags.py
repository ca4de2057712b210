"""The command line: every flag, its help text and default, and how argparse behaves (as Go exporters do).

:func:`build_parser` is what ``--help`` shows; :func:`exporter.config.load_settings` turns what it parses,
with the environment, into a validated ``Settings``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from exporter import defaults
from exporter.buildinfo import current_build
from exporter.web.webhook import WEBHOOK_PATH

DEFAULT_API_URL = defaults.API_URL
DEFAULT_LISTEN_ADDRESS = defaults.LISTEN_ADDRESS
TOKEN_VARIABLES = ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN")
HOST_VARIABLES = ("NF_API_HOST", "NF_HOST")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")


class FlagHelpFormatter(argparse.HelpFormatter):
    """--help as a user reads it: a flag's value is named after the flag (``--northflank.timeout
    <timeout>``), not after the internal ``dest``; a default is shown only when there is one."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        flag = max(action.option_strings, key=len).lstrip("-")
        return f"<{flag.rsplit('.', 1)[-1]}>"

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default in ("", [], ())
        ):
            return text
        return f"{text} (default: %(default)s)"


class FlagParser(argparse.ArgumentParser):
    """argparse as Go exporters behave: a bad flag is one line (and where to read more), exit 2, never
    the whole usage; no abbreviated flags (``--web.listen`` would silently change meaning the day a
    second ``--web.listen-*`` flag appears, breaking the scripts that used it)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", FlagHelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        # argparse says "argument --a: ..."; the flag alone leads, as in every other configuration error.
        message = re.sub(r"^argument (-[^\s:/]+)(?:/\S+)?: ", r"\1: ", " ".join(message.split()))
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the flags.\n")


class VersionAction(argparse.Action):
    """``--version``: one unwrapped line on stdout (argparse's own action wraps it at the terminal width)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {current_build().describe()}", file=sys.stdout)
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="northflank-backup-exporter",
        description="Prometheus exporter for the backups of Northflank database addons.",
        # cli.main routes "check" before this parser sees it; without this line --help would hide it.
        epilog=(
            "Subcommand: 'northflank-backup-exporter check [--output text|json] [flags...]' reads the "
            "account once, prints the health of every addon's backups and exits 0 (all OK), 1 (some "
            "not OK) or 2 (could not tell), for cron or CI without Prometheus; the flags above apply. "
            "'northflank-backup-exporter check --help' for more."
        ),
    )
    add = parser.add_argument
    add(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        help="Address on which to expose metrics and the web interface.",
    )
    add(
        "--web.telemetry-path",
        dest="telemetry_path",
        default=defaults.TELEMETRY_PATH,
        help="Path under which to expose metrics.",
    )
    add(
        "--log.level",
        dest="log_level",
        default="info",
        choices=LOG_LEVELS,
        help="Only log messages with the given severity or above.",
    )
    add(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=LOG_FORMATS,
        help="Output format of log messages.",
    )
    add(
        "--northflank.api-url",
        dest="api_url",
        default=None,
        help=f"Northflank API base URL. Env: {', '.join(HOST_VARIABLES)}. Default: {DEFAULT_API_URL}.",
    )
    add(
        "--northflank.token-file",
        dest="token_file",
        default=None,
        help="File holding the API token (Docker/Kubernetes secrets); read again when it changes, after a "
        f"401 and on SIGHUP, so a rotated Secret needs no restart. Else env {' or '.join(TOKEN_VARIABLES)}.",
    )
    add(
        "--northflank.team",
        dest="teams",
        action="append",
        default=[],
        metavar="TEAM_ID",
        help="Team id for an organisation-scoped token (/v1/teams/{teamId}/...). Repeatable.",
    )
    add(
        "--northflank.request-budget",
        dest="request_budget",
        default="auto",
        help="API requests the exporter may send in any rolling hour (every page and retry counts). "
        "auto: half the limit the API announces in x-ratelimit-limit (500 of the default 1000).",
    )
    add(
        "--northflank.rate-limit-reserve",
        dest="rate_limit_reserve",
        type=float,
        default=defaults.RATE_LIMIT_RESERVE,
        help="When the account's remaining requests (x-ratelimit-remaining) fall below this share of its "
        "limit, only essential refreshes (scheduled runs, backups in progress) go out until the window "
        "resets: the rest of the account (CI/CD, people) keeps what is left.",
    )
    add(
        "--northflank.max-staleness",
        dest="max_staleness",
        default="auto",
        help="The longest an addon's backups may go unread, whatever its schedules say (manual backups "
        "are seen this way). auto: as often as the floor's share of the budget allows, at most hourly.",
    )
    add(
        "--northflank.discovery-interval",
        dest="discovery_interval",
        default="30m",
        help="How often to list projects, addons and backup destinations (stretched when the fleet is too "
        "big for the budget).",
    )
    add(
        "--northflank.schedules-interval",
        dest="schedules_interval",
        default="1h",
        help="How often to re-read each addon's backup schedules (stretched like discovery).",
    )
    add(
        "--northflank.restores-interval",
        dest="restores_interval",
        default="1h",
        help="How often to re-read each addon's restores (stretched like discovery).",
    )
    # Removed (the fixed-interval scheduler is gone): still parsed, so that load_settings can say what
    # replaces it in one line instead of argparse's usage text for an unknown flag.
    add(
        "--northflank.refresh-interval",
        dest="removed_refresh_interval",
        nargs="?",
        const="",
        help=argparse.SUPPRESS,
    )
    add(
        "--northflank.timeout",
        dest="request_timeout",
        default="10s",
        help="Deadline for one API request (connect, headers and body).",
    )
    add(
        "--northflank.concurrency",
        dest="concurrency",
        type=int,
        default=defaults.CONCURRENCY,
        help="API requests in flight at most.",
    )
    add(
        "--backup.schedule-grace",
        dest="schedule_grace",
        default="2h",
        help="How long after a scheduled run a backup may start before the run counts as missed.",
    )
    add(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        default=defaults.MAX_CONNECTIONS,
        help="HTTP connections open at once, at most; beyond it a connection gets a 503 and is closed. "
        "Lowered at start to leave descriptors below the open files limit (ulimit -n) for the API client.",
    )
    add(
        "--web.read-timeout",
        dest="read_timeout",
        default="10s",
        help="Time a client has to send a complete request (head and any body), from connecting or, on a "
        "kept-alive connection, from its first byte; then the connection is closed.",
    )
    add(
        "--web.idle-timeout",
        dest="idle_timeout",
        default="1m",
        help="How long a kept-alive connection may wait for its next request before it is closed "
        "(whole seconds).",
    )
    add(
        "--web.config.file",
        dest="web_config_file",
        default="",
        help="Path to a configuration file that can enable TLS, basic auth and response headers "
        "(the exporter-toolkit web config format, as `promtool check web-config` checks it).",
    )
    add(
        "--northflank.token",
        dest="token_flag",
        default=None,
        help="The API token itself. Discouraged: the command line is visible to every user of the machine "
        "(ps, /proc); use --northflank.token-file or NF_API_TOKEN.",
    )
    add(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="Check the flags, the token and the connection to the API (one request), say what was found, "
        "and exit: 0 when the exporter would work, 1 when the API refuses or cannot be reached.",
    )
    add(
        "--webhook.listen-address",
        dest="webhook_listen_address",
        default="",
        help=f"Address on which to serve Northflank's notification webhook (POST {WEBHOOK_PATH} only, on its "
        "own port, so that /metrics can stay private): addon-backup events make the exporter read that "
        "addon's backups at once. Off when empty. Needs --webhook.secret-file.",
    )
    add(
        "--webhook.secret-file",
        dest="webhook_secret_file",
        default="",
        help="File holding the notification integration's secret, which Northflank sends in "
        "X-Northflank-Notification-Integration-Token; deliveries without it are refused (401).",
    )
    add(
        "--storage.path",
        dest="storage_path",
        default="",
        help="Directory in which to save the exporter's state (what it read, its plans, the requests of the "
        "last hour) every few seconds and at shutdown, so that a restart serves every addon at once and "
        "keeps within the request budget. Off when empty; mount a volume there (an emptyDir will do).",
    )
    add(
        "--version",
        action=VersionAction,
        nargs=0,
        help="Show the version, revision and Python version and exit.",
    )
    add(
        "--demo",
        action="store_true",
        help="Serve metrics of a built-in simulated Northflank account (no token needed). The data is fake.",
    )
    return parser


__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_LISTEN_ADDRESS",
    "HOST_VARIABLES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "TOKEN_VARIABLES",
    "FlagHelpFormatter",
    "FlagParser",
    "VersionAction",
    "build_parser",
]

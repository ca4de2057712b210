"""Command-line flags and environment variables -> one typed, validated ``Settings``.

Flags are named the way Go exporters name them (``--web.listen-address``, ``--log.level``); the API
host and token come from the same environment variables as Northflank's own SDK. Invalid input raises
``ConfigError`` with one clear sentence; nothing here touches the network.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from exporter import __version__, defaults
from exporter.apitoken import ApiToken, TokenError, TokenFile, check_token
from exporter.durations import parse_duration
from exporter.web.config import WebConfigError
from exporter.web.tls import load_web_config

DEFAULT_API_URL = defaults.API_URL
DEFAULT_LISTEN_ADDRESS = defaults.LISTEN_ADDRESS
TOKEN_VARIABLES = ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN")
HOST_VARIABLES = ("NF_API_HOST", "NF_HOST")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")


class ConfigError(ValueError):
    """Bad flags, environment or files. The message is meant for the user, as it is."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"invalid listen address {text!r} (use host:port or :port)")
        host = host.removeprefix("[").removesuffix("]")
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    listen_address: ListenAddress = field(default_factory=lambda: ListenAddress.parse(DEFAULT_LISTEN_ADDRESS))
    telemetry_path: str = defaults.TELEMETRY_PATH
    log_level: str = "info"
    log_format: str = "logfmt"
    api_url: str = DEFAULT_API_URL
    #: A ``SecretStr`` (variable or flag), or a ``TokenFile`` that follows the file through rotations.
    token: ApiToken | None = None
    teams: tuple[str, ...] = ()
    #: DEPRECATED --northflank.refresh-interval: when set, a complete pass every interval (no planner).
    refresh_interval: float | None = None
    #: Requests per rolling hour; None: half the x-ratelimit-limit the API announces (500 until then).
    request_budget: int | None = None
    #: Below this share of the account's rate limit left, only essential refreshes go out.
    rate_limit_reserve: float = defaults.RATE_LIMIT_RESERVE
    #: The longest an addon's backups may go unread; None: as often as the budget allows, at most hourly.
    max_staleness: float | None = None
    discovery_interval: float = defaults.DISCOVERY_INTERVAL
    schedules_interval: float = defaults.SCHEDULES_INTERVAL
    restores_interval: float = defaults.RESTORES_INTERVAL
    request_timeout: float = defaults.REQUEST_TIMEOUT
    concurrency: int = defaults.CONCURRENCY
    schedule_grace: float = defaults.SCHEDULE_GRACE
    demo: bool = False
    #: --web.config.file (exporter-toolkit format), checked by load_settings; None: plain HTTP, no auth.
    web_config_file: Path | None = None
    #: --web.max-connections: HTTP connections open at once (lowered below RLIMIT_NOFILE at start).
    max_connections: int = defaults.MAX_CONNECTIONS
    #: --web.read-timeout: seconds a client has to send a complete request.
    read_timeout: float = defaults.READ_TIMEOUT
    #: --web.idle-timeout: whole seconds a kept-alive connection may wait for its next request.
    idle_timeout: int = defaults.IDLE_TIMEOUT
    #: --config.check: validate, make one request to the API, report and exit.
    config_check: bool = False
    #: Warnings about the configuration, logged once logging is set up.
    warnings: tuple[str, ...] = ()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="northflank-backup-exporter",
        description="Prometheus exporter for the backups of Northflank database addons.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    add(
        "--northflank.refresh-interval",
        dest="refresh_interval",
        default=None,
        help="DEPRECATED: read everything every interval instead of planning refreshes within the request "
        "budget. Unset by default; remove it to use the planner.",
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
    add("--version", action="version", version=f"%(prog)s {__version__}")
    add(
        "--demo",
        action="store_true",
        help="Serve metrics of a built-in simulated Northflank account (no token needed). The data is fake.",
    )
    return parser


def _duration(flag: str, text: str, *, minimum: float) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise ConfigError(f"{flag}: {error}") from None
    if seconds < minimum:
        raise ConfigError(f"{flag}: must be at least {minimum:g}s, got {text!r}")
    return seconds


def _read_token(args: argparse.Namespace, environ: Mapping[str, str]) -> ApiToken | None:
    """The token file (followed through rotations), else the first variable set; checked, never echoed."""
    if args.token_file:
        try:
            return TokenFile(Path(args.token_file))
        except TokenError as error:
            raise ConfigError(f"--northflank.token-file: {error}") from None
    for name in TOKEN_VARIABLES:
        if environ.get(name, "").strip():
            try:
                return SecretStr(check_token(environ[name], name))
            except TokenError as error:
                raise ConfigError(str(error)) from None
    return None


def _web_config_file(text: str) -> Path | None:
    """The --web.config.file path, after reading and checking the file (and its certificate and key)."""
    if not text:
        return None
    path = Path(text)
    try:
        load_web_config(path)
    except WebConfigError as error:
        raise ConfigError(f"--web.config.file: {error}") from None
    return path


def _request_budget(text: str) -> int | None:
    if text.strip() == "auto":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"--northflank.request-budget: must be auto or a whole number >= 1, got {text!r}")
    return int(text)


def _max_staleness(text: str) -> float | None:
    if text.strip() == "auto":
        return None
    return _duration("--northflank.max-staleness", text, minimum=60)


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Parse flags and environment. argparse itself exits with status 2 on an unknown flag."""
    args = build_parser().parse_args(argv)
    try:
        listen = ListenAddress.parse(args.listen_address)
    except ValueError as error:
        raise ConfigError(f"--web.listen-address: {error}") from None
    if not args.telemetry_path.startswith("/") or args.telemetry_path in ("/", "/-/healthy", "/-/ready"):
        raise ConfigError(
            f"--web.telemetry-path: must be a path starting with / other than /, /-/healthy and "
            f"/-/ready, got {args.telemetry_path!r}"
        )
    api_url = args.api_url or next((environ[v] for v in HOST_VARIABLES if environ.get(v)), DEFAULT_API_URL)
    api_url = api_url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise ConfigError(f"Northflank API URL must start with http:// or https://, got {api_url!r}")
    if args.concurrency < 1:
        raise ConfigError("--northflank.concurrency: must be at least 1")
    if not 0 <= args.rate_limit_reserve < 1:
        raise ConfigError(
            f"--northflank.rate-limit-reserve: must be a fraction in [0, 1), got {args.rate_limit_reserve:g}"
        )
    token = _read_token(args, environ)
    warnings: list[str] = []
    if args.token_flag:
        warnings.append(
            "the API token was passed on the command line (--northflank.token), where every user of this "
            "machine can read it; use --northflank.token-file or NF_API_TOKEN instead"
        )
        if token is None:
            try:
                token = SecretStr(check_token(args.token_flag, "--northflank.token"))
            except TokenError as error:
                raise ConfigError(str(error)) from None
    if token is None and not args.demo:
        raise ConfigError(
            "no Northflank API token: set NF_API_TOKEN (or NORTHFLANK_API_TOKEN), or pass "
            "--northflank.token-file; or try --demo"
        )
    for team in args.teams:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", team):
            raise ConfigError(f"--northflank.team: invalid team id {team!r}")
    web_config_file = _web_config_file(args.web_config_file)
    if args.max_connections < 1:
        raise ConfigError(f"--web.max-connections: must be at least 1, got {args.max_connections}")
    return Settings(
        listen_address=listen,
        telemetry_path=args.telemetry_path,
        log_level=args.log_level,
        log_format=args.log_format,
        api_url=api_url,
        token=token,
        teams=tuple(args.teams),
        refresh_interval=(
            None
            if args.refresh_interval is None
            else _duration("--northflank.refresh-interval", args.refresh_interval, minimum=1)
        ),
        request_budget=_request_budget(args.request_budget),
        rate_limit_reserve=args.rate_limit_reserve,
        max_staleness=_max_staleness(args.max_staleness),
        discovery_interval=_duration("--northflank.discovery-interval", args.discovery_interval, minimum=60),
        schedules_interval=_duration("--northflank.schedules-interval", args.schedules_interval, minimum=60),
        restores_interval=_duration("--northflank.restores-interval", args.restores_interval, minimum=60),
        request_timeout=_duration("--northflank.timeout", args.request_timeout, minimum=0.1),
        concurrency=args.concurrency,
        schedule_grace=_duration("--backup.schedule-grace", args.schedule_grace, minimum=0),
        demo=args.demo,
        web_config_file=web_config_file,
        max_connections=args.max_connections,
        read_timeout=_duration("--web.read-timeout", args.read_timeout, minimum=0.1),
        # uvicorn's keep-alive timer takes whole seconds.
        idle_timeout=math.ceil(_duration("--web.idle-timeout", args.idle_timeout, minimum=1)),
        config_check=args.config_check,
        warnings=tuple(warnings),
    )

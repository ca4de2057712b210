"""Command-line flags and environment variables -> one typed, validated ``Settings``.

Flags are named the way Go exporters name them (``--web.listen-address``, ``--log.level``) and declared,
with their help, in :mod:`exporter.flags`; the API host and token come from the same environment
variables as Northflank's own SDK. Invalid input raises ``ConfigError`` with one clear sentence; nothing
here touches the network.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from exporter import defaults
from exporter.apitoken import ApiToken, TokenError, TokenFile, check_token
from exporter.durations import parse_duration
from exporter.flags import (
    DEFAULT_API_URL,
    DEFAULT_LISTEN_ADDRESS,
    HOST_VARIABLES,
    TOKEN_VARIABLES,
    build_parser,
)
from exporter.state.store import StorageError, check_directory
from exporter.web.config import WebConfigError
from exporter.web.tls import load_web_config
from exporter.web.webhook import WebhookSecret, WebhookSecretError


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
    #: --webhook.listen-address: where Northflank's notification webhook is served (None: not served).
    webhook_listen_address: ListenAddress | None = None
    #: --webhook.secret-file, read at start: the integration's secret (its repr hides it).
    webhook_secret: WebhookSecret | None = None
    #: --storage.path: the directory the state is saved in, to survive a restart (None: not saved).
    storage_path: Path | None = None


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


def _webhook(args: argparse.Namespace) -> tuple[ListenAddress | None, WebhookSecret | None]:
    """The webhook's listen address and secret; both or neither (an open webhook would let anyone spend
    the request budget)."""
    if not args.webhook_listen_address:
        if args.webhook_secret_file:
            raise ConfigError("--webhook.secret-file: set --webhook.listen-address too, or remove it")
        return None, None
    try:
        address = ListenAddress.parse(args.webhook_listen_address)
    except ValueError as error:
        raise ConfigError(f"--webhook.listen-address: {error}") from None
    if not args.webhook_secret_file:
        raise ConfigError(
            "--webhook.listen-address needs --webhook.secret-file (the notification integration's secret): "
            "without it anyone could make the exporter spend its request budget"
        )
    try:
        secret = WebhookSecret.from_file(Path(args.webhook_secret_file))
    except WebhookSecretError as error:
        raise ConfigError(f"--webhook.secret-file: {error}") from None
    return address, secret


def _storage_path(text: str) -> Path | None:
    """The --storage.path directory, checked now: a state that cannot be saved should not be found out
    at the first restart."""
    if not text:
        return None
    path = Path(text)
    try:
        check_directory(path)
    except StorageError as error:
        raise ConfigError(f"--storage.path: {error}") from None
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


REFRESH_INTERVAL_REMOVED = (
    "--northflank.refresh-interval was removed: the exporter plans its refreshes within the request budget; "
    "use --northflank.max-staleness (and --northflank.discovery-interval, --northflank.schedules-interval, "
    "--northflank.restores-interval) to bound how stale each listing may get"
)


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Parse flags and environment. argparse itself exits with status 2 on an unknown flag."""
    args = build_parser().parse_args(argv)
    if args.removed_refresh_interval is not None:
        raise ConfigError(REFRESH_INTERVAL_REMOVED)
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
    webhook_address, webhook_secret = _webhook(args)
    if webhook_address is not None and webhook_address.port != 0 and webhook_address.port == listen.port:
        raise ConfigError(
            "--webhook.listen-address: must be another port than --web.listen-address (the webhook is "
            "served apart, so that /metrics need not be exposed with it)"
        )
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
        webhook_listen_address=webhook_address,
        webhook_secret=webhook_secret,
        storage_path=_storage_path(args.storage_path),
    )

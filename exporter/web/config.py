"""``--web.config.file``: TLS, basic auth, response headers and rate limiting, in the exporter-toolkit format.

The file is the one Go exporters read (prometheus/exporter-toolkit, ``docs/web-configuration.md``), so a
file that ``promtool check web-config`` accepts is accepted here and means the same::

    tls_server_config:            # any of cert/key/client CA/client_auth_type set = HTTPS
      cert_file: server.crt       # relative paths are relative to the config file's directory
      key_file: server.key        # (or inline PEM: cert / key / client_ca)
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: ca.crt
      client_allowed_sans: [prometheus.example.com]
      min_version: TLS12          # TLS10..TLS13, default TLS12 .. TLS13
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # Go names, TLS 1.2 and below
      curve_preferences: [X25519]
    http_server_config:
      headers: {X-Frame-Options: deny}   # only the headers the toolkit allows
    basic_auth_users:
      prometheus: $2y$10$...      # bcrypt hashes
    rate_limit: {interval: 1s, burst: 10}

Everything is read and checked at start (the certificate and key are loaded to prove they match); a bad
file is one :class:`WebConfigError` naming the file and the field, never echoing a hash or a key. The
toolkit reads the file again for every request and connection; here SIGHUP reads it again: users, headers
and the rate limit apply to the next requests, the certificate and key to the next connections (see
:func:`reload_tls`); other TLS settings, and turning TLS on or off, take a restart. A file that fails to
load on SIGHUP leaves the one in use in place.

Where Python's TLS cannot do what Go's does, the nearest safe behaviour is chosen and said at start:
``RequestClientCert`` does not ask for a certificate (Go asks but never checks it, so access is the same);
``RequireAnyClientCert`` also verifies the certificate against the client CA; of ``curve_preferences``
only the first curve is used; HTTP/2 is not served (``http2`` is accepted and ignored). A client CA file
without any certificate in it, ``min_version`` above ``max_version``, ``rate_limit.burst`` below 1 and a
bcrypt hash that cannot match any password are errors here, where Go would start and then refuse every
client.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml

from exporter.durations import GO_SYNTAX, parse_duration

log = logging.getLogger(__name__)


class WebConfigError(ValueError):
    """A web config file that cannot be used. The message names the file and the field, as it is."""


# --- The format ------------------------------------------------------------------------------------

#: client_auth_type -> what Python's TLS does for it (see the module docstring for the two that differ).
CLIENT_AUTH_TYPES: Final[Mapping[str, ssl.VerifyMode]] = MappingProxyType(
    {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_NONE,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireClientCert": ssl.CERT_REQUIRED,  # the toolkit's old name for RequireAnyClientCert
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
)

TLS_VERSIONS: Final[Mapping[str, ssl.TLSVersion]] = MappingProxyType(
    {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
)

#: The names Go's ``tls.CipherSuites()`` returns (what the toolkit accepts) -> OpenSSL's names. TLS 1.3
#: suites are not configurable, in Go as in OpenSSL's cipher list: they are accepted and map to None.
CIPHER_SUITES: Final[Mapping[str, str | None]] = MappingProxyType(
    {
        "TLS_AES_128_GCM_SHA256": None,
        "TLS_AES_256_GCM_SHA384": None,
        "TLS_CHACHA20_POLY1305_SHA256": None,
        "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    }
)

#: Go's curve names -> OpenSSL's.
CURVES: Final[Mapping[str, str]] = MappingProxyType(
    {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
)

#: The only response headers the toolkit lets a web config set, and the values allowed where it limits
#: them (None: any value). Names are matched exactly, as the toolkit does.
ALLOWED_HEADERS: Final[Mapping[str, tuple[str, ...] | None]] = MappingProxyType(
    {
        "Strict-Transport-Security": None,
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": None,
        "Content-Security-Policy": None,
    }
)

_BCRYPT_HASH = re.compile(r"\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True, slots=True)
class TLSServerConfig:
    """``tls_server_config``, with file paths already joined to the config file's directory."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    client_ca_file: Path | None = None
    client_ca: str | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return CLIENT_AUTH_TYPES[self.client_auth_type]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate_limit``: a token bucket of ``burst`` requests refilled one per ``interval`` seconds."""

    interval: float
    burst: int


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A parsed, checked web config. ``tls`` is None when the file does not turn TLS on."""

    source: str
    tls: TLSServerConfig | None = None
    http2: bool = True
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: user name -> bcrypt hash. Never printed.
    users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    rate_limit: RateLimit | None = None

    def notes(self) -> list[tuple[int, str]]:
        """What this config does, and where it differs from the toolkit, as (log level, message)."""
        tls = self.tls
        scheme = "HTTPS" if tls else "plain HTTP"
        auth = f"basic auth for {len(self.users)} user(s)" if self.users else "no basic auth"
        client = f", client certificates: {tls.client_auth_type}" if tls else ""
        notes = [(logging.INFO, f"web config {self.source}: {scheme}{client}, {auth}")]
        if self.users and tls is None:
            notes.append(
                (logging.WARNING, "basic auth without TLS: passwords cross the network in clear text")
            )
        if tls is not None and tls.client_auth_type == "RequestClientCert":
            notes.append(
                (
                    logging.INFO,
                    "client_auth_type RequestClientCert: client certificates are not asked for (Go asks but "
                    "never checks them, so who gets in is the same)",
                )
            )
        if tls is not None and tls.client_auth_type in ("RequireAnyClientCert", "RequireClientCert"):
            notes.append(
                (
                    logging.WARNING,
                    f"client_auth_type {tls.client_auth_type}: client certificates are also verified "
                    "against the client CA here (Python's TLS cannot require one without verifying it)",
                )
            )
        if tls is not None and len(tls.curve_preferences) > 1:
            notes.append(
                (
                    logging.WARNING,
                    f"curve_preferences: only the first, {tls.curve_preferences[0]}, is used "
                    "(Python's ssl module sets a single curve)",
                )
            )
        return notes


def log_web_config(config: WebConfig, logger: logging.Logger = log) -> None:
    """Say at start what the web config does, and where it differs from the toolkit."""
    for level, message in config.notes():
        logger.log(level, "%s", message)


# --- Parsing -----------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (Go's yaml.UnmarshalStrict does)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool | None):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Fields:
    """One YAML mapping of the format: typed getters, and unknown keys refused."""

    def __init__(self, source: str, where: str, value: object, known: Iterable[str]) -> None:
        self.source, self.where = source, where
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(where, "must be a mapping")
        known = tuple(known)
        for key in value:
            if key not in known:
                raise self.error(where, f"unknown field {key!r} (known: {', '.join(known)})")
        self.values: dict[str, object] = value

    def error(self, where: str, what: str) -> WebConfigError:
        return WebConfigError(f"{self.source}: {where}: {what}" if where else f"{self.source}: {what}")

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def string(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.error(self.path(key), "must be a string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(self.path(key), f"must be true or false, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(self.path(key), "must be a list of strings")
        return tuple(value)

    def choice(self, key: str, choices: Iterable[str], default: str, what: str) -> str:
        value = self.string(key)
        if value is None:
            return default
        allowed = tuple(choices)
        if value not in allowed:
            raise self.error(self.path(key), f"unknown {what} {value!r} (use one of {', '.join(allowed)})")
        return value


def _resolve(base_dir: Path, name: str | None) -> Path | None:
    """A path of the file joined to the config file's directory unless absolute (the toolkit's JoinDir)."""
    if name is None:
        return None
    path = Path(name)
    return path if path.is_absolute() else base_dir / path


def _parse_tls(source: str, value: object, base_dir: Path) -> TLSServerConfig | None:
    known = (
        "cert",
        "key",
        "client_ca",
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    )
    fields = _Fields(source, "tls_server_config", value, known)
    cert, key, client_ca = fields.string("cert"), fields.string("key"), fields.string("client_ca")
    cert_file, key_file = fields.string("cert_file"), fields.string("key_file")
    client_ca_file = fields.string("client_ca_file")
    auth = fields.choice("client_auth_type", CLIENT_AUTH_TYPES, "NoClientCert", "client_auth_type")
    min_version = fields.choice("min_version", TLS_VERSIONS, "TLS12", "TLS version")
    max_version = fields.choice("max_version", TLS_VERSIONS, "TLS13", "TLS version")
    if TLS_VERSIONS[min_version] > TLS_VERSIONS[max_version]:
        raise fields.error(
            "tls_server_config", f"min_version {min_version} is above max_version {max_version}"
        )
    ciphers = fields.strings("cipher_suites") or ()
    for cipher in ciphers:
        if cipher not in CIPHER_SUITES:
            raise fields.error(
                "tls_server_config.cipher_suites",
                f"unknown cipher suite {cipher!r} "
                "(use Go's names, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
            )
    curves = fields.strings("curve_preferences") or ()
    for curve in curves:
        if curve not in CURVES:
            raise fields.error(
                "tls_server_config.curve_preferences", f"unknown curve {curve!r} (use {', '.join(CURVES)})"
            )
    sans = fields.strings("client_allowed_sans")
    prefer = fields.boolean("prefer_server_cipher_suites", True)

    enabled = any(v is not None for v in (cert, key, client_ca, cert_file, key_file, client_ca_file)) or (
        fields.values.get("client_auth_type") not in (None, "")
    )
    if not enabled:
        return None  # as in the toolkit: no certificate, key, client CA or client auth = plain HTTP
    where = "tls_server_config"
    if cert is not None and cert_file is not None:
        raise fields.error(
            where, "give the certificate either inline (cert) or as a file (cert_file), not both"
        )
    if key is not None and key_file is not None:
        raise fields.error(where, "give the key either inline (key) or as a file (key_file), not both")
    if client_ca is not None and client_ca_file is not None:
        raise fields.error(
            where, "give the client CA either inline (client_ca) or as a file (client_ca_file)"
        )
    if cert is None and cert_file is None:
        raise fields.error(where, "missing cert_file (or cert)")
    if key is None and key_file is None:
        raise fields.error(where, "missing key_file (or key)")
    if (client_ca is not None or client_ca_file is not None) and auth == "NoClientCert":
        raise fields.error(
            where, "a client CA is configured but client_auth_type is NoClientCert (set client_auth_type)"
        )
    if sans is not None and auth not in (
        "RequireAnyClientCert",
        "RequireClientCert",
        "RequireAndVerifyClientCert",
    ):
        raise fields.error(
            where,
            "client_allowed_sans needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        )
    return TLSServerConfig(
        cert_file=_resolve(base_dir, cert_file),
        key_file=_resolve(base_dir, key_file),
        cert=cert,
        key=key,
        client_ca_file=_resolve(base_dir, client_ca_file),
        client_ca=client_ca,
        client_auth_type=auth,
        client_allowed_sans=sans,
        min_version=min_version,
        max_version=max_version,
        cipher_suites=ciphers,
        prefer_server_cipher_suites=prefer,
        curve_preferences=curves,
    )


def _parse_headers(fields: _Fields) -> dict[str, str]:
    value = fields.values.get("headers")
    where = "http_server_config.headers"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fields.error(where, "must be a mapping of header names to values")
    headers = {}
    for name, header_value in value.items():
        if name not in ALLOWED_HEADERS:
            raise fields.error(
                where, f"header {name!r} cannot be configured (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        if header_value is None or header_value == "":
            continue  # "unset if blank"
        if not isinstance(header_value, str):
            raise fields.error(f"{where}.{name}", "must be a string")
        allowed = ALLOWED_HEADERS[name]
        if allowed is not None and header_value not in allowed:
            raise fields.error(
                f"{where}.{name}", f"invalid value {header_value!r} (use one of {', '.join(allowed)})"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in header_value) or not header_value.isascii():
            raise fields.error(f"{where}.{name}", "must be printable ASCII on one line")
        headers[name] = header_value
    return headers


def _parse_users(source: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{source}: basic_auth_users: must be a mapping of user names to bcrypt hashes")
    users = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user:
            raise WebConfigError(f"{source}: basic_auth_users: user name {user!r} must be a non-empty string")
        where = f"{source}: basic_auth_users.{user}"
        if not isinstance(hashed, str) or not hashed.startswith("$2"):
            raise WebConfigError(f"{where}: not a bcrypt hash")
        match = _BCRYPT_HASH.fullmatch(hashed)
        if match is None:
            raise WebConfigError(
                f"{where}: not a bcrypt hash (expected $2y$, $2b$ or $2a$, a two-digit cost and 53 "
                "characters of salt and hash, as `htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)"
            )
        if not 4 <= int(match.group(1)) <= 31:
            raise WebConfigError(f"{where}: bcrypt cost {match.group(1)} is outside 4..31")
        users[user] = hashed
    return users


def _parse_rate_limit(source: str, value: object) -> RateLimit | None:
    fields = _Fields(source, "rate_limit", value, ("interval", "burst"))
    try:
        interval = parse_duration(fields.values.get("interval", 0) or 0, GO_SYNTAX)
    except ValueError as error:
        raise fields.error("rate_limit.interval", str(error)) from None
    burst = fields.values.get("burst", 0)
    if burst is None:
        burst = 0
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise fields.error("rate_limit.burst", "must be an integer")
    if interval <= 0:
        return None  # 0 turns the rate limiter off
    if burst < 1:
        raise fields.error("rate_limit.burst", "must be at least 1 (with 0, every request would be refused)")
    return RateLimit(interval=interval, burst=burst)


def parse_web_config(text: str, *, source: str, base_dir: Path) -> WebConfig:
    """Parse and check a web config's text. Paths in it are relative to ``base_dir``. No file is read."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        # The problem and where, never the snippet of the line: it may hold a hash or a key.
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise WebConfigError(f"{source}: invalid YAML: {where}{error.problem or error.context}") from None
    except yaml.YAMLError:
        raise WebConfigError(f"{source}: invalid YAML") from None
    top = _Fields(
        source, "", document, ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
    )
    tls = _parse_tls(source, top.values.get("tls_server_config"), base_dir)
    http = _Fields(source, "http_server_config", top.values.get("http_server_config"), ("http2", "headers"))
    return WebConfig(
        source=source,
        tls=tls,
        http2=http.boolean("http2", True),
        headers=MappingProxyType(_parse_headers(http)),
        users=MappingProxyType(_parse_users(source, top.values.get("basic_auth_users"))),
        rate_limit=_parse_rate_limit(source, top.values.get("rate_limit")),
    )

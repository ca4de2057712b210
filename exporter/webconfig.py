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

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import bcrypt
import uvicorn
import yaml
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.connections import ConnectionGuard, with_read_timeout

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
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


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


def parse_go_duration(value: object) -> float:
    """A Go ``time.Duration`` as YAML gives it (``1s``, ``1m30s``, ``250ms``; an integer is nanoseconds)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 1s or 500ms")
    if isinstance(value, int):
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 1s or 500ms")
    text = value.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    position, total = 0, 0.0
    for match in _GO_DURATION_PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ValueError(f"invalid duration {value!r} (use e.g. 1s, 500ms, 1m30s)")
    return sign * total


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
        interval = parse_go_duration(fields.values.get("interval", 0) or 0)
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


def load_web_config(path: Path) -> WebConfig:
    """Read, parse and check a web config file, and load its certificate and key to prove they work."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise WebConfigError(f"{source}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{source}: not UTF-8 text") from None
    config = parse_web_config(text, source=source, base_dir=path.parent)
    if config.tls is not None:
        build_ssl_context(config)
    return config


# --- TLS -------------------------------------------------------------------------------------------


class _EncryptedKeyError(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKeyError


def _load_cert_chain(context: ssl.SSLContext, tls: TLSServerConfig, source: str) -> None:
    where = f"{source}: tls_server_config"
    for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if path is not None and not path.is_file():
            raise WebConfigError(f"{where}.{name}: cannot read {path}: no such file")
    with tempfile.TemporaryDirectory(prefix="webconfig-") as scratch:
        # Inline PEM goes through a private temporary file: load_cert_chain reads files only.
        cert_path, key_path = tls.cert_file, tls.key_file
        if cert_path is None:
            cert_path = Path(scratch, "cert.pem")
            cert_path.write_text(tls.cert or "", encoding="utf-8")
        if key_path is None:
            key_path = Path(scratch, "key.pem")
            key_path.touch(mode=0o600)
            key_path.write_text(tls.key or "", encoding="utf-8")
        try:
            context.load_cert_chain(cert_path, key_path, password=_no_password)
        except _EncryptedKeyError:
            raise WebConfigError(
                f"{where}: the key is encrypted; the web config has no key password, use an unencrypted key"
            ) from None
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                raise WebConfigError(f"{where}: the key does not belong to the certificate") from None
            raise WebConfigError(
                f"{where}: cannot load the certificate and key (not PEM, or not a certificate and its key): "
                f"{error.reason or error.library or 'unknown error'}"
            ) from None
        except OSError as error:
            raise WebConfigError(f"{where}: cannot read the certificate or key: {error.strerror}") from None


def _load_client_ca(context: ssl.SSLContext, tls: TLSServerConfig, source: str) -> None:
    name = "client_ca_file" if tls.client_ca_file is not None else "client_ca"
    where = f"{source}: tls_server_config.{name}"
    try:
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca is not None:
            context.load_verify_locations(cadata=tls.client_ca)
        else:
            # Go verifies client certificates against the system's roots when no client CA is given.
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except FileNotFoundError:
        raise WebConfigError(f"{where}: cannot read {tls.client_ca_file}: no such file") from None
    except ssl.SSLError as error:
        raise WebConfigError(f"{where}: no PEM certificate found ({error.reason or 'unreadable'})") from None
    except OSError as error:
        raise WebConfigError(f"{where}: cannot read {tls.client_ca_file}: {error.strerror}") from None


def build_ssl_context(config: WebConfig) -> ssl.SSLContext:
    """The server's SSLContext for ``config.tls`` (which must be set)."""
    tls = config.tls
    if tls is None:
        raise ValueError("the web config does not turn TLS on")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    openssl_ciphers = [name for name in (CIPHER_SUITES[c] for c in tls.cipher_suites) if name is not None]
    if openssl_ciphers:
        context.set_ciphers(":".join(openssl_ciphers))
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    _load_cert_chain(context, tls, config.source)
    context.verify_mode = tls.verify_mode
    if tls.verify_mode != ssl.CERT_NONE or tls.client_ca_file is not None or tls.client_ca is not None:
        _load_client_ca(context, tls, config.source)  # a given client CA is read whatever the mode, as in Go
    return context


def _without_keys(tls: TLSServerConfig) -> TLSServerConfig:
    return dataclasses.replace(tls, cert_file=None, key_file=None, cert=None, key=None)


def reload_tls(context: ssl.SSLContext | None, running: WebConfig, new: WebConfig) -> str | None:
    """Load ``new``'s certificate and key into the server's ``context``, which every new connection is
    made with (an ``SSLContext`` copies its certificate into each connection at the handshake), as the
    toolkit serves a renewed certificate without a restart. ``new`` must come from :func:`load_web_config`
    (so its pair is known to load). Returns what of ``new`` still takes a restart, if anything.
    """
    if (running.tls is None) != (new.tls is None):
        return "turning TLS on or off takes a restart; the server keeps serving as it started"
    if new.tls is None or running.tls is None:
        return None
    if context is None:
        return "the server is not serving yet; the certificate and key are those read at start"
    _load_cert_chain(context, new.tls, new.source)
    if _without_keys(new.tls) != _without_keys(running.tls):
        return (
            "tls_server_config settings other than the certificate and key (client CA, client_auth_type, "
            "versions, cipher suites, curves, allowed SANs) take a restart; the new certificate and key "
            "are in use"
        )
    return None


def _subject_alt_names(peercert: Mapping[str, Any]) -> list[str]:
    """The SAN values Go matches against client_allowed_sans: DNS names, e-mails, IPs and URIs."""
    names = []
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                names.append(str(ipaddress.ip_address(str(value).strip())))
            except ValueError:
                continue
        elif kind in ("DNS", "email", "URI"):
            names.append(str(value))
    return names


def san_allowed(peercert: Mapping[str, Any] | None, allowed: Iterable[str]) -> bool:
    """Whether a verified client certificate has a Subject Alternative Name in ``allowed``."""
    if not peercert:
        return False
    wanted = set()
    for name in allowed:
        try:
            wanted.add(str(ipaddress.ip_address(name)))
        except ValueError:
            wanted.add(name)
    return any(name in wanted for name in _subject_alt_names(peercert))


def _san_checking(base: type[asyncio.Protocol], allowed: tuple[str, ...]) -> type[asyncio.Protocol]:
    """``base`` closing, right after the TLS handshake, connections whose certificate has no allowed SAN."""

    class SanChecking(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if not san_allowed(transport.get_extra_info("peercert"), allowed):
                log.debug("refused a client certificate without an allowed SAN")
                transport.close()

    SanChecking.__name__ = f"SanChecking{base.__name__}"
    return SanChecking


class UvicornConfig(uvicorn.Config):
    """uvicorn's Config serving TLS the way a web config says (context built here, at construction)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        web_config: WebConfig | None = None,
        read_timeout: float | None = None,
        connections: ConnectionGuard | None = None,
        **kwargs: Any,
    ) -> None:
        """``read_timeout``: seconds a client has to send a complete request (see connections.py);
        ``connections`` counts the connections that run out of it."""
        super().__init__(app, **kwargs)
        self._read_timeout = read_timeout
        self._connections = connections
        tls = web_config.tls if web_config is not None else None
        self._ssl_context = build_ssl_context(web_config) if web_config is not None and tls else None
        self._allowed_sans = tls.client_allowed_sans if tls is not None else None

    def load(self) -> None:
        super().load()
        if self._ssl_context is not None:
            self.ssl = self._ssl_context
        if self._allowed_sans is not None:
            self.http_protocol_class = _san_checking(self.http_protocol_class, self._allowed_sans)
        if self._read_timeout is not None:
            self.http_protocol_class = with_read_timeout(
                self.http_protocol_class, self._read_timeout, self._connections
            )


# --- Basic auth, headers and rate limiting ---------------------------------------------------------

#: bcrypt only reads this many bytes of a password (bcrypt >= 5 raises beyond it; Go truncates).
_BCRYPT_MAX_PASSWORD = 72


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching the pairs that verified.

    bcrypt costs tens of milliseconds on purpose; a scraper sends the same pair every few seconds, so the
    pairs that verified are remembered (as keyed digests, not as passwords) in a small LRU and a repeat
    costs one HMAC. Unknown users still pay one bcrypt check, and user names are compared in constant
    time, so timing does not tell which users exist. bcrypt runs in a thread, one check at a time.
    """

    def __init__(self, users: Mapping[str, str], *, cache_size: int = 100) -> None:
        if not users:
            raise ValueError("no users")
        self._users = [
            (hashlib.sha256(name.encode("utf-8")).digest(), hashed.encode("ascii"))
            for name, hashed in users.items()
        ]
        # An unknown user is checked against a real hash, so that the check costs what a known user's does.
        self._decoy = self._users[0][1]
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = asyncio.Lock()
        self.bcrypt_checks = 0

    def _find(self, user: bytes) -> bytes | None:
        digest = hashlib.sha256(user).digest()
        found = None
        for name_digest, hashed in self._users:  # no early exit: the same work whichever user matches
            if hmac.compare_digest(digest, name_digest):
                found = hashed
        return found

    def _cache_key(self, user: bytes, password: bytes) -> bytes:
        message = len(user).to_bytes(4, "big") + user + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    @staticmethod
    def _checkpw(password: bytes, hashed: bytes) -> bool:
        try:
            return bool(bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed))
        except ValueError:  # e.g. a NUL byte in the password
            return False

    async def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the user name and password of a user."""
        credentials = parse_basic_auth(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._find(user)
        key = self._cache_key(user, password)
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        async with self._lock:
            if hashed is not None and key in self._verified:
                return True  # verified by the request this one waited for
            self.bcrypt_checks += 1
            ok = await asyncio.to_thread(self._checkpw, password, hashed or self._decoy)
        if not ok or hashed is None:
            return False
        self._verified[key] = None
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return True


def parse_basic_auth(authorization: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) of an ``Authorization: Basic`` value, as Go's ``Request.BasicAuth`` reads it."""
    if authorization is None or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


class TokenBucket:
    """``burst`` requests at once, refilled at one per ``interval`` seconds (Go's rate.Limiter)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._burst, self._clock = limit.interval, float(limit.burst), clock
        self._tokens = self._burst
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


async def _plain_response(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header_pairs(config: WebConfig) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("ascii"), v.encode("ascii")) for k, v in config.headers.items()]


class WebSecurityMiddleware:
    """Pure ASGI middleware, in the toolkit's order: rate limit (429), configured headers, basic auth (401).

    It covers every path (/metrics, /, the health probes), as the toolkit's handler does. :meth:`use`
    swaps in a config read again (SIGHUP); a request sees one config from its start to its end.
    """

    def __init__(self, app: ASGIApp, config: WebConfig) -> None:
        self.app = app
        self.config = config
        self.auth = BasicAuth(config.users) if config.users else None
        self.limiter = TokenBucket(config.rate_limit) if config.rate_limit else None
        self._headers = _header_pairs(config)

    def use(self, config: WebConfig) -> None:
        """Serve the requests that come next by ``config``. Users and a rate limit that did not change keep
        their state (the verified-password cache, the bucket's level)."""
        if dict(config.users) != dict(self.config.users):
            self.auth = BasicAuth(config.users) if config.users else None
        if config.rate_limit != self.config.rate_limit:
            self.limiter = TokenBucket(config.rate_limit) if config.rate_limit else None
        self._headers = _header_pairs(config)
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth, limiter, headers = self.auth, self.limiter, self._headers
        if limiter is not None and not limiter.allow():
            await _plain_response(send, 429, "Too Many Requests\n", [])
            return
        if headers:
            send = self._with_headers(send, headers)
        if auth is not None:
            authorization = next(
                (value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"),
                None,
            )
            if not await auth.check(authorization):
                await _plain_response(
                    send,
                    401,
                    "Unauthorized\n",
                    [(b"www-authenticate", b"Basic"), (b"x-content-type-options", b"nosniff")],
                )
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), *((k, v) for k, v in extra if k not in present)],
                }
            await send(message)

        return sending

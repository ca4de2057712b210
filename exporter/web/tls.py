"""TLS for the web config: SSL contexts, the client certificate's SAN check, and the reload of
the certificate and key on SIGHUP (new connections get them; a failed load keeps the one in use).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from exporter.web.config import (
    CIPHER_SUITES,
    CURVES,
    TLS_VERSIONS,
    TLSServerConfig,
    WebConfig,
    WebConfigError,
    parse_web_config,
)

log = logging.getLogger(__name__)


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


def san_checking(base: type[asyncio.Protocol], allowed: tuple[str, ...]) -> type[asyncio.Protocol]:
    """``base`` closing, right after the TLS handshake, connections whose certificate has no allowed SAN."""

    class SanChecking(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if not san_allowed(transport.get_extra_info("peercert"), allowed):
                log.debug("refused a client certificate without an allowed SAN")
                transport.close()

    SanChecking.__name__ = f"SanChecking{base.__name__}"
    return SanChecking


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

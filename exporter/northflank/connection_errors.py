"""Why a request got no response, in words a user can act on: which host, and what failed.

httpx says ``ConnectError`` for a refused port, a mistyped host name and a certificate it does not trust
alike; the cause is further down its exception chain (``__cause__``/``__context__``): a ``socket.gaierror``,
an ``OSError`` with an errno, an ``ssl.SSLError``. These functions walk that chain and return a message from
a fixed set of phrases, plus the host and port (from the configured API URL) and, for TLS, OpenSSL's short
reason: never the exception's own text, which may quote more than that. The metric ``reason`` stays
``connection`` or ``timeout`` (bounded); the message is what differs.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator

import httpx

#: errno -> what it means for a connection attempt.
_ERRNO_PHRASES: dict[int, str] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by peer",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETDOWN: "network down",
    errno.EHOSTDOWN: "host down",
    errno.ETIMEDOUT: "timed out",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EMFILE: "too many open files in this process",
    errno.ENFILE: "too many open files on this machine",
}
#: What OpenSSL gives as a reason or verify message: short words, nothing else is quoted.
_OPENSSL_TEXT = re.compile(r"[A-Za-z0-9 _.,:()'-]{1,120}")
#: Exception chains are short; this bounds a pathological one (a cycle is also stopped by ``seen``).
_MAX_CHAIN = 16


def origin(url: httpx.URL) -> str:
    """``host:port`` of a request URL, the port made explicit (443 for https, 80 for http)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [error]
    while todo and len(seen) < _MAX_CHAIN:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _openssl_text(value: object) -> str | None:
    if not isinstance(value, str) or not _OPENSSL_TEXT.fullmatch(value):
        return None
    return value.replace("_", " ").lower()


def describe_connection_error(error: BaseException, url: httpx.URL) -> str:
    """One line for an httpx transport error (a connection that failed or broke before the response)."""
    where = origin(url)
    chain = list(_chain(error))
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            temporary = cause.errno == socket.EAI_AGAIN
            return f"name resolution failed for {url.host}" + (" (temporary failure)" if temporary else "")
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = _openssl_text(cause.verify_message)
            return f"TLS certificate of {where} not trusted" + (f": {detail}" if detail else "")
        if isinstance(cause, ssl.SSLError):
            detail = _openssl_text(cause.reason)
            return f"TLS handshake with {where} failed" + (f": {detail}" if detail else "")
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno in _ERRNO_PHRASES:
            return f"cannot connect to {where}: {_ERRNO_PHRASES[cause.errno]}"
    name = type(error).__name__  # an httpx class name: what a bug report needs, and nothing the API sent
    if isinstance(error, httpx.RemoteProtocolError):
        return f"{where} closed the connection or broke the HTTP protocol before a complete response ({name})"
    if isinstance(error, httpx.ProxyError):
        return f"the proxy refused or failed the connection to {where} ({name})"
    if isinstance(error, httpx.ReadError | httpx.WriteError):
        return f"the connection to {where} broke before a complete response ({name})"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect to {where} ({name})"
    return f"connection to {where} failed ({name})"


def describe_timeout(error: BaseException, url: httpx.URL, seconds: float) -> str:
    """One line for a request that got no complete response in time, saying which phase timed out."""
    where = origin(url)
    if isinstance(error, httpx.ConnectTimeout):
        return f"cannot connect to {where}: timed out after {seconds:g}s"
    if isinstance(error, httpx.PoolTimeout):
        return f"no free connection to {where} within {seconds:g}s"
    return f"no complete response from {where} within {seconds:g}s"


__all__ = ["describe_connection_error", "describe_timeout", "origin"]

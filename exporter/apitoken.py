"""The API token: checked once at start, and followed through rotations of the file it comes from.

Kubernetes updates a mounted Secret by writing the new files into a fresh directory and swapping the
``..data`` symlink to it, so the token file's path stays and its inode changes; Docker, Vault agents and
editors rename a new file over the old one. Either way the exporter must use the new token without a
restart. :class:`TokenFile` looks at the file's ``stat`` at most every few seconds, when a request asks
for the token, and reads it again when the file changed; a 401 (the old token was revoked before the
check came round) and SIGHUP read it again at once. A file that cannot be read while the exporter runs
keeps the token in use, with one warning line per distinct problem.

The token itself never appears in a message, a log line or a repr: problems name the file only.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

#: A token is a few hundred bytes; a file much larger than this is not a token file.
MAX_TOKEN_FILE_BYTES = 64 * 1024
#: How often, at most, the file's stat is compared with the one of the token in use.
DEFAULT_CHECK_INTERVAL = 5.0
_BOM = "\ufeff"


class ApiToken(Protocol):
    """What the client needs of a token: its value, read at each request (pydantic's ``SecretStr`` is one)."""

    def get_secret_value(self) -> str: ...


@runtime_checkable
class ReloadableToken(Protocol):
    """A token that can be read again from where it came from (the client does so after a 401)."""

    def get_secret_value(self) -> str: ...

    def reload(self) -> bool:
        """Read the token again now; True when it changed."""
        ...


class TokenError(ValueError):
    """A token that cannot be used. The message names where it came from, never the token."""


def check_token(text: str, where: str) -> str:
    """The token in ``text`` (a leading BOM and surrounding whitespace removed), or :class:`TokenError`.

    ``where`` names the source in messages: "token file /run/secrets/token", "NF_API_TOKEN".
    """
    lines = [line.strip() for line in text.removeprefix(_BOM).splitlines()]
    values = [line for line in lines if line]
    if not values:
        raise TokenError(f"{where} is empty")
    if len(values) > 1:
        raise TokenError(f"{where} has more than one line")
    token = values[0]
    # It goes into an HTTP header: anything but printable ASCII would be refused there, or worse, mean a
    # header of its own; and a space inside is never part of a token (two tokens pasted together?).
    if not all("!" <= char <= "~" for char in token):
        raise TokenError(f"{where} holds spaces, control or non-ASCII characters inside the token")
    return token


def read_token_file(path: Path) -> tuple[str, tuple[int, ...]]:
    """The token in ``path`` and the file's identity (device, inode, size, mtime, ctime)."""
    where = f"token file {path}"
    try:
        # Opened without blocking, so that a FIFO (or a device) is refused instead of waited on.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TokenError(f"cannot read {where}: no such file") from None
    except IsADirectoryError:
        raise TokenError(f"{where} is a directory") from None
    except OSError as error:
        raise TokenError(f"cannot read {where}: {error.strerror or type(error).__name__}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise TokenError(f"{where} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"{where} is not a regular file")
        if info.st_size > MAX_TOKEN_FILE_BYTES:
            raise TokenError(f"{where} is larger than {MAX_TOKEN_FILE_BYTES // 1024} KiB: not a token file")
        try:
            data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
        except OSError as error:
            raise TokenError(f"cannot read {where}: {error.strerror or type(error).__name__}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise TokenError(f"{where} is larger than {MAX_TOKEN_FILE_BYTES // 1024} KiB: not a token file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenError(f"{where} is not UTF-8 text") from None
    return check_token(text, where), _identity(info)


def _identity(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class TokenFile:
    """The token of a file, re-read when the file changes. Duck-compatible with pydantic's ``SecretStr``.

    Raises :class:`TokenError` at construction when the file cannot be used: at start, that is fatal;
    later, the token in use is kept.
    """

    __slots__ = ("_check_interval", "_checked_at", "_identity", "_monotonic", "_problem", "_secret", "path")

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._secret, self._identity = read_token_file(path)
        self._checked_at = monotonic()
        #: the problem last logged, so that a file that stays broken is one line, not one per request
        self._problem: str | None = None

    def __repr__(self) -> str:
        return f"TokenFile(path={str(self.path)!r})"

    __str__ = __repr__

    def get_secret_value(self) -> str:
        """The token; the file is looked at first when the last look is ``check_interval`` old."""
        now = self._monotonic()
        if not 0 <= now - self._checked_at < self._check_interval:
            self._checked_at = now
            try:
                identity = _identity(os.stat(self.path))
            except OSError as error:
                self._report(f"cannot read token file {self.path}: {error.strerror or type(error).__name__}")
            else:
                if identity != self._identity:
                    self.reload()
        return self._secret

    def reload(self) -> bool:
        """Read the file now. True when it holds a new token (then in use); on a problem, keep the old."""
        self._checked_at = self._monotonic()
        try:
            secret, identity = read_token_file(self.path)
        except TokenError as error:
            self._report(str(error))
            return False
        self._identity = identity
        if self._problem is not None:
            log.info("token file %s can be read again", self.path)
            self._problem = None
        if secret == self._secret:
            return False
        self._secret = secret
        log.info("token file %s changed: using the new API token from now on", self.path)
        return True

    def _report(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("%s; keeping the API token in use", problem)
            self._problem = problem

"""The state file on disk: written atomically, read whole.

A write goes to a temporary file in the same directory, is flushed to the disk (fsync), renamed over the
state file, and the directory is fsynced so that the rename itself survives a power cut. A process killed
at any point leaves either the previous file or the new one, never half of one; the temporary file it may
leave behind is never read (only ``STATE_FILE`` is) and is removed at the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
_TEMP_PREFIX = ".state.json."
_TEMP_SUFFIX = ".tmp"


class StorageError(ValueError):
    """A storage directory that cannot be used. The message is one sentence for the user."""


def check_directory(path: Path) -> None:
    """That ``path`` is a directory this process can create files in (what --storage.path needs)."""
    if not path.exists():
        raise StorageError(f"{path} does not exist (create the directory, or mount a volume there)")
    if not path.is_dir():
        raise StorageError(f"{path} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX):
            pass
    except OSError as error:
        raise StorageError(f"cannot create a file in {path} ({error.strerror or error})") from None


class StateStore:
    """The state file in one directory."""

    def __init__(self, directory: Path, *, before_rename: Callable[[], None] | None = None) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        #: Called with the new file written and fsynced, before it replaces the old one: tests use it to
        #: stop a write half-way (a process killed there must leave the previous state).
        self._before_rename = before_rename

    def read(self, limit: int) -> bytes | None:
        """The state file's bytes (None when there is none); OSError when it cannot be read. A file
        larger than ``limit`` is read only as far as ``limit + 1`` bytes (the caller refuses it)."""
        try:
            with self.path.open("rb") as file:
                return file.read(limit + 1)
        except FileNotFoundError:
            return None

    def write(self, data: bytes) -> None:
        """Replace the state file with ``data``, atomically and durably."""
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            if self._before_rename is not None:
                self._before_rename()
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(self.directory)

    def remove_leftovers(self) -> int:
        """Remove the temporary files of writes that never finished (a process killed mid-write)."""
        removed = 0
        for leftover in self.directory.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed += 1
        return removed


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open a directory; the rename is as durable as they make it
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["STATE_FILE", "StateStore", "StorageError", "check_directory"]

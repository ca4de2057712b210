"""What was built and what runs it: the version, the git revision and the Python version, as Go exporters
say them in ``--version`` and ``*_build_info{version, revision, goversion}``.

The revision comes from ``exporter/_build.py`` (``REVISION = "<commit>"``, written by whoever builds an
image or a wheel from a checkout), else from the ``.git`` directory of the source tree the package runs
from, read as files: running ``git`` would execute whatever a repository's config asks of it
(``core.fsmonitor``), and costs a process. Anything else, or anything that does not look like a commit
id, is ``unknown``.
"""

from __future__ import annotations

import importlib
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from exporter import __version__

UNKNOWN = "unknown"
#: A full SHA-1 or SHA-256 commit id: nothing else becomes a label value.
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: A ref name as HEAD names it; refuses ``..`` and absolute paths (the file is read under .git).
_REF = re.compile(r"refs/(?:[A-Za-z0-9._-]+/)*[A-Za-z0-9._-]+")
#: .git files are small; a huge one is not a repository's.
_MAX_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class BuildInfo:
    version: str
    revision: str
    python_version: str

    def describe(self) -> str:
        """The ``--version`` line after the program's name."""
        return f"{self.version} (revision {self.revision}, Python {self.python_version})"


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            return file.read(_MAX_READ).decode("utf-8", "replace")
    except OSError:
        return None


def _commit(text: str | None) -> str | None:
    value = (text or "").strip().lower()
    return value if _COMMIT.fullmatch(value) else None


def git_revision(tree: Path) -> str | None:
    """The commit checked out in the work tree ``tree`` (HEAD, detached or on a branch, loose or packed
    ref), or None when ``tree`` is not one or its files do not say."""
    git = tree / ".git"
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        pointer = (_read(git) or "").strip()
        if not pointer.startswith("gitdir:"):
            return None
        git = (tree / pointer.removeprefix("gitdir:").strip()).resolve()
    head = (_read(git / "HEAD") or "").strip()
    if not head.startswith("ref:"):
        return _commit(head)
    ref = head.removeprefix("ref:").strip()
    if not _REF.fullmatch(ref) or ".." in ref:
        return None
    # A linked worktree keeps its HEAD but shares refs with the main repository.
    common = (_read(git / "commondir") or "").strip()
    bases = [git] + ([(git / common).resolve()] if common else [])
    for base in bases:
        loose = _commit(_read(base / ref))
        if loose is not None:
            return loose
        for line in (_read(base / "packed-refs") or "").splitlines():
            commit, _, name = line.partition(" ")
            if name.strip() == ref:
                return _commit(commit)
    return None


def _stamped_revision() -> str | None:
    """``exporter/_build.py``'s REVISION, when a build wrote one."""
    try:
        module = importlib.import_module("exporter._build")
    except ImportError:
        return None
    value = getattr(module, "REVISION", None)
    return _commit(value) if isinstance(value, str) else None


def current_build(package_dir: Path | None = None) -> BuildInfo:
    """This process's build: read once at start (a checkout that moves on later is not what runs)."""
    package_dir = package_dir or Path(__file__).resolve().parent
    revision = _stamped_revision() or git_revision(package_dir.parent) or UNKNOWN
    return BuildInfo(version=__version__, revision=revision, python_version=platform.python_version())


__all__ = ["UNKNOWN", "BuildInfo", "current_build", "git_revision"]

"""The revision and Python version of ``--version`` and ``northflank_exporter_build_info``: read from a
build stamp or from the checkout's .git files (never by running git), ``unknown`` otherwise."""

from __future__ import annotations

import platform
import sys
import types
from pathlib import Path

import pytest

from exporter import __version__
from exporter.buildinfo import UNKNOWN, BuildInfo, current_build, git_revision
from exporter.collector import SnapshotRenderer
from exporter.snapshot import Snapshot

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def repository(tree: Path, head: str) -> Path:
    git = tree / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head)
    return git


def test_a_branch_head_with_a_loose_ref(tmp_path: Path) -> None:
    git = repository(tmp_path, "ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    assert git_revision(tmp_path) == COMMIT


def test_a_branch_head_with_a_packed_ref(tmp_path: Path) -> None:
    git = repository(tmp_path, "ref: refs/heads/feature/x\n")
    (git / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted\n"
        f"{OTHER} refs/heads/main\n{COMMIT} refs/heads/feature/x\n"
    )
    assert git_revision(tmp_path) == COMMIT


def test_a_detached_head(tmp_path: Path) -> None:
    repository(tmp_path, COMMIT.upper() + "\n")
    assert git_revision(tmp_path) == COMMIT


def test_a_linked_worktree_reads_the_shared_refs(tmp_path: Path) -> None:
    main = repository(tmp_path / "main", "ref: refs/heads/main\n")
    (main / "refs" / "heads" / "other").write_text(OTHER + "\n")
    linked = main / "worktrees" / "wt"
    linked.mkdir(parents=True)
    (linked / "HEAD").write_text("ref: refs/heads/other\n")
    (linked / "commondir").write_text("../..\n")
    tree = tmp_path / "wt"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {linked}\n")
    assert git_revision(tree) == OTHER


@pytest.mark.parametrize(
    "head",
    [
        "ref: ../../../etc/passwd\n",
        "ref: refs/heads/../../HEAD\n",
        "ref: /etc/hostname\n",
        "not a commit\n",
        "0123\n",
        "",
    ],
)
def test_anything_else_is_no_revision(tmp_path: Path, head: str) -> None:
    git = repository(tmp_path, head)
    (git / "refs" / "heads" / "main").write_text("garbage\n")
    assert git_revision(tmp_path) is None


def test_no_repository_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "exporter._build", None)  # no build stamp: import fails
    package = tmp_path / "exporter"
    package.mkdir()
    build = current_build(package)
    assert build == BuildInfo(version=__version__, revision=UNKNOWN, python_version=platform.python_version())


def test_a_build_stamp_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = types.ModuleType("exporter._build")
    stamp.REVISION = OTHER  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "exporter._build", stamp)
    repository(tmp_path, COMMIT)
    assert current_build(tmp_path / "exporter").revision == OTHER
    stamp.REVISION = "$Format:%H$"  # type: ignore[attr-defined]
    assert current_build(tmp_path / "exporter").revision == COMMIT


def test_build_info_carries_version_revision_and_python_version() -> None:
    renderer = SnapshotRenderer(
        schedule_grace_seconds=7200, version="1.2.3", revision=COMMIT, python_version="3.12.1"
    )
    text = renderer.render(Snapshot(), 1.7e9).decode()
    line = f'northflank_exporter_build_info{{version="1.2.3",revision="{COMMIT}",pythonversion="3.12.1"}} 1'
    assert line in text.splitlines()

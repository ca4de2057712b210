"""Failed saves of the state (--storage.path) are counted and logged once, the previous file is kept, and
the time of the state on disk is exposed: a restart would bring back that state, however old."""

from __future__ import annotations

import asyncio
import errno
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from exporter.budget import RequestBudget
from exporter.clock import FixedClock
from exporter.exposition import render_registry
from exporter.metrics import STATE_LAST_SAVE, STATE_SAVE_FAILURES
from exporter.snapshot import Snapshot, SnapshotStore
from exporter.state.codec import SavedState, StateIdentity, decode, encode
from exporter.state.metrics import StateSaverCollector
from exporter.state.records import PlannerState
from exporter.state.saver import StateSaver
from exporter.state.store import STATE_FILE, StateStore
from tests.support import eventually, parse_samples, value

TOKEN = "nf-save-failures-token-4d1a"
IDENTITY = StateIdentity("https://api.northflank.test", SecretStr(TOKEN))
NOW = 1_795_600_000.0


class _Disk:
    """A disk that fills up on demand: the write gets as far as the rename, as a full disk's would."""

    def __init__(self) -> None:
        self.full = False

    def before_rename(self) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


def _setup(directory: Path, disk: _Disk) -> tuple[StateSaver, SnapshotStore, FixedClock, CollectorRegistry]:
    clock = FixedClock(NOW)
    snapshots = SnapshotStore()
    saver = StateSaver(
        StateStore(directory, before_rename=disk.before_rename),
        IDENTITY,
        snapshots=snapshots,
        budget=RequestBudget(clock=clock, budget=100),
        planner=None,
        clock=clock,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateSaverCollector(saver))
    return saver, snapshots, clock, registry


def _metrics(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    samples = parse_samples(render_registry(registry).decode())
    return value(samples, STATE_SAVE_FAILURES.name), value(samples, STATE_LAST_SAVE.name)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failed_save_is_counted_and_logged_once_and_the_previous_file_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = _Disk()
    saver, snapshots, clock, registry = _setup(tmp_path, disk)
    assert _metrics(registry) == (0.0, None)

    assert saver.save_now()
    assert _metrics(registry) == (0.0, NOW)

    disk.full = True
    clock.advance(10)
    snapshots.restore_state(Snapshot(projects_at=NOW + 5))
    with caplog.at_level(logging.INFO, logger="exporter.state"):
        saver.save_now()
    assert _metrics(registry) == (1.0, NOW)
    warnings = _warnings(caplog)
    assert len(warnings) == 1, caplog.text
    assert "cannot save the state" in warnings[0]
    assert "No space left on device" in warnings[0]
    assert TOKEN not in caplog.text
    # The file still holds the first save, whole; the failed write left no temporary file behind.
    on_disk = decode((tmp_path / STATE_FILE).read_bytes(), IDENTITY, now=clock.now())
    assert on_disk.saved_at == NOW
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]

    # The same problem again: counted again, not logged again.
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger="exporter.state"):
        saver.save_now()
    assert _metrics(registry) == (2.0, NOW)
    assert len(_warnings(caplog)) == 1

    disk.full = False
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger="exporter.state"):
        saver.save_now()
    assert _metrics(registry) == (2.0, NOW + 30)
    assert "works again" in caplog.records[-1].getMessage()


def test_the_restored_files_time_is_exposed_from_the_start(tmp_path: Path) -> None:
    """Right after a restart the state on disk is the restored one: its age is what matters, not absence."""
    (tmp_path / STATE_FILE).write_bytes(encode(SavedState(saved_at=NOW - 60, snapshot=Snapshot()), IDENTITY))
    saver, _, _, registry = _setup(tmp_path, _Disk())
    assert saver.load() is not None
    assert _metrics(registry) == (0.0, NOW - 60)


class _BrokenPlanner:
    """A planner whose state cannot be exported (a bug): the save fails before anything is written."""

    def export_state(self) -> PlannerState:
        raise RuntimeError("broken")

    def restore_state(self, state: PlannerState) -> None:
        pass


async def test_an_unexpected_failure_of_the_saving_loop_is_counted_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FixedClock(NOW)
    saver = StateSaver(
        StateStore(tmp_path),
        IDENTITY,
        snapshots=SnapshotStore(),
        budget=RequestBudget(clock=clock, budget=100),
        planner=_BrokenPlanner(),
        clock=clock,
        interval=0.001,
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="exporter.state"):
        task = asyncio.create_task(saver.run(stop))
        await eventually(lambda: saver.failures >= 2, within=5, what="two failed saves")
        stop.set()
        await asyncio.wait_for(task, 5)
    assert saver.last_saved_at is None
    assert not (tmp_path / STATE_FILE).exists()
    assert "saving the state failed unexpectedly" in caplog.text

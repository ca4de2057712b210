"""--storage.path as users run it: the exporter process is killed (SIGKILL, no shutdown save), even in the
middle of a write, and the next one starts from the last complete save: every addon on /metrics at once,
with the times it was read, while the API answers nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from exporter.budget import RequestBudget
from exporter.clock import SystemClock
from exporter.snapshot import Snapshot, SnapshotStore
from exporter.state.codec import SavedState, StateIdentity, decode, encode
from exporter.state.saver import StateSaver
from exporter.state.store import STATE_FILE, StateStore
from tests.support import free_port, http_ok, parse_samples, series, simulator_process, wait_until

TOKEN = "nf-state-process-token-93ad"
ADDONS = {"e2e-healthy", "e2e-failing", "e2e-stale", "e2e-unscheduled", "e2e-stuck"}


def _start(url: str, port: int, storage: Path) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN", "NF_API_HOST")
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.path={storage}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "NF_API_HOST": url, "NF_API_TOKEN": TOKEN},
    )


def _saved(storage: Path, url: str) -> SavedState | None:
    try:
        return decode(
            (storage / STATE_FILE).read_bytes(), StateIdentity(url, SecretStr(TOKEN)), now=time.time()
        )
    except (OSError, ValueError):
        return None


def _complete(state: SavedState | None) -> bool:
    addons = state.snapshot.addons.values() if state is not None else ()
    return {a.addon_id for a in addons} == ADDONS and all(a.backups is not None for a in addons)


def _addons_on_metrics(port: int) -> dict[str, float] | None:
    """Each addon's backups' refresh time on /metrics (None until /metrics answers)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    refreshes = series(parse_samples(text), "northflank_exporter_last_refresh_timestamp_seconds")
    return {dict(k)["addon"]: v for k, v in refreshes.items() if dict(k)["resource"] == "backups"}


def test_sigkill_then_restart_serves_the_last_save_at_once(tmp_path: Path) -> None:
    with simulator_process("--scenario", "e2e", "--token", TOKEN) as url:
        port = free_port()
        first = _start(url, port, tmp_path)
        try:
            wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=20, what="readiness")
            wait_until(lambda: _complete(_saved(tmp_path, url)), timeout=20, what="a save with every addon")
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        saved = _saved(tmp_path, url)
        assert saved is not None
        assert _complete(saved)
        assert TOKEN.encode() not in (tmp_path / STATE_FILE).read_bytes()
        # What a write killed half-way leaves: a partial temporary file, never read, removed at start.
        leftover = tmp_path / ".state.json.killed.tmp"
        leftover.write_bytes((tmp_path / STATE_FILE).read_bytes()[:100])
        # The API answers nothing from now on: what /metrics shows can only come from the file.
        admin = {"Authorization": f"Bearer {TOKEN}"}
        httpx.post(f"{url}/_simulator/faults", json={"kind": "hang"}, headers=admin).raise_for_status()

        began = time.monotonic()
        second = _start(url, port, tmp_path)
        try:
            shown: dict[str, float] | None = None
            deadline = began + 20
            while time.monotonic() < deadline:
                shown = _addons_on_metrics(port)
                if shown:
                    break
                time.sleep(0.02)
            elapsed = time.monotonic() - began
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=15)
    expected = {a.addon_id: a.backups.at for a in saved.snapshot.addons.values() if a.backups is not None}
    # The first answer of /metrics already has every addon, each with the time the killed process read it.
    assert shown == expected
    assert elapsed < 10, elapsed
    assert not leftover.exists()
    assert "ignoring" not in err, err
    assert TOKEN not in err


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from exporter.state.store import StateStore

directory, marker = Path(sys.argv[1]), Path(sys.argv[2])
def stop_here() -> None:
    marker.write_text("written")
    time.sleep(60)
StateStore(directory, before_rename=stop_here).write(b"NEW STATE, WRITTEN BUT NEVER RENAMED")
"""


def test_a_process_killed_mid_write_leaves_the_previous_state(tmp_path: Path) -> None:
    identity = StateIdentity("https://api.northflank.test", SecretStr(TOKEN))
    now = time.time()
    previous = encode(
        SavedState(saved_at=now, snapshot=Snapshot(up=True, ready=True, projects_at=now - 5)), identity
    )
    StateStore(tmp_path).write(previous)
    marker = tmp_path.parent / "marker"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path), str(marker)])
    try:
        wait_until(marker.exists, timeout=10, what="the new state written, not yet renamed")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert (tmp_path / STATE_FILE).read_bytes() == previous
    assert list(tmp_path.glob(".state.json.*.tmp")), "the killed write should have left its temporary file"
    store = SnapshotStore()
    clock = SystemClock()
    saver = StateSaver(
        StateStore(tmp_path),
        identity,
        snapshots=store,
        budget=RequestBudget(clock=clock),
        planner=None,
        clock=clock,
    )
    assert saver.load() is not None
    assert store.current.projects_at == now - 5
    assert not list(tmp_path.glob(".state.json.*.tmp"))

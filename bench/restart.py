"""Restart benchmark (``--storage.path``): what a restart costs with the saved state and without it.

    .venv/bin/python bench/restart.py                  # 1000 addons, killed 3 simulated hours in
    .venv/bin/python bench/restart.py --addons 100 --hours 2

1. **A virtual-time run** (as ``bench/freshness.py``: the real exporter against the in-process simulator,
   reference fleet, budget 500/h, the simulator allowing 1000/h). The exporter runs ``--hours``, saves its
   state, and is killed ``KILL_AFTER_SAVE`` seconds later (the requests of those seconds are in the API's
   log, not in the saved one: the worst case of a save every few seconds). Then three continuations from
   the kill, over the same simulated hour:

   - *no restart*: the first process simply goes on;
   - *restored*: a new process starts ``RESTART_GAP`` seconds later from the saved state;
   - *cold*: a new process starts then with nothing (what a restart did before ``--storage.path``).

   Printed for each: requests in the first 10 minutes after the restart, the most requests in any rolling
   hour across the restart (the first process's requests and the new one's, as the API counts them), and
   how long until every addon's backups are known again.

2. **Real processes**: the saved state of that run, at ``--addons``, is given to ``python -m exporter``
   against ``python -m exporter.simulator`` on 127.0.0.1; printed: the time from the process start until
   ``/metrics`` shows every addon's backups, restored and cold (cold: how many after ``--cold-seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

# The fleet, seeds, epoch and budget of bench/freshness.py, from it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from freshness import API_RATE_LIMIT, BUDGET, EPOCH, FLEET_SEED, HOUR, SIMULATOR_SEED, in_process_settings

from exporter.app import Exporter
from exporter.config import Settings
from exporter.simulator.app import DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from exporter.simulator.reference_fleet import reference
from exporter.state.codec import StateIdentity, decode, encode
from exporter.state.store import STATE_FILE
from exporter.virtual_time import VirtualClock, run_virtual

#: The kill comes this long after the last save (the saver writes every 5 s: the worst case).
KILL_AFTER_SAVE = 5.0
#: The new process starts this long after the kill.
RESTART_GAP = 5.0
FIRST_WINDOW = 600.0
VIRTUAL_IDENTITY = StateIdentity(IN_PROCESS_URL, SecretStr(DEFAULT_TOKEN))


def _settings(storage: Path | None) -> Settings:
    return in_process_settings(BUDGET, storage_path=storage)


def _all_known(exporter: Exporter, addons: int) -> bool:
    current = exporter.store.current.addons
    return len(current) == addons and all(a.backups is not None for a in current.values())


@dataclass
class Phase:
    #: The API's request log (times), in this phase.
    requests: list[float]
    #: When every addon's backups were known (inf: not within the phase).
    all_known_at: float


async def _drive(exporter: Exporter, clock: VirtualClock, addons: int, until: float) -> float:
    """Run the exporter's planner until ``until``; when every addon's backups were known."""
    stop = asyncio.Event()
    polling = asyncio.create_task(exporter.scheduler.run(exporter.refresher, stop))
    known = math.inf
    while clock.now() < until:
        await asyncio.sleep(min(10.0, max(0.001, until - clock.now())))
        if known == math.inf and _all_known(exporter, addons):
            known = clock.now()
    stop.set()
    polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)
    await exporter.client.aclose()
    return known


def first_process(addons: int, hours: float, storage: Path) -> tuple[Phase, Phase, float]:
    """The run up to the kill (its state saved in ``storage``), its no-restart continuation, and how long
    the save took (encoding and writing, fsync included; seconds)."""
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]  # as bench/freshness.py
    fleet = reference(addons, seed=FLEET_SEED)

    async def main(clock: VirtualClock) -> tuple[Phase, Phase, float]:
        simulator = Simulator(fleet, clock=clock, seed=SIMULATOR_SEED, rate_limit=API_RATE_LIMIT)
        exporter = Exporter(_settings(storage), clock=clock, transport=httpx.ASGITransport(app=simulator.app))
        saver = exporter.state_saver
        assert saver is not None
        stop = asyncio.Event()
        polling = asyncio.create_task(exporter.scheduler.run(exporter.refresher, stop))
        save_at = EPOCH + hours * HOUR - KILL_AFTER_SAVE
        known = math.inf
        while clock.now() < save_at:
            await asyncio.sleep(min(10.0, save_at - clock.now()))
            if known == math.inf and _all_known(exporter, addons):
                known = clock.now()
        began = time.perf_counter()
        saver.save_now()
        save_seconds = time.perf_counter() - began
        kill = save_at + KILL_AFTER_SAVE
        end = kill + HOUR
        await asyncio.sleep(end - clock.now())
        stop.set()
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await exporter.client.aclose()
        times = [r.time for r in simulator.request_log]
        before = Phase([t for t in times if t < kill], known)
        after = Phase([t for t in times if t >= kill], known)
        return before, after, save_seconds

    return run_virtual(main, epoch=EPOCH)


def second_process(addons: int, start: float, storage: Path | None) -> Phase:
    fleet = reference(addons, seed=FLEET_SEED)

    async def main(clock: VirtualClock) -> Phase:
        simulator = Simulator(fleet, clock=clock, seed=SIMULATOR_SEED, rate_limit=API_RATE_LIMIT)
        exporter = Exporter(_settings(storage), clock=clock, transport=httpx.ASGITransport(app=simulator.app))
        known = clock.now() if _all_known(exporter, addons) else math.inf
        found = await _drive(exporter, clock, addons, start + HOUR)
        return Phase([r.time for r in simulator.request_log], min(known, found))

    return run_virtual(main, epoch=start)


def max_in_rolling_hour(times: list[float]) -> int:
    ordered = sorted(times)
    best = first = 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - HOUR:
            first += 1
        best = max(best, last - first + 1)
    return best


# -- real processes -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _backups_known(port: int) -> int | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    marker = 'resource="backups"'
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("northflank_exporter_last_refresh_timestamp_seconds{") and marker in line
    )


def time_to_metrics(
    addons: int, limit: float, saved: Path | None, state_dir: Path
) -> tuple[float, int, float]:
    """A simulator process and an exporter process (with the state in ``saved``, keyed to the simulator's
    URL, when given): (seconds from the exporter's start until /metrics shows every addon's backups (inf:
    not within ``limit``), how many it showed last, seconds until /metrics first answered)."""
    # A port chosen now, so that the state can be keyed to the simulator's URL before either starts.
    sim_port, port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{sim_port}"
    if saved is not None:
        state = decode((saved / STATE_FILE).read_bytes(), VIRTUAL_IDENTITY, now=time.time())
        (state_dir / STATE_FILE).write_bytes(encode(state, StateIdentity(url, SecretStr(DEFAULT_TOKEN))))
    simulator = [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{sim_port}"]
    simulator += ["--scenario", "reference", "--addons", str(addons), "--seed", str(SIMULATOR_SEED)]
    sim = subprocess.Popen(
        [*simulator, "--token", DEFAULT_TOKEN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert sim.stdout is not None
    assert sim.stdout.readline().strip() == url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NF_", "NORTHFLANK_"))}
    env |= {"NF_API_HOST": url, "NF_API_TOKEN": DEFAULT_TOKEN}
    args = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"]
    args += [f"--northflank.request-budget={BUDGET}"]
    if saved is not None:
        args.append(f"--storage.path={state_dir}")
    began = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    shown, first_answer, done = 0, math.inf, math.inf
    try:
        while time.monotonic() - began < limit:
            count = _backups_known(port)
            if count is not None:
                first_answer = min(first_answer, time.monotonic() - began)
                shown = count
                if count >= addons:
                    done = time.monotonic() - began
                    break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sim.terminate()
        sim.communicate(timeout=10)
    return done, shown, first_answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addons", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=3.0, help="simulated hours before the kill")
    parser.add_argument("--cold-seconds", type=float, default=30.0, help="how long to watch a cold start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved"
        saved.mkdir()
        began = time.perf_counter()
        before, no_restart, save_seconds = first_process(args.addons, args.hours, saved)
        kill = EPOCH + args.hours * HOUR
        restart = kill + RESTART_GAP
        size = (saved / STATE_FILE).stat().st_size
        restored_dir = Path(tmp) / "restored"
        restored_dir.mkdir()
        (restored_dir / STATE_FILE).write_bytes((saved / STATE_FILE).read_bytes())
        restored = second_process(args.addons, restart, restored_dir)
        cold = second_process(args.addons, restart, None)
        virtual_seconds = time.perf_counter() - began
        print(
            f"{args.addons} addons, budget {BUDGET}/h, killed {args.hours:g} simulated hours in, "
            f"{KILL_AFTER_SAVE:g} s after a save; restarted {RESTART_GAP:g} s later; "
            f"state file {size / 1e6:.1f} MB, saved in {save_seconds * 1000:.0f} ms "
            f"(virtual-time runs: {virtual_seconds:.0f} s of CPU)"
        )
        print(
            "first process: every addon's backups known "
            f"{(before.all_known_at - EPOCH) / HOUR:.2f} h after its start"
        )
        print(f"{'after the kill':<16}{'first 10 min':>13}{'max/rolling h':>15}{'all known after':>17}")
        for name, phase, start in (
            ("no restart", no_restart, kill),
            ("restored", restored, restart),
            ("cold", cold, restart),
        ):
            first = sum(1 for t in phase.requests if start <= t < start + FIRST_WINDOW)
            rolling = max_in_rolling_hour(before.requests + phase.requests)
            known = (
                "at once"
                if name == "no restart" or phase.all_known_at <= start
                else f"{(phase.all_known_at - start) / 60:.1f} min"
                if math.isfinite(phase.all_known_at)
                else "> 1 h"
            )
            print(f"{name:<16}{first:>13}{rolling:>15}{known:>17}")
        print(f"(budget {BUDGET} requests per rolling hour; the API allows {API_RATE_LIMIT})")

        for name, source, limit in (("restored", saved, 30.0), ("cold", None, args.cold_seconds)):
            state_dir = Path(tmp) / f"process-{name}"
            state_dir.mkdir()
            done, shown, first_answer = time_to_metrics(args.addons, limit, source, state_dir)
            result = (
                f"{done:.2f} s"
                if math.isfinite(done)
                else f"not within {limit:g} s ({shown} of {args.addons})"
            )
            print(
                f"process start -> every addon's backups on /metrics, {name}: {result} "
                f"(/metrics first answered after {first_answer:.2f} s)"
            )


if __name__ == "__main__":
    main()

"""48 simulated hours of single missed runs, checked against the simulator's own record (issue 12).

The exporter as the app composes it (client, budget, refresher, planner) polls the in-process simulator
on a virtual clock; its exposition is read every virtual minute. The fleet is small and misses often:
hourly (once and twice an hour), daily (once and four times a day) and weekly schedules of both backup
types, one addon with a snapshot and a dump schedule at the same minute of every hour (a dump must not
stand in for a missed snapshot run), and failures (a failed run is no missed run). For every schedule:

- every run the simulator skipped is reported (``..._last_missed_run_timestamp_seconds`` shows it, and
  ``..._missed_runs`` counts it) within its grace plus 15 minutes;
- nothing else is: the last missed run shown is always a skipped run, the count never exceeds the
  skipped runs whose grace has ended in the last 24 hours, and ``..._missed`` is 1 only when the newest
  run whose grace has ended was skipped.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from pydantic import SecretStr

from exporter.app import Exporter
from exporter.config import ListenAddress, Settings
from exporter.simulator.app import DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from exporter.simulator.fleet import AddonSpec, BackupType, Fleet, Interval, ProjectSpec, ScheduleSpec
from exporter.simulator.history import scheduled_runs, skipped_runs
from exporter.virtual_time import VirtualClock, run_virtual

#: Monday 2026-11-23 00:00 UTC.
T0 = 1_795_392_000.0
HOUR = 3600.0
DAY = 86_400.0
HOURS = 48
#: The run continues past the 48 hours so that the last runs' grace can end and be reported.
TAIL = 3 * HOUR
GRACE = 7200.0
SLACK = 900.0
#: The exporter's first reads: a run whose grace ended before it is reported by then plus SLACK.
WARM_UP = HOUR
SEED = 11

Key = tuple[str, str]  # (addon, schedule)
FAMILIES = (
    "northflank_addon_backup_schedule_missed_runs",
    "northflank_addon_backup_schedule_last_missed_run_timestamp_seconds",
    "northflank_addon_backup_schedule_missed",
)


def _values(text: str, family: str) -> dict[Key, float]:
    pattern = re.compile(rf'^{family}{{project="[^"]+",addon="([^"]+)",schedule="([^"]+)"}} (\S+)$', re.M)
    return {(addon, schedule): float(v) for addon, schedule, v in pattern.findall(text)}


def _schedule(
    name: str,
    interval: Interval,
    minutes: tuple[int, ...],
    hours: tuple[int, ...] = (),
    days: tuple[int, ...] = (),
    backup_type: BackupType = "dump",
) -> ScheduleSpec:
    return ScheduleSpec(
        id=f"{name}-{interval}-{backup_type}",
        interval=interval,
        minutes=minutes,
        hours=hours,
        days=days,
        backup_type=backup_type,
        retention_days=3,
    )


def _addon(name: str, *schedules: ScheduleSpec, miss_rate: float) -> AddonSpec:
    return AddonSpec(
        id=name,
        name=name,
        project_id="p",
        type="postgresql",
        schedules=schedules,
        typical_duration=120.0,
        failure_rate=0.1,
        miss_rate=miss_rate,
    )


def fleet() -> Fleet:
    addons = (
        _addon("h1", _schedule("h1", "hourly", (7,), backup_type="snapshot"), miss_rate=0.06),
        _addon("h2", _schedule("h2", "hourly", (15, 45)), miss_rate=0.04),
        _addon("h3", _schedule("h3", "hourly", (0,)), miss_rate=0.06),
        # A snapshot and a dump every hour at the same minute: a dump never makes a snapshot run.
        _addon(
            "mixed",
            _schedule("mixed", "hourly", (0,), backup_type="snapshot"),
            _schedule("mixed", "hourly", (0,)),
            miss_rate=0.08,
        ),
        _addon("d1", _schedule("d1", "daily", (30,), (1, 7, 13, 19)), miss_rate=0.15),
        _addon("d2", _schedule("d2", "daily", (5,), (2,), backup_type="snapshot"), miss_rate=0.5),
        _addon("w1", _schedule("w1", "weekly", (10,), (3, 15), (0, 1, 2)), miss_rate=0.3),
    )
    return Fleet(projects=(ProjectSpec(id="p", name="P"),), addons=addons, start=T0)


@dataclass
class Seen:
    #: (time, count of missed runs, last missed run, missed flag), every virtual minute.
    samples: list[tuple[float, float | None, float | None, float | None]] = field(default_factory=list)
    #: When each last missed run was first shown.
    first_shown: dict[float, float] = field(default_factory=dict)


def drive(the_fleet: Fleet) -> tuple[dict[Key, Seen], int]:
    """Runs the exporter against the simulator for HOURS + TAIL; what it showed, and the 429s."""

    async def main(clock: VirtualClock) -> tuple[dict[Key, Seen], int]:
        simulator = Simulator(the_fleet, clock=clock, seed=SEED)
        settings = Settings(
            listen_address=ListenAddress("127.0.0.1", 0),
            api_url=IN_PROCESS_URL,
            token=SecretStr(DEFAULT_TOKEN),
            schedule_grace=GRACE,
        )
        exporter = Exporter(settings, clock=clock, transport=simulator.transport())
        stop = asyncio.Event()
        polling = asyncio.create_task(exporter.scheduler.run(exporter.refresher, stop))
        seen: dict[Key, Seen] = {(a.id, s.id): Seen() for a in simulator.fleet.addons for s in a.schedules}
        while clock.now() < T0 + HOURS * HOUR + TAIL:
            await asyncio.sleep(60)
            now = clock.now()
            # The exporter's own renderer on its current snapshot: what /metrics shows, without the
            # exporter's instruments (parsing them every minute would take most of the test's time).
            text = exporter.renderer.render(exporter.store.current, now).decode()
            counts, lasts, flags = (_values(text, name) for name in FAMILIES)
            for key, record in seen.items():
                last = lasts.get(key)
                record.samples.append((now, counts.get(key), last, flags.get(key)))
                if last is not None:
                    record.first_shown.setdefault(last, now)
        stop.set()
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await exporter.client.aclose()
        return seen, simulator.request_log.count(status=429)

    return run_virtual(main, epoch=T0)


def check(the_fleet: Fleet, seen: dict[Key, Seen]) -> dict[Key, list[float]]:
    """Asserts what the module docstring says; the delay after its grace with which each skipped run of
    the 48 hours was reported, by schedule."""
    end = T0 + HOURS * HOUR + TAIL
    reported: dict[Key, list[float]] = {key: [] for key in seen}
    for addon in the_fleet.addons:
        for schedule in addon.schedules:
            record = seen[(addon.id, schedule.id)]
            # From the longest look-back on (35 days): older runs are never judged.
            truth = [float(r) for r in skipped_runs(the_fleet, addon, schedule, SEED, T0 - 36 * DAY, end)]
            skipped = set(truth)

            def deadline(run: float) -> float:
                return max(run + GRACE, T0 + WARM_UP) + SLACK

            # Every skipped run of the 48 hours is shown as the last missed run in time.
            for run in (r for r in truth if T0 <= r < T0 + HOURS * HOUR):
                shown = record.first_shown.get(run)
                assert shown is not None, (
                    f"{schedule.id}: the run at T0{(run - T0) / HOUR:+.2f}h was never reported"
                )
                assert run + GRACE <= shown <= deadline(run), (schedule.id, run - T0, shown - run)
                reported[(addon.id, schedule.id)].append(shown - run - GRACE)
            for now, count, last, flag in record.samples:
                # Nothing but a skipped run is ever shown.
                assert last is None or last in skipped, (schedule.id, now - T0, last)
                # The count: at least every skipped run past its deadline, at most those past their grace.
                recent = [r for r in truth if now - DAY < r]
                low = sum(1 for r in recent if deadline(r) <= now)
                high = sum(1 for r in recent if r + GRACE <= now)
                if now >= T0 + WARM_UP + SLACK:
                    assert count is not None
                    assert low <= count <= high, (schedule.id, now - T0, low, count, high)
                    # The flag: 1 only for a skipped newest run, and for it once past its deadline.
                    newest = scheduled_runs(schedule, now - GRACE - 8 * DAY, now - GRACE)[-1]
                    if newest not in skipped:
                        assert flag == 0, (schedule.id, now - T0)
                    elif deadline(newest) <= now:
                        assert flag == 1, (schedule.id, now - T0)
    return reported


def test_every_missed_run_is_reported_within_its_grace_and_nothing_else() -> None:
    the_fleet = fleet()
    seen, rate_limited = drive(the_fleet)
    assert rate_limited == 0
    reported = check(the_fleet, seen)
    # The check meant something: every schedule skipped runs in the 48 hours, and the snapshot schedule
    # of the mixed addon skipped some at which its dump schedule made a backup.
    assert all(reported[key] for key in reported), reported
    mixed = the_fleet.addon("mixed")
    assert mixed is not None
    snapshot_skips, dump_skips = (
        set(skipped_runs(the_fleet, mixed, s, SEED, T0, T0 + HOURS * HOUR)) for s in mixed.schedules
    )
    assert snapshot_skips - dump_skips
    delays = [d for per_schedule in reported.values() for d in per_schedule]
    print(
        f"\n48 h: {len(delays)} skipped runs, all reported, none else; by schedule "
        f"{ {key[1]: len(v) for key, v in reported.items()} }; delay after the grace: "
        f"median {sorted(delays)[len(delays) // 2]:.0f} s, max {max(delays):.0f} s"
    )

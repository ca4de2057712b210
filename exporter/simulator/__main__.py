"""Run the simulator as a process::

    python -m exporter.simulator --listen 127.0.0.1:8089 --scenario demo --seed 1 --token TOKEN

It prints one line, its base URL, once it accepts requests, and exits 0 on SIGTERM or SIGINT.
The clock is the system clock; behaviours are relative to the moment it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from exporter.clock import SystemClock

from .app import DEFAULT_TEAM_ID, DEFAULT_TOKEN, Simulator
from .ratelimit import DEFAULT_LIMIT
from .scenarios import SCENARIOS
from .server import SimulatorServer


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m exporter.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token the API accepts")
    parser.add_argument("--admin-token", default=None, help="the token of /_simulator/ (default: --token)")
    parser.add_argument("--addons", type=int, default=None, help="size of the reference scenario")
    parser.add_argument("--team-id", default=DEFAULT_TEAM_ID)
    parser.add_argument("--rate-limit", type=int, default=DEFAULT_LIMIT, help="requests per hour")
    parser.add_argument("--no-retry-after", action="store_true", help="send 429s without Retry-After")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    simulator = Simulator.from_scenario(
        args.scenario,
        clock=SystemClock(),
        seed=args.seed,
        n_addons=args.addons,
        token=args.token,
        admin_token=args.admin_token,
        team_id=args.team_id,
        rate_limit=args.rate_limit,
        retry_after=not args.no_retry_after,
    )
    host, port = args.listen
    server = SimulatorServer(simulator, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = await server.start()
    print(url, flush=True)
    await server.serve_until(stop)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

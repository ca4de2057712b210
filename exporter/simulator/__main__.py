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
from pathlib import Path

import httpx

from exporter.clock import SystemClock

from .app import DEFAULT_TEAM_ID, DEFAULT_TOKEN, Simulator
from .ratelimit import DEFAULT_LIMIT
from .scenarios import SCENARIOS
from .server import SimulatorServer
from .webhooks import WebhookOptions, WebhookSender


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
    parser.add_argument(
        "--webhook-url",
        default=None,
        help="POST the backups' notification events here (e.g. the exporter's "
        "http://127.0.0.1:10151/webhook); see exporter/simulator/webhooks.py for their shape",
    )
    parser.add_argument(
        "--webhook-secret-file", default=None, help="file holding the integration secret to send with them"
    )
    parser.add_argument("--webhook-lost", type=float, default=0.0, help="share of deliveries never sent")
    parser.add_argument(
        "--webhook-duplicated", type=float, default=0.0, help="share of deliveries sent twice"
    )
    parser.add_argument(
        "--webhook-unknown-shape", type=float, default=0.0, help="share of deliveries in an unknown shape"
    )
    return parser.parse_args(argv)


def _webhook_options(args: argparse.Namespace) -> WebhookOptions | None:
    if args.webhook_url is None:
        return None
    secret = None
    if args.webhook_secret_file is not None:
        secret = Path(args.webhook_secret_file).read_text(encoding="utf-8").strip("\r\n")
    return WebhookOptions(
        url=args.webhook_url,
        secret=secret,
        lost=args.webhook_lost,
        duplicated=args.webhook_duplicated,
        unknown_shape=args.webhook_unknown_shape,
    )


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
    options = _webhook_options(args)
    if options is None:
        await server.serve_until(stop)
        return
    async with httpx.AsyncClient(timeout=10) as client:
        sending = asyncio.create_task(WebhookSender(simulator, options, client=client).run(stop))
        try:
            await server.serve_until(stop)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

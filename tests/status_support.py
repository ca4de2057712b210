"""Helpers of the status page's tests: a simulated fleet read into a snapshot in-process, hostile names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from exporter.clock import FixedClock
from exporter.northflank.client import NorthflankClient
from exporter.poller import Refresher
from exporter.simulator.app import Simulator
from exporter.snapshot import Snapshot, SnapshotStore
from tests.support import refresh_everything

TOKEN = "nf-status-page-token"

#: Names that would be markup if they were not escaped.
MARKUP = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</td></tr></table><h1>pwned</h1>",
    "<style>body{display:none}</style>",
    "&lt;b&gt;",
)


async def read_fleet(scenario: str, *, now: float, seed: int = 0) -> Snapshot:
    """The snapshot after one complete read of ``scenario`` at ``now`` (the simulator in-process)."""
    clock = FixedClock(now)
    simulator = Simulator.from_scenario(scenario, clock=clock, seed=seed, token=TOKEN)
    store = SnapshotStore()
    async with NorthflankClient(
        base_url="http://simulator.invalid",
        token=SecretStr(TOKEN),
        transport=simulator.transport(),
        clock=clock,
    ) as client:
        refresher = Refresher(client, store, clock=clock, registry=CollectorRegistry(auto_describe=False))
        await refresh_everything(refresher)
    return store.current

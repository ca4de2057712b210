"""``--demo``: the exporter against the built-in simulator, in-process, with no account and no token."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from exporter.app import Exporter
from exporter.clock import Clock
from exporter.config import Settings
from exporter.simulator.app import DEFAULT_TOKEN, Simulator

log = logging.getLogger(__name__)

#: A host that cannot resolve: requests go to the in-process simulator, never to the network.
DEMO_API_URL = "http://northflank-simulator.invalid"


def demo_exporter(settings: Settings, *, clock: Clock) -> Exporter:
    simulator = Simulator.from_scenario("demo", clock=clock)
    log.warning(
        "DEMO MODE: serving SIMULATED data from the built-in Northflank simulator "
        "(%d addons in %d projects); nothing here comes from a real Northflank account",
        len(simulator.fleet.addons),
        len(simulator.fleet.projects),
    )
    return Exporter(
        settings,
        clock=clock,
        transport=simulator.transport(),
        token=SecretStr(DEFAULT_TOKEN),
        api_url=DEMO_API_URL,
    )

"""``--demo``: the exporter against the built-in simulator, in-process, with no account and no token.

The simulator also plays Northflank's notification integration: it POSTs its backup events (with a few
deliveries lost, duplicated or in an unknown shape) to the exporter's webhook listener, over a real socket
(``--webhook.listen-address``, else 127.0.0.1 on a free port with a random secret), so that the webhook's
metrics and its effect (backups seen seconds after they end) show in the demo too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

import httpx
from pydantic import SecretStr

from exporter.app import Exporter
from exporter.clock import Clock
from exporter.config import ListenAddress, Settings
from exporter.simulator.app import DEFAULT_TOKEN, Simulator
from exporter.simulator.webhooks import WebhookOptions, WebhookSender
from exporter.web.webhook import WEBHOOK_PATH, WebhookSecret

log = logging.getLogger(__name__)

#: A host that cannot resolve: requests go to the in-process simulator, never to the network.
DEMO_API_URL = "http://northflank-simulator.invalid"
#: What the demo's deliveries go through: some lost, some twice, some in a shape nobody documented.
DEMO_LOST = 0.1
DEMO_DUPLICATED = 0.05
DEMO_UNKNOWN_SHAPE = 0.1


class DemoExporter(Exporter):
    """The exporter, with the simulator delivering its webhook events to the exporter's listener."""

    def __init__(self, settings: Settings, *, clock: Clock, simulator: Simulator) -> None:
        super().__init__(
            settings,
            clock=clock,
            transport=simulator.transport(),
            token=SecretStr(DEFAULT_TOKEN),
            api_url=DEMO_API_URL,
        )
        self.simulator = simulator

    async def run(self, stop: asyncio.Event) -> None:
        deliveries = asyncio.create_task(self._deliver(stop), name="demo-webhooks")
        try:
            await super().run(stop)
        finally:
            deliveries.cancel()
            await asyncio.gather(deliveries, return_exceptions=True)

    async def _deliver(self, stop: asyncio.Event) -> None:
        await self.started.wait()
        listener, secret = self.webhook_listener, self.settings.webhook_secret
        if listener is None or secret is None:
            return
        host = listener.address.host
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        host = f"[{host}]" if ":" in host else host
        options = WebhookOptions(
            url=f"http://{host}:{listener.port}{WEBHOOK_PATH}",
            secret=secret.get_secret_value(),
            lost=DEMO_LOST,
            duplicated=DEMO_DUPLICATED,
            unknown_shape=DEMO_UNKNOWN_SHAPE,
        )
        log.info("DEMO MODE: the simulator posts its backup events to %s", options.url)
        async with httpx.AsyncClient(timeout=10) as client:
            await WebhookSender(self.simulator, options, client=client).run(stop)


def demo_exporter(settings: Settings, *, clock: Clock) -> Exporter:
    simulator = Simulator.from_scenario("demo", clock=clock)
    log.warning(
        "DEMO MODE: serving SIMULATED data from the built-in Northflank simulator "
        "(%d addons in %d projects); nothing here comes from a real Northflank account",
        len(simulator.fleet.addons),
        len(simulator.fleet.projects),
    )
    if settings.webhook_listen_address is None:
        settings = dataclasses.replace(
            settings,
            webhook_listen_address=ListenAddress("127.0.0.1", 0),
            webhook_secret=WebhookSecret(secrets.token_urlsafe(24).encode()),
        )
    return DemoExporter(settings, clock=clock, simulator=simulator)

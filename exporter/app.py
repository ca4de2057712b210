"""Composition root: wires the client, the poller, the collector and the HTTP server, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import httpx
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from exporter import __version__
from exporter.budget import BudgetCollector, RequestBudget
from exporter.clock import Clock
from exporter.collector import SnapshotRenderer
from exporter.config import Settings
from exporter.northflank.client import NorthflankClient
from exporter.northflank.metrics import ApiMetrics
from exporter.planner import Planner, PlannerCollector, PlannerSettings
from exporter.poller import FixedIntervalScheduler, Refresher, RefreshScheduler
from exporter.server import bind_socket, create_app
from exporter.snapshot import SnapshotStore
from exporter.webconfig import UvicornConfig, load_web_config, log_web_config

log = logging.getLogger(__name__)

#: How long shutdown may take before in-flight work is abandoned.
SHUTDOWN_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the exporter owns SIGTERM/SIGINT and stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_scheduler(settings: Settings, *, budget: RequestBudget, clock: Clock) -> RefreshScheduler:
    """The planner; or, with the deprecated --northflank.refresh-interval, a complete pass every interval."""
    if settings.refresh_interval is not None:
        log.warning(
            "--northflank.refresh-interval is deprecated: reading everything every %gs instead of planning "
            "refreshes within the request budget; remove the flag to let the exporter plan them",
            settings.refresh_interval,
        )
        return FixedIntervalScheduler(settings.refresh_interval)
    return Planner(
        budget,
        clock=clock,
        settings=PlannerSettings(
            max_staleness=settings.max_staleness,
            discovery_interval=settings.discovery_interval,
            schedules_interval=settings.schedules_interval,
            restores_interval=settings.restores_interval,
            concurrency=settings.concurrency,
        ),
    )


class Exporter:
    """One exporter: poller and web server sharing a snapshot store, on one event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        token: SecretStr | None = None,
        api_url: str | None = None,
        scheduler: RefreshScheduler | None = None,
    ) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=False)
        self.store = SnapshotStore()
        self._clock = clock
        resolved_token = token or settings.token
        if resolved_token is None:
            raise ValueError("an API token is required")
        # Every request, retries and pages included, passes the budget: whatever the scheduler.
        self.budget = RequestBudget(
            clock=clock, budget=settings.request_budget, reserve=settings.rate_limit_reserve
        )
        self.registry.register(BudgetCollector(self.budget, clock=clock))
        self.client = NorthflankClient(
            base_url=api_url or settings.api_url,
            token=resolved_token,
            transport=transport,
            clock=clock,
            metrics=ApiMetrics(self.registry),
            gate=self.budget,
            timeout=settings.request_timeout,
        )
        self.refresher = Refresher(
            self.client,
            self.store,
            clock=clock,
            registry=self.registry,
            teams=settings.teams,
            concurrency=settings.concurrency,
            on_rate_limited=self.budget.rate_limited,
        )
        self.scheduler = scheduler or make_scheduler(settings, budget=self.budget, clock=clock)
        if isinstance(self.scheduler, Planner):
            self.registry.register(PlannerCollector(self.scheduler, lambda: self.store.current, clock=clock))
        self.renderer = SnapshotRenderer(schedule_grace_seconds=settings.schedule_grace, version=__version__)
        # --web.config.file: TLS for uvicorn, basic auth/headers/rate limit for the app (checked at start).
        self.web_config = load_web_config(settings.web_config_file) if settings.web_config_file else None
        if self.web_config is not None:
            log_web_config(self.web_config)
        self.app = create_app(
            render_metrics=self.render_metrics,
            snapshot=lambda: self.store.current,
            telemetry_path=settings.telemetry_path,
            version=__version__,
            demo=settings.demo,
            web_config=self.web_config,
        )
        self._server = _Server(
            UvicornConfig(
                self.app,
                web_config=self.web_config,
                host=settings.listen_address.host,
                port=settings.listen_address.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
        self.started = asyncio.Event()
        self.bound_port = 0

    def render_metrics(self) -> bytes:
        """The snapshot's families, then the exporter's own instruments (API requests, errors...) and,
        with the planner, when each resource is next read."""
        trailer = generate_latest(self.registry)
        if isinstance(self.scheduler, Planner):
            trailer += self.scheduler.render_next_refresh().encode()
        return self.renderer.render(self.store.current, self._clock.now(), trailer=trailer)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve and poll until ``stop`` is set. Raises OSError if the listen address cannot be bound."""
        sock = bind_socket(self.settings.listen_address)
        self.bound_port = sock.getsockname()[1]
        serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        polling = asyncio.create_task(self.scheduler.run(self.refresher, stop), name="poller")
        log.info("listening on %s, metrics at %s", self.settings.listen_address, self.settings.telemetry_path)
        self.started.set()
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            self._server.should_exit = True
            polling.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(serving, polling, return_exceptions=True), SHUTDOWN_SECONDS
                )
            sock.close()
            await self.client.aclose()

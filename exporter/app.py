"""Composition root: wires the client, the poller, the collector and the HTTP server, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, ProcessCollector
from starlette.types import ASGIApp

from exporter import __version__
from exporter.apitoken import ApiToken, ReloadableToken
from exporter.budget import BudgetCollector, RequestBudget
from exporter.buildinfo import BuildInfo, current_build
from exporter.clock import Clock
from exporter.collector import SnapshotRenderer
from exporter.config import Settings
from exporter.exposition import render_registry
from exporter.northflank.client import NorthflankClient
from exporter.northflank.metrics import ApiMetrics
from exporter.planner import Planner, PlanningLoop
from exporter.poller import Refresher, RefreshScheduler
from exporter.snapshot import SnapshotStore
from exporter.state.codec import StateIdentity
from exporter.state.metrics import StateSaverCollector
from exporter.state.saver import StateSaver
from exporter.state.store import StateStore
from exporter.web.config import WebConfigError, log_web_config
from exporter.web.connections import (
    ConnectionCollector,
    ConnectionGuard,
    connection_limit,
    fd_reserve,
    quiet_accept_errors,
)
from exporter.web.middleware import WebSecurityMiddleware
from exporter.web.scrape_cache import ScrapeCache, ScrapeFailuresCollector, TrailerPart
from exporter.web.server import bind_socket, create_app
from exporter.web.serving import Server, UvicornConfig
from exporter.web.status_view import ExporterStatus, StatusSource
from exporter.web.tls import load_web_config, reload_tls
from exporter.web.webhook import NoHints, WebhookCollector, WebhookReceiver
from exporter.web.webhook_listener import WebhookListener

log = logging.getLogger(__name__)

#: How long shutdown may take before in-flight work is abandoned.
SHUTDOWN_SECONDS = 5.0


class Exporter:
    """One exporter: poller and web server sharing a snapshot store, on one event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        token: ApiToken | None = None,
        api_url: str | None = None,
        scheduler: RefreshScheduler | None = None,
        build: BuildInfo | None = None,
        scrape_cache: bool = True,
    ) -> None:
        """``scrape_cache=False``: /metrics renders and compresses at every scrape, as before the scrape
        cache (for bench/scrape.py's comparison)."""
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=False)
        self.store = SnapshotStore()
        self._clock = clock
        resolved_token = token or settings.token
        if resolved_token is None:
            raise ValueError("an API token is required")
        self._token = resolved_token
        self.api_metrics = ApiMetrics(self.registry)
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
            metrics=self.api_metrics,
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
        self.scheduler = scheduler or Planner.from_settings(settings, budget=self.budget, clock=clock)
        scheduler_metrics = self.scheduler.collector(lambda: self.store.current)
        if scheduler_metrics is not None:
            self.registry.register(scheduler_metrics)
        #: --storage.path: the previous process's state, restored before anything is served or read.
        self.state_saver: StateSaver | None = None
        if settings.storage_path is not None:
            self.state_saver = StateSaver(
                StateStore(settings.storage_path),
                StateIdentity(api_url or settings.api_url, resolved_token),
                snapshots=self.store,
                budget=self.budget,
                planner=self.scheduler,
                clock=clock,
            )
            self.state_saver.load()
            self.registry.register(StateSaverCollector(self.state_saver))
        build = build or current_build()
        self.renderer = SnapshotRenderer(
            schedule_grace_seconds=settings.schedule_grace,
            version=build.version,
            revision=build.revision,
            python_version=build.python_version,
        )
        #: /metrics: rendered once per snapshot (and scrape-time second) for every concurrent scraper.
        self.scrapes = ScrapeCache(
            self.renderer,
            snapshot=lambda: self.store.current,
            clock=clock,
            trailer=(
                TrailerPart("instruments", lambda: render_registry(self.registry)),
                # Thousands of samples in a large fleet, and due times that change only as reads end.
                TrailerPart("scheduler", self.scheduler.render_extra, per_second=True),
            ),
        )
        # process_* (CPU, memory, descriptors, start time), as every Prometheus client library exposes.
        ProcessCollector(registry=self.registry)
        # --web.config.file: TLS for uvicorn, basic auth/headers/rate limit for the app (checked at start).
        self.web_config = load_web_config(settings.web_config_file) if settings.web_config_file else None
        if self.web_config is not None:
            log_web_config(self.web_config)
        #: the web config TLS was set up with: SIGHUP can renew its certificate, not change the rest
        self._started_web_config = self.web_config
        routes = create_app(
            render_metrics=self.render_metrics,
            scrapes=self.scrapes if scrape_cache else None,
            snapshot=lambda: self.store.current,
            telemetry_path=settings.telemetry_path,
            version=__version__,
            demo=settings.demo,
            status=StatusSource(
                snapshot=lambda: self.store.current,
                now=clock.now,
                exporter=self.exporter_status,
                schedule_grace_seconds=settings.schedule_grace,
            ),
        )
        # Basic auth, headers and rate limit wrap the whole app here, where SIGHUP can swap them.
        self.security = WebSecurityMiddleware(routes, self.web_config) if self.web_config else None
        self.app: ASGIApp = self.security if self.security is not None else routes
        # Bounded below the open files limit so that a full HTTP side leaves the poller its descriptors.
        max_connections, lowered = connection_limit(
            settings.max_connections, reserve=fd_reserve(settings.concurrency)
        )
        if lowered is not None:
            log.warning("%s", lowered)
        self.connections = ConnectionGuard(max_connections)
        self.registry.register(ConnectionCollector(self.connections))
        self.registry.register(ScrapeFailuresCollector(self.scrapes))
        self._server = Server(
            UvicornConfig(
                self.app,
                web_config=self.web_config,
                # h11 whatever else is installed: the read timeout follows its connection states.
                http="h11",
                read_timeout=settings.read_timeout,
                timeout_keep_alive=settings.idle_timeout,
                connections=self.connections,
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
        #: --webhook.listen-address: Northflank's notifications, on a listener of their own.
        self.webhook: WebhookReceiver | None = None
        self.webhook_listener: WebhookListener | None = None
        if settings.webhook_listen_address is not None and settings.webhook_secret is not None:
            hints = self.scheduler if isinstance(self.scheduler, PlanningLoop) else NoHints()
            self.webhook = WebhookReceiver(settings.webhook_secret, hints, clock=clock)
            self.registry.register(WebhookCollector(self.webhook))
            self.webhook_listener = WebhookListener(
                self.webhook,
                settings.webhook_listen_address,
                connections=self.connections,
                read_timeout=settings.read_timeout,
                idle_timeout=settings.idle_timeout,
            )

    def reload(self) -> None:
        """SIGHUP: read the token file, the web config and the webhook secret file again. The snapshot, the
        poller and the open connections carry on; a web config or a webhook secret that fails to load
        leaves the one in use, with one error line."""
        log.info("SIGHUP: reading the token file, the web config and the webhook secret file again")
        try:
            if isinstance(self._token, ReloadableToken):
                self._token.reload()  # logs a rotation or a problem itself, never the token
            if self.webhook is not None:
                self.webhook.reload_secret()  # likewise, never the secret
            if self.settings.web_config_file is not None:
                self._reload_web_config(self.settings.web_config_file)
        except Exception as error:  # a signal handler must not end the process; the data is still good
            log.error("reloading on SIGHUP failed (%s); carrying on as before", type(error).__name__)
            log.debug("reloading on SIGHUP failed", exc_info=True)

    def _reload_web_config(self, path: Path) -> None:
        try:
            config = load_web_config(path)
            note = None
            if self._started_web_config is not None:
                note = reload_tls(getattr(self._server.config, "ssl", None), self._started_web_config, config)
        except WebConfigError as error:
            log.error("--web.config.file: %s; keeping the web config in use", error)
            return
        if self.security is not None:  # always, with a file: the middleware is there from the start
            self.security.use(config)
        self.web_config = config
        log_web_config(config)
        if note is not None:
            log.warning("--web.config.file %s: %s", path, note)

    def exporter_status(self, now: float) -> ExporterStatus:
        """The exporter's own health for the top of the status page."""
        limited = sum(
            sample.value
            for metric in self.api_metrics.requests.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("code") == "429"
        )
        return ExporterStatus(
            api_up=self.store.current.api_up if self.store.current.up is not None else None,
            requests_last_hour=self.budget.spent(now),
            request_budget=self.budget.limit,
            rate_limited_responses=int(limited),
            deferred_seconds=self.budget.deferred_seconds(now),
            demo=self.settings.demo,
            version=__version__,
        )

    def render_metrics(self) -> bytes:
        """The snapshot's families, then the exporter's own instruments (API requests, errors...) and
        what the scheduler renders itself (the planner: when each resource is next read)."""
        parts: list[tuple[str, Callable[[], bytes]]] = [
            ("instruments", lambda: render_registry(self.registry)),
            ("scheduler", self.scheduler.render_extra),
        ]
        trailer = b""
        # A part that cannot be written is left out and counted, never the whole page.
        for family, part in parts:
            try:
                trailer += part()
            except Exception as error:
                self.renderer.errors.count(family, error)
        with self.scrapes.render_lock:  # the scrape cache may be rendering in a thread
            return self.renderer.render(self.store.current, self._clock.now(), trailer=trailer)

    @staticmethod
    async def _save_at_shutdown(saving: asyncio.Task[None], saver: StateSaver) -> None:
        """The last save, once the poller has stopped (nothing changes the state any more)."""
        saving.cancel()
        await asyncio.gather(saving, return_exceptions=True)
        try:
            await asyncio.wait_for(saver.save(), SHUTDOWN_SECONDS)
        except Exception as error:  # shutting down: the previous save stays on disk
            log.error("--storage.path: saving the state at shutdown failed (%s)", type(error).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve and poll until ``stop`` is set. Raises OSError if the listen address cannot be bound."""
        sock = bind_socket(
            self.settings.listen_address,
            guard=self.connections,
            tls=self.web_config is not None and self.web_config.tls is not None,
        )
        self.bound_port = sock.getsockname()[1]
        if self.webhook_listener is not None:
            try:
                self.webhook_listener.start()
            except OSError:
                sock.close()
                raise
        loud_accept_errors = quiet_accept_errors(asyncio.get_running_loop())
        serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        polling = asyncio.create_task(self.scheduler.run(self.refresher, stop), name="poller")
        saving = asyncio.create_task(self.state_saver.run(stop), name="state") if self.state_saver else None
        # The port actually bound: with :0 (tests, several exporters on one host) the flag says nothing.
        bound = dataclasses.replace(self.settings.listen_address, port=self.bound_port)
        log.info("listening on %s, metrics at %s", bound, self.settings.telemetry_path)
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
            if saving is not None and self.state_saver is not None:
                await self._save_at_shutdown(saving, self.state_saver)
            sock.close()
            if self.webhook_listener is not None:
                await self.webhook_listener.stop(SHUTDOWN_SECONDS)
            loud_accept_errors()
            await self.client.aclose()

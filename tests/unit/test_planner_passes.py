"""The planner's forced pass and its rule for the projects listing, against a scripted account in virtual
time: the projects listing goes first and alone at start, in a forced pass and while the token is refused
(any other listing would be refused too), and :attr:`PlanningLoop.settled` says when a pass is over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from exporter.budget import RequestBudget
from exporter.northflank.errors import AuthError, NorthflankError, ServerError
from exporter.planner import Planner
from exporter.resources import Resource
from exporter.virtual_time import VirtualClock, run_virtual
from tests.unit.test_planner import HOUR, T0, Account, ScriptedAddon

ADDONS = [ScriptedAddon("p1", f"a{i}") for i in range(3)] + [ScriptedAddon("p2", "b0")]
#: Every listing of the fleet: projects, 2 addon listings, destinations, 3 per addon.
LISTINGS = 1 + 2 + 1 + 3 * len(ADDONS)


def run(
    script: Callable[[Account, Planner, VirtualClock], Coroutine[Any, Any, None]],
    *,
    fail: Callable[[str, str, float], NorthflankError | None] = lambda *_: None,
) -> None:
    async def main(clock: VirtualClock) -> None:
        gate = RequestBudget(clock=clock, budget=5000)
        account = Account(clock=clock, budget=gate, addons=list(ADDONS), fail=fail, latency=1.0)
        planner = Planner(gate, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(planner.run(account, stop))
        try:
            await script(account, planner, clock)
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)

    run_virtual(main, epoch=T0)


async def settle(planner: Planner) -> None:
    async with asyncio.timeout(600):
        await planner.settled.wait()


def resources(calls: list[tuple[float, str, str]]) -> list[str]:
    return [resource for _, resource, _ in calls]


def test_the_first_reads_start_with_the_projects_listing_alone_and_settle_once_all_is_read() -> None:
    async def script(account: Account, planner: Planner, clock: VirtualClock) -> None:
        await settle(planner)
        assert resources(account.calls)[0] == Resource.PROJECTS
        # Nothing else went out while the projects listing was being read (it takes a second here).
        assert account.calls[1][0] >= T0 + 1.0
        assert len(account.calls) == LISTINGS
        assert not planner.in_flight()

    run(script)


def test_a_forced_pass_reads_everything_once_the_projects_first() -> None:
    async def script(account: Account, planner: Planner, clock: VirtualClock) -> None:
        await settle(planner)
        await asyncio.sleep(600)  # nothing is due ten minutes on but, maybe, a scheduled run's check
        first = len(account.calls)
        planner.read_everything()
        assert not planner.settled.is_set()
        pass_began = clock.now()
        await settle(planner)
        forced = account.calls[first:]
        assert resources(forced)[0] == Resource.PROJECTS
        assert all(at >= pass_began + 1.0 for at, _, _ in forced[1:])
        assert sorted(resources(forced)) == sorted(resources(account.calls[:LISTINGS]))

    run(script)


def test_while_the_token_is_refused_only_the_projects_listing_goes() -> None:
    refused_until = T0 + 2 * HOUR

    def fail(resource: str, _addon: str, now: float) -> NorthflankError | None:
        return AuthError("refused", status_code=401) if now < refused_until else None

    async def script(account: Account, planner: Planner, clock: VirtualClock) -> None:
        await asyncio.sleep(refused_until - T0 - 1)
        assert set(resources(account.calls)) == {Resource.PROJECTS}
        assert len(account.calls) > 3  # retried, backing off
        await asyncio.sleep(HOUR)
        assert set(resources(account.calls)) == {r for r in Resource if r != Resource.DESTINATION_BACKUPS}

    run(script, fail=fail)


def test_a_401_on_another_listing_sends_the_projects_listing_at_once_and_holds_the_rest() -> None:
    refused_from = T0 + HOUR

    def fail(resource: str, _addon: str, now: float) -> NorthflankError | None:
        return AuthError("refused", status_code=401) if now >= refused_from else None

    async def script(account: Account, planner: Planner, clock: VirtualClock) -> None:
        await asyncio.sleep(refused_from - T0)
        first = len(account.calls)
        planner.read_everything()
        await settle(planner)
        # The pass: the projects listing, refused; nothing else. The token stays refused: the loop waits
        # for the projects listing's retry only.
        assert resources(account.calls[first:]) == [Resource.PROJECTS]
        assert planner.settled.is_set()

    run(script, fail=fail)


def test_a_server_error_on_the_projects_listing_does_not_hold_the_rest() -> None:
    def fail(resource: str, _addon: str, now: float) -> NorthflankError | None:
        return ServerError("down", status_code=503) if resource == Resource.PROJECTS else None

    async def script(account: Account, planner: Planner, clock: VirtualClock) -> None:
        await settle(planner)
        # No project was ever listed, so no addon is known: the destinations are still read.
        assert resources(account.calls) == [Resource.PROJECTS, Resource.BACKUP_DESTINATIONS]

    run(script, fail=fail)

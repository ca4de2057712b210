"""The status page, /api/v1/addons and ``check`` over real sockets on 127.0.0.1, against the simulator.

``check`` runs in a thread (it has its own event loop, as from the command line) while the simulator
serves on this test's loop; its exit status is 0, 1 or 2 as the fleet is all OK, not, or unknown.
"""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import bcrypt
import httpx

from exporter import status_check
from exporter.clock import FixedClock
from exporter.health import Health
from exporter.simulator.app import Simulator
from exporter.simulator.scenarios import e2e
from exporter.simulator.server import serve
from exporter.web.statuspage import CSP
from tests.pki import make_pki
from tests.support import MONDAY_NOON, free_port, simulated_exporter

TOKEN = "nf-status-http-token-7d1e"


async def test_page_and_json_over_http() -> None:
    async with simulated_exporter("demo", token=TOKEN) as simulated:
        running = simulated.exporter
        await running.scheduler.refresh()
        page = await running.http.get(f"{running.url}/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.text.count('<tr class="row"') == len(simulated.simulator.fleet.addons)

        document = (await running.http.get(f"{running.url}/api/v1/addons")).json()
        assert document["version"] == 1
        assert document["exporter"]["api_reachable"] is True
        assert document["exporter"]["requests_last_hour"] > 0
        assert document["exporter"]["request_budget"] == 500
        addons = {(a["project"]["id"], a["addon"]["id"]) for a in document["addons"]}
        assert addons == {(a.project_id, a.id) for a in simulated.simulator.fleet.addons}

        problems = (
            await running.http.get(f"{running.url}/api/v1/addons", params={"state": "problems"})
        ).json()
        assert problems["addons"]
        assert all(not a["ok"] for a in problems["addons"])
        filtered = await running.http.get(f"{running.url}/", params={"state": "ok", "sort": "nonsense"})
        assert filtered.status_code == 200
        assert filtered.text.count('<tr class="row"') == document["counts"]["ok"]


async def test_basic_auth_and_tls_cover_the_page_and_the_json(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    password = "status-pa55word"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    config = pki.directory / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  viewer: {hashed}\n",
        encoding="utf-8",
    )
    async with simulated_exporter("demo", token=TOKEN, web_config_file=config) as simulated:
        running = simulated.exporter
        await running.scheduler.refresh()
        url = f"https://127.0.0.1:{running.exporter.bound_port}"
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=pki.ca.path), timeout=10
        ) as client:
            for path in ("/", "/api/v1/addons"):
                refused = await client.get(f"{url}{path}")
                wrong = await client.get(f"{url}{path}", auth=("viewer", "wrong"))
                allowed = await client.get(f"{url}{path}", auth=("viewer", password))
                assert (refused.status_code, wrong.status_code, allowed.status_code) == (401, 401, 200), path
                assert "Northflank" not in refused.text
        async with httpx.AsyncClient(timeout=5) as plain:
            try:
                response = await plain.get(
                    url.replace("https://", "http://") + "/", auth=("viewer", password)
                )
            except httpx.TransportError:
                pass
            else:
                raise AssertionError(f"plain HTTP was answered: {response.status_code}")


# --- check --------------------------------------------------------------------------------------------


async def _check(api_url: str, tmp_path: Path, *args: str, token: str = TOKEN) -> tuple[int, str]:
    token_file = tmp_path / "token"
    token_file.write_text(token, encoding="utf-8")
    argv = [
        f"--northflank.api-url={api_url}",
        f"--northflank.token-file={token_file}",
        "--northflank.timeout=5s",
        "--log.level=error",
        *args,
    ]
    out = io.StringIO()
    code = await asyncio.to_thread(status_check.main, argv, out=out, clock=FixedClock(MONDAY_NOON))
    return code, out.getvalue()


async def test_check_exits_1_when_an_addon_is_not_ok(tmp_path: Path) -> None:
    simulator = Simulator.from_scenario("e2e", clock=FixedClock(MONDAY_NOON), token=TOKEN)
    async with serve(simulator) as api_url:
        code, text = await _check(api_url, tmp_path)
        json_code, body = await _check(api_url, tmp_path, "--output", "json")
    assert code == json_code == 1
    assert "e2e-failing" in text
    assert "not OK" in text
    assert "\x1b[" not in text  # not a terminal: no colours
    document = json.loads(body)
    assert document["version"] == 1
    assert document["result"] == "not_ok"
    states = {a["addon"]["id"]: a["state"] for a in document["addons"]}
    assert states["e2e-healthy"] in (Health.OK.value, Health.IN_PROGRESS.value)
    failing = next(a for a in document["addons"] if a["addon"]["id"] == "e2e-failing")
    assert {p["state"] for p in failing["problems"]} >= {Health.STALE.value, Health.FAILING_REPEATEDLY.value}
    assert states["e2e-unscheduled"] in (Health.NO_SCHEDULE.value, Health.STALE.value)
    # One pass: the projects, each project's addons, each addon's backups and schedules (one page each).
    fleet = simulator.fleet
    assert document["exporter"]["requests_last_hour"] == 1 + len(fleet.projects) + 2 * len(fleet.addons)


async def test_check_exits_0_when_every_addon_is_ok(tmp_path: Path) -> None:
    fleet = e2e(0, MONDAY_NOON)
    healthy = next(a for a in fleet.addons if a.id == "e2e-healthy")
    only = replace(
        fleet,
        addons=(healthy,),
        projects=tuple(p for p in fleet.projects if p.id == healthy.project_id),
        destinations=fleet.destinations,
    )
    simulator = Simulator(only, clock=FixedClock(MONDAY_NOON), token=TOKEN)
    async with serve(simulator) as api_url:
        code, body = await _check(api_url, tmp_path, "--output=json")
    assert code == 0, body
    assert json.loads(body)["result"] == "ok"


async def test_check_exits_2_when_it_cannot_tell(tmp_path: Path) -> None:
    simulator = Simulator.from_scenario("e2e", clock=FixedClock(MONDAY_NOON), token=TOKEN)
    async with serve(simulator) as api_url:
        refused, text = await _check(api_url, tmp_path, token="nf-wrong-token")
    assert refused == 2
    assert "could not tell" in text
    assert "nf-wrong-token" not in text
    unreachable, body = await _check(f"http://127.0.0.1:{free_port()}", tmp_path, "--output", "json")
    assert unreachable == 2
    document = json.loads(body)
    assert document["result"] == "unknown"
    assert document["errors"]
    bad_flag, _ = await _check("http://127.0.0.1:1", tmp_path, "--output", "yaml")
    assert bad_flag == 2


def test_the_cli_dispatches_the_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--demo", "--output", "json", "--log.level=error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # the demo fleet has problems on purpose
    document = json.loads(result.stdout)
    assert document["exporter"]["demo"] is True
    assert document["addons"]

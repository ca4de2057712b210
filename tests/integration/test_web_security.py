"""--web.config.file over real HTTPS on 127.0.0.1: the Exporter against the simulator, with throwaway
certificates made for each test, and clients that do and do not present what the config asks for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml

from tests.e2e.binaries import require_binary
from tests.pki import Pki, issue, make_pki
from tests.support import (
    background_process,
    free_port,
    parse_samples,
    simulated_exporter,
    simulator_process,
    value,
    wait_until,
)

Refresh = Callable[[], Awaitable[None]]
TOKEN = "nf-web-security-token-41c2"
USER, PASSWORD = "prometheus", "scrape-pa55word"
# Cost 4 keeps the suite fast; the cost does not change what is tested.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
HEADERS = (
    "http_server_config:\n"
    "  headers:\n"
    "    X-Frame-Options: deny\n"
    "    X-Content-Type-Options: nosniff\n"
    "    Strict-Transport-Security: max-age=31536000\n"
)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def web_config(pki: Pki, tls_extra: str = "", rest: str = "") -> Path:
    """A web.yml beside the certificates, naming them by relative path (as users write it)."""
    path = pki.directory / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{tls_extra}{rest}",
        encoding="utf-8",
    )
    return path


def client_context(
    pki: Pki, *, cert: tuple[Path, Path] | None = None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca.path)
    if cert is not None:
        context.load_cert_chain(*cert)
    if max_version is not None:
        context.maximum_version = max_version
    return context


@contextlib.asynccontextmanager
async def https_exporter(config: Path) -> AsyncIterator[tuple[str, Refresh]]:
    """The exporter against the simulator with ``--web.config.file=config``; yields its https URL."""
    async with simulated_exporter("demo", token=TOKEN, web_config_file=config) as simulated:
        running = simulated.exporter
        yield f"https://127.0.0.1:{running.exporter.bound_port}", running.scheduler.refresh


def auth(user: str = USER, password: str = PASSWORD) -> httpx.BasicAuth:
    return httpx.BasicAuth(user, password)


# --- TLS + basic auth + headers ----------------------------------------------------------------------


@pytest.fixture
async def secured(pki: Pki) -> AsyncIterator[tuple[str, Refresh]]:
    config = web_config(pki, rest=f"{HEADERS}basic_auth_users:\n  {USER}: {HASH}\n")
    async with https_exporter(config) as served:
        yield served


async def test_https_scrape_with_the_right_password(pki: Pki, secured: tuple[str, Refresh]) -> None:
    url, refresh = secured
    await refresh()
    async with httpx.AsyncClient(verify=client_context(pki), auth=auth(), timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert value(parse_samples(response.text), "northflank_up") == 1
    assert response.headers["x-frame-options"] == "deny"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.http_version == "HTTP/1.1"


@pytest.mark.parametrize("path", ["/metrics", "/", "/-/healthy", "/-/ready"])
async def test_a_wrong_or_missing_password_is_401_on_every_path(
    pki: Pki, secured: tuple[str, Refresh], path: str
) -> None:
    url, _ = secured
    async with httpx.AsyncClient(verify=client_context(pki), timeout=10) as client:
        missing = await client.get(f"{url}{path}")
        wrong = await client.get(f"{url}{path}", auth=auth(password="scrape-pa55worD"))
        unknown = await client.get(f"{url}{path}", auth=auth(user="root"))
    for response in (missing, wrong, unknown):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Basic"
        assert response.headers["x-frame-options"] == "deny"  # configured headers on refusals too
        assert PASSWORD not in response.text
        assert HASH not in response.text


async def test_plain_http_to_the_tls_port_fails(secured: tuple[str, Refresh]) -> None:
    url, _ = secured
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(url.replace("https://", "http://") + "/metrics", auth=auth())


async def test_a_client_that_does_not_trust_the_ca_refuses_the_server(
    secured: tuple[str, Refresh],
) -> None:
    url, _ = secured
    async with httpx.AsyncClient(timeout=5) as client:  # the system's roots: the test CA is not there
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{url}/metrics", auth=auth())


async def test_bcrypt_is_not_paid_on_every_scrape(
    pki: Pki, secured: tuple[str, Refresh], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    url, _ = secured
    async with httpx.AsyncClient(verify=client_context(pki), auth=auth(), timeout=10) as client:
        for _ in range(10):
            assert (await client.get(f"{url}/metrics")).status_code == 200
        assert len(calls) == 1
        assert (await client.get(f"{url}/metrics", auth=auth(password="wrong"))).status_code == 401
        assert len(calls) == 2
        assert (await client.get(f"{url}/metrics")).status_code == 200
    assert len(calls) == 2


# --- Client certificates -----------------------------------------------------------------------------


async def test_require_and_verify_client_cert(pki: Pki) -> None:
    config = web_config(
        pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: test-ca.crt\n"
    )
    async with https_exporter(config) as (url, _):
        with_cert = client_context(pki, cert=(pki.client.cert, pki.client.key))
        async with httpx.AsyncClient(verify=with_cert, timeout=5) as client:
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
        for refused in (
            client_context(pki),
            client_context(pki, cert=(pki.other_client.cert, pki.other_client.key)),  # another CA's
        ):
            async with httpx.AsyncClient(verify=refused, timeout=5) as client:
                with pytest.raises(httpx.TransportError):
                    await client.get(f"{url}/-/healthy")


async def test_verify_client_cert_if_given(pki: Pki) -> None:
    config = web_config(pki, "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: test-ca.crt\n")
    async with https_exporter(config) as (url, _):
        for accepted in (client_context(pki), client_context(pki, cert=(pki.client.cert, pki.client.key))):
            async with httpx.AsyncClient(verify=accepted, timeout=5) as client:
                assert (await client.get(f"{url}/-/healthy")).status_code == 200
        other = client_context(pki, cert=(pki.other_client.cert, pki.other_client.key))
        async with httpx.AsyncClient(verify=other, timeout=5) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"{url}/-/healthy")


async def test_client_allowed_sans(pki: Pki) -> None:
    config = web_config(
        pki,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: test-ca.crt\n"
        "  client_allowed_sans: [spiffe://test/prometheus]\n",
    )
    intruder = issue(pki.ca, pki.directory, "intruder", dns=("intruder.test",))
    async with https_exporter(config) as (url, _):
        allowed = client_context(pki, cert=(pki.client.cert, pki.client.key))
        async with httpx.AsyncClient(verify=allowed, timeout=5) as client:
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
        refused = client_context(pki, cert=(intruder.cert, intruder.key))
        async with httpx.AsyncClient(verify=refused, timeout=5) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"{url}/-/healthy")


async def test_min_version(pki: Pki) -> None:
    config = web_config(pki, "  min_version: TLS13\n")
    async with https_exporter(config) as (url, _):
        async with httpx.AsyncClient(verify=client_context(pki), timeout=5) as client:
            assert (await client.get(f"{url}/-/healthy")).status_code == 200
        old = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
        async with httpx.AsyncClient(verify=old, timeout=5) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{url}/-/healthy")


# --- The process, as users run it --------------------------------------------------------------------


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with simulator_process("--scenario", "e2e", "--token", TOKEN) as url:
        yield url


def test_the_process_serves_https_with_basic_auth(pki: Pki, simulator_url: str) -> None:
    config = web_config(pki, rest=f"basic_auth_users:\n  {USER}: {HASH}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NF_", "NORTHFLANK_"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={config}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN},
    )
    url = f"https://127.0.0.1:{port}"
    verify = client_context(pki)

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/-/ready", verify=verify, auth=auth(), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=20, what="readiness over HTTPS")
        scraped = httpx.get(f"{url}/metrics", verify=verify, auth=auth(), timeout=5)
        refused = httpx.get(f"{url}/metrics", verify=verify, timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert scraped.status_code == 200
    assert value(parse_samples(scraped.text), "northflank_up") == 1
    assert refused.status_code == 401
    assert proc.returncode == 0, err
    assert "HTTPS, client certificates: NoClientCert, basic auth for 1 user(s)" in err
    assert HASH not in err
    assert PASSWORD not in err


def test_the_process_refuses_a_bad_file_with_exit_2(pki: Pki) -> None:
    config = web_config(
        pki, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing-ca.crt\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "exporter", f"--web.config.file={config}"],
        capture_output=True,
        text=True,
        env={**os.environ, "NF_API_TOKEN": TOKEN},
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"northflank-backup-exporter: error: --web.config.file: {config}: "
        f"tls_server_config.client_ca_file: cannot read {pki.directory / 'missing-ca.crt'}: no such file\n"
    )


# --- A real Prometheus --------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_a_real_prometheus_scrapes_over_https_with_basic_auth(pki: Pki, tmp_path: Path) -> None:
    """Prometheus's own TLS and basic auth client against the exporter; a wrong password is a down target."""
    prometheus_bin = require_binary("prometheus")
    config = web_config(pki, rest=f"basic_auth_users:\n  {USER}: {HASH}\n")
    async with https_exporter(config) as (url, refresh):
        await refresh()
        target = url.removeprefix("https://")
        prom_port = free_port()

        def job(name: str, password: str) -> dict[str, object]:
            return {
                "job_name": name,
                "scheme": "https",
                "tls_config": {"ca_file": str(pki.ca.path)},
                "basic_auth": {"username": USER, "password": password},
                "static_configs": [{"targets": [target]}],
            }

        prometheus_config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [job("northflank", PASSWORD), job("wrong-password", "not-it")],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config), encoding="utf-8")
        log_path = tmp_path / "prometheus.log"
        args = [
            prometheus_bin,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        with background_process(args, log_path):
            health = await _target_health(f"http://127.0.0.1:{prom_port}", log_path)
            async with httpx.AsyncClient(timeout=5) as http:
                query = await http.get(
                    f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "northflank_up"}
                )
    assert health["northflank"] == ("up", "")
    state, error = health["wrong-password"]
    assert state == "down"
    assert "401" in error
    results = query.json()["data"]["result"]
    assert [(r["metric"]["job"], r["value"][1]) for r in results] == [("northflank", "1")]


async def _target_health(prometheus: str, log_path: Path) -> dict[str, tuple[str, str]]:
    """job -> (health, lastError) once every target has been scraped, and northflank_up was stored."""
    deadline = asyncio.get_running_loop().time() + 30
    async with httpx.AsyncClient(timeout=2) as http:
        while asyncio.get_running_loop().time() < deadline:
            try:
                targets = (await http.get(f"{prometheus}/api/v1/targets")).json()["data"]["activeTargets"]
                stored = (
                    await http.get(f"{prometheus}/api/v1/query", params={"query": "northflank_up"})
                ).json()
            except (httpx.HTTPError, ValueError, KeyError):
                targets, stored = [], {}
            health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
            scraped = len(health) == 2 and "unknown" not in {h for h, _ in health.values()}
            if scraped and stored.get("data", {}).get("result"):
                return health
            await asyncio.sleep(0.25)
    pytest.fail(f"Prometheus did not scrape both targets in 30s\n{_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]

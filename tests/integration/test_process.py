"""The exporter as its users run it: a process, configured by environment, stopped by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.simulator.fleet import SIMULATED_SECRETS
from tests.support import free_port, http_ok, parse_samples, series, simulator_process, value, wait_until

TOKEN = "nf-process-token-5d1c"


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with simulator_process("--scenario", "e2e", "--token", TOKEN) as url:
        yield url


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN", "NF_API_HOST")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **env},
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str, float]:
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err, time.monotonic() - began


def test_env_configured_process_serves_and_stops_on_sigterm(simulator_url: str) -> None:
    port = free_port()
    proc = _start(
        [f"--web.listen-address=127.0.0.1:{port}"], {"NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN}
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=20, what="readiness")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        code, err, _ = _stop(proc)
    samples = parse_samples(text)
    assert value(samples, "northflank_up") == 1
    addons = {dict(labels)["addon"] for labels in series(samples, "northflank_addon_info")}
    assert addons == {"e2e-healthy", "e2e-failing", "e2e-stale", "e2e-unscheduled", "e2e-stuck"}
    assert code == 0, err
    for secret in (TOKEN, *SIMULATED_SECRETS):
        assert secret not in text
        assert secret not in err


def test_sigint_also_stops_cleanly(simulator_url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    proc = _start(
        [f"--web.listen-address=127.0.0.1:{port}", f"--northflank.token-file={token_file}"],
        {"NF_API_HOST": simulator_url},
    )
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/healthy"), timeout=20, what="health")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert TOKEN not in err


def test_demo_serves_simulated_fleet_and_says_so() -> None:
    port = free_port()
    proc = _start(["--demo", f"--web.listen-address=127.0.0.1:{port}"], {})
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=15, what="demo readiness")
        samples = parse_samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        landing = httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        code, err, _ = _stop(proc)
    assert code == 0
    assert len(series(samples, "northflank_addon_info")) == 12
    assert "DEMO MODE" in landing
    assert "SIMULATED" in err


def test_port_in_use_is_one_error_line_and_exit_1(simulator_url: str) -> None:
    port = free_port()
    blocker = _start(
        [f"--web.listen-address=127.0.0.1:{port}"], {"NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN}
    )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/-/healthy"), timeout=20, what="first exporter")
        second = _start(
            [f"--web.listen-address=127.0.0.1:{port}"], {"NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN}
        )
        _, err = second.communicate(timeout=20)
    finally:
        _stop(blocker)
    assert second.returncode == 1
    errors = [line for line in err.splitlines() if "level=error" in line]
    assert len(errors) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in err


def test_config_check_makes_one_request_and_exits(simulator_url: str) -> None:
    proc = _start(["--config.check"], {"NF_API_HOST": simulator_url, "NF_API_TOKEN": TOKEN})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith(f"configuration OK: {simulator_url} accepted the token; 2 project(s) visible")
    requests = httpx.get(f"{simulator_url}/_simulator/requests", headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(requests.json()["data"]["requests"]) == 1
    assert TOKEN not in out + err


def test_config_check_reports_a_rejected_token_and_exits_1(simulator_url: str) -> None:
    proc = _start(["--config.check"], {"NF_API_HOST": simulator_url, "NF_API_TOKEN": "wrong-token-1c9e"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    # A failure goes to stderr (issue 10, section 4), as one line.
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("configuration check failed: /v1/projects: authentication failed")
    assert "(auth)" in err
    assert "wrong-token-1c9e" not in out + err


def test_token_on_the_command_line_works_with_a_warning(simulator_url: str) -> None:
    proc = _start(["--config.check", f"--northflank.token={TOKEN}"], {"NF_API_HOST": simulator_url})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    warnings = [line for line in err.splitlines() if "level=warn" in line]
    assert len(warnings) == 1
    assert "--northflank.token" in warnings[0]
    assert TOKEN not in err

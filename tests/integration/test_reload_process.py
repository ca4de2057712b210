"""The exporter as a process: SIGHUP reloads the token file and the web config and keeps everything else;
every unusable token file stops it at start with one line on stderr and exit status 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.support import free_port, parse_samples, series, simulator_process, value, wait_until

TOKEN_A = "nf-reload-old-token-a71c3e"
TOKEN_B = "nf-reload-new-token-5be209"
USER = "prometheus"
OLD_PASSWORD, NEW_PASSWORD = "old-scrape-pa55", "new-scrape-pa55"


def _env(**extra: str) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NF_API_TOKEN", "NORTHFLANK_API_TOKEN", "NF_API_HOST")
    }
    return {**clean, **extra}


def _replace(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _web_config(password: str) -> bytes:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return f"basic_auth_users:\n  {USER}: '{hashed}'\n".encode()


def _status(url: str, password: str) -> int | None:
    try:
        return httpx.get(url, auth=(USER, password), timeout=5).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def simulator_url() -> Iterator[str]:
    with simulator_process("--scenario", "e2e", "--token", TOKEN_A) as url:
        yield url


def test_sighup_reloads_token_and_web_config_and_keeps_serving_the_same_data(
    simulator_url: str, tmp_path: Path
) -> None:
    token_file, web_file, log_file = tmp_path / "token", tmp_path / "web.yml", tmp_path / "stderr.log"
    token_file.write_text(TOKEN_A + "\n")
    web_file.write_bytes(_web_config(OLD_PASSWORD))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_file.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--northflank.token-file={token_file}",
                f"--web.config.file={web_file}",
                "--log.level=debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=_env(NF_API_HOST=simulator_url),
        )

    def log() -> str:
        return log_file.read_text()

    try:
        wait_until(lambda: _status(f"{base}/-/ready", OLD_PASSWORD) == 200, timeout=20, what="readiness")

        def backups_of_every_addon() -> bool:
            samples = parse_samples(httpx.get(f"{base}/metrics", auth=(USER, OLD_PASSWORD)).text)
            addons = {dict(labels)["addon"] for labels in series(samples, "northflank_addon_info")}
            read = {dict(labels)["addon"] for labels in series(samples, "northflank_addon_backups")}
            return bool(addons) and read == addons

        wait_until(backups_of_every_addon, timeout=20, what="the first read of every addon's backups")
        before = parse_samples(httpx.get(f"{base}/metrics", auth=(USER, OLD_PASSWORD)).text)
        assert value(before, "northflank_up") == 1

        # The API now accepts only B; the Secret and the web config are rotated; then SIGHUP.
        httpx.put(
            f"{simulator_url}/_simulator/token",
            json={"token": TOKEN_B},
            headers={"Authorization": f"Bearer {TOKEN_A}"},
        ).raise_for_status()
        _replace(token_file, (TOKEN_B + "\n").encode())
        _replace(web_file, _web_config(NEW_PASSWORD))
        proc.send_signal(signal.SIGHUP)

        wait_until(lambda: _status(f"{base}/-/healthy", NEW_PASSWORD) == 200, timeout=10, what="new password")
        assert _status(f"{base}/-/healthy", OLD_PASSWORD) == 401
        wait_until(lambda: "changed: using the new API token" in log(), timeout=10, what="token reload")
        assert proc.poll() is None
        after = parse_samples(httpx.get(f"{base}/metrics", auth=(USER, NEW_PASSWORD)).text)
        assert value(after, "northflank_up") == 1
        assert series(after, "northflank_addon_info") == series(before, "northflank_addon_info")
        assert series(after, "northflank_addon_backups") == series(before, "northflank_addon_backups")

        # A web config that fails to load on SIGHUP: one error line, the one in use stays.
        _replace(web_file, b"basic_auth_users: [\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "keeping the web config in use" in log(), timeout=10, what="reload error")
        assert _status(f"{base}/-/healthy", NEW_PASSWORD) == 200
        assert _status(f"{base}/-/healthy", OLD_PASSWORD) == 401
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    text = log()
    assert proc.returncode == 0, text
    errors = [line for line in text.splitlines() if "level=error" in line]
    assert len(errors) == 1, errors
    assert f"--web.config.file: {web_file}: invalid YAML" in errors[0]
    assert "Traceback" not in text
    for secret in (TOKEN_A, TOKEN_B, OLD_PASSWORD, NEW_PASSWORD):
        assert secret.lower() not in text.lower()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_bytes(b"\n"), "is empty"),
        (lambda p: p.write_bytes(f"{TOKEN_A}\n{TOKEN_B}\n".encode()), "has more than one line"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(TOKEN_A.encode() + b"\xc3\x28"), "is not UTF-8 text"),
        (lambda p: p.write_bytes(f"{TOKEN_A} {TOKEN_B}".encode()), "inside the token"),
        (_fifo, "is not a regular file"),
    ],
    ids=["empty", "two-lines", "missing", "directory", "not-utf8", "inner-space", "fifo"],
)
@pytest.mark.parametrize("check", [False, True], ids=["serve", "config-check"])
def test_a_bad_token_file_is_one_line_and_exit_2(
    make: object, problem: str, check: bool, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    make(path)  # type: ignore[operator]
    args = [f"--northflank.token-file={path}", f"--web.listen-address=127.0.0.1:{free_port()}"]
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", *args, *(["--config.check"] if check else [])],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(NF_API_HOST="http://127.0.0.1:9"),
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("northflank-backup-exporter: error: --northflank.token-file: ")
    assert f"token file {path}" in lines[0]
    assert problem in lines[0]
    assert TOKEN_A not in proc.stderr
    assert TOKEN_B not in proc.stderr


def test_a_token_file_with_a_bom_and_crlf_works(simulator_url: str, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(("\ufeff" + TOKEN_A + "\r\n").encode())
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", f"--northflank.token-file={path}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(NF_API_HOST=simulator_url),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"configuration OK: {simulator_url} accepted the token")


def test_config_check_reports_an_unexpected_failure_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--northflank.api-url=http://[::1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(NF_API_TOKEN=TOKEN_A),
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("northflank-backup-exporter: error: configuration check failed: ")
    assert TOKEN_A not in proc.stderr + proc.stdout

"""Flags and environment -> Settings, and one clear error for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import ConfigError, ListenAddress, load_settings, parse_duration

ENV = {"NF_API_TOKEN": "nf-test-token"}


def test_defaults() -> None:
    s = load_settings([], ENV)
    assert s.listen_address == ListenAddress("", 10150)
    assert s.telemetry_path == "/metrics"
    assert s.api_url == "https://api.northflank.com"
    assert s.refresh_interval == 300
    assert s.schedule_grace == 7200
    assert s.token is not None
    assert s.token.get_secret_value() == "nf-test-token"


def test_sdk_environment_variables() -> None:
    s = load_settings([], {"NORTHFLANK_API_TOKEN": "t2", "NF_API_HOST": "http://127.0.0.1:9999/"})
    assert s.token is not None
    assert s.token.get_secret_value() == "t2"
    assert s.api_url == "http://127.0.0.1:9999"
    # NF_API_TOKEN wins over NORTHFLANK_API_TOKEN, as in the SDK.
    both = load_settings([], {"NF_API_TOKEN": "a", "NORTHFLANK_API_TOKEN": "b"})
    assert both.token is not None
    assert both.token.get_secret_value() == "a"


def test_token_file_wins_and_is_stripped(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    s = load_settings(["--northflank.token-file", str(token_file)], ENV)
    assert s.token is not None
    assert s.token.get_secret_value() == "from-file"


def test_flags() -> None:
    s = load_settings(
        [
            "--web.listen-address=127.0.0.1:9000",
            "--web.telemetry-path=/x",
            "--northflank.refresh-interval=1h30m",
            "--backup.schedule-grace=45m",
            "--northflank.team=team-a",
            "--northflank.team=team-b",
            "--log.level=debug",
            "--log.format=json",
        ],
        ENV,
    )
    assert s.listen_address == ListenAddress("127.0.0.1", 9000)
    assert s.telemetry_path == "/x"
    assert s.refresh_interval == 5400
    assert s.schedule_grace == 2700
    assert s.teams == ("team-a", "team-b")
    assert (s.log_level, s.log_format) == ("debug", "json")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no Northflank API token"),
        (["--web.listen-address=nohost"], ENV, "--web.listen-address"),
        (["--web.listen-address=:99999"], ENV, "--web.listen-address"),
        (["--northflank.refresh-interval=soon"], ENV, "--northflank.refresh-interval"),
        (["--northflank.refresh-interval=0s"], ENV, "must be at least"),
        (["--web.telemetry-path=metrics"], ENV, "--web.telemetry-path"),
        (["--northflank.token-file=/nonexistent/token"], ENV, "cannot read"),
        (["--northflank.team=bad/team"], ENV, "--northflank.team"),
        (["--northflank.concurrency=0"], ENV, "--northflank.concurrency"),
        ([], {"NF_API_TOKEN": "t", "NF_API_HOST": "api.northflank.com"}, "http:// or https://"),
    ],
)
def test_bad_input_is_one_clear_error(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("/", "/")):
        load_settings(argv, env)


def test_empty_token_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(["--northflank.token-file", str(empty)], {})


def test_demo_needs_no_token() -> None:
    assert load_settings(["--demo"], {}).demo


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("500ms", 0.5), ("0", 0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "1h-30m", "5y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_cli_prints_single_error_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NF_API_TOKEN", raising=False)
    monkeypatch.delenv("NORTHFLANK_API_TOKEN", raising=False)
    assert main(["--northflank.refresh-interval=5m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("northflank-backup-exporter: error: no Northflank API token")


def test_token_never_in_settings_repr() -> None:
    s = load_settings([], {"NF_API_TOKEN": "nf-secret-token-value"})
    assert "nf-secret-token-value" not in repr(s)
    assert "nf-secret-token-value" not in str(s)

"""Flags and environment -> Settings, and one clear error for each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.app import Exporter
from exporter.cli import main
from exporter.clock import FixedClock
from exporter.config import ConfigError, ListenAddress, load_settings
from exporter.durations import parse_duration
from exporter.flags import build_parser
from exporter.planner import Planner, PlannerSettings
from exporter.planner.scheduler import planner_settings

ENV = {"NF_API_TOKEN": "nf-test-token"}


def test_defaults() -> None:
    s = load_settings([], ENV)
    assert s.listen_address == ListenAddress("", 10150)
    assert s.telemetry_path == "/metrics"
    assert s.api_url == "https://api.northflank.com"
    # The planner decides, within half the announced rate limit.
    assert s.request_budget is None
    assert s.rate_limit_reserve == 0.2
    assert s.max_staleness is None
    assert (s.discovery_interval, s.schedules_interval, s.restores_interval) == (1800, 3600, 3600)
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
    assert s.schedule_grace == 2700
    assert s.teams == ("team-a", "team-b")
    assert (s.log_level, s.log_format) == ("debug", "json")


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "no Northflank API token"),
        (["--web.listen-address=nohost"], ENV, "--web.listen-address"),
        (["--web.listen-address=:99999"], ENV, "--web.listen-address"),
        (["--web.telemetry-path=metrics"], ENV, "--web.telemetry-path"),
        (["--northflank.token-file=/nonexistent/token"], ENV, "cannot read"),
        (["--northflank.team=bad/team"], ENV, "--northflank.team"),
        (["--northflank.concurrency=0"], ENV, "--northflank.concurrency"),
        (["--northflank.request-budget=0"], ENV, "--northflank.request-budget"),
        (["--northflank.request-budget=lots"], ENV, "--northflank.request-budget"),
        (["--northflank.rate-limit-reserve=1"], ENV, "--northflank.rate-limit-reserve"),
        (["--northflank.max-staleness=10s"], ENV, "--northflank.max-staleness"),
        (["--northflank.schedules-interval=soon"], ENV, "--northflank.schedules-interval"),
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
    assert main(["--northflank.max-staleness=5m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("northflank-backup-exporter: error: no Northflank API token")


def test_token_never_in_settings_repr() -> None:
    s = load_settings([], {"NF_API_TOKEN": "nf-secret-token-value"})
    assert "nf-secret-token-value" not in repr(s)
    assert "nf-secret-token-value" not in str(s)


def test_budget_flags() -> None:
    s = load_settings(
        [
            "--northflank.request-budget=300",
            "--northflank.rate-limit-reserve=0.3",
            "--northflank.max-staleness=2h",
            "--northflank.discovery-interval=1h",
            "--northflank.schedules-interval=6h",
            "--northflank.restores-interval=12h",
        ],
        ENV,
    )
    assert (s.request_budget, s.rate_limit_reserve, s.max_staleness) == (300, 0.3, 7200)
    assert (s.discovery_interval, s.schedules_interval, s.restores_interval) == (3600, 21600, 43200)
    assert load_settings(["--northflank.request-budget=auto", "--northflank.max-staleness=auto"], ENV) == (
        load_settings([], ENV)
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--northflank.refresh-interval=5m"],
        ["--northflank.refresh-interval", "1h"],
        ["--northflank.refresh-interval"],
        ["--web.listen-address=:9000", "--northflank.refresh-interval=soon"],
    ],
)
def test_the_removed_refresh_interval_is_one_line_with_a_hint_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixed-interval scheduler is gone: its flag names itself as removed and says what to use
    instead, whatever value it was given (even none, even with a token)."""
    monkeypatch.setenv("NF_API_TOKEN", "nf-test-token")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("northflank-backup-exporter: error: --northflank.refresh-interval was removed")
    assert "--northflank.max-staleness" in err
    assert "--northflank.refresh-interval" not in " ".join(build_parser().format_help().split())


def test_the_exporter_always_plans_with_the_settings_flags_give() -> None:
    assert isinstance(Exporter(load_settings([], ENV), clock=FixedClock(0)).scheduler, Planner)
    flags = [
        "--northflank.max-staleness=2h",
        "--northflank.discovery-interval=1h",
        "--northflank.schedules-interval=6h",
        "--northflank.restores-interval=12h",
        "--northflank.concurrency=7",
    ]
    # Every knob differs from its default: a field left out of planner_settings would show here.
    assert planner_settings(load_settings(flags, ENV)) == PlannerSettings(
        max_staleness=7200,
        discovery_interval=3600,
        schedules_interval=21600,
        restores_interval=43200,
        concurrency=7,
    )
    default = PlannerSettings()
    assert all(
        getattr(planner_settings(load_settings(flags, ENV)), name) != getattr(default, name)
        for name in PlannerSettings.__dataclass_fields__
    )


def test_flag_defaults_are_the_one_set_of_defaults() -> None:
    """A default lives in exporter/defaults.py; the flags' texts ("30m", "10s"...) must parse to it, and
    the planner, budget and client defaults are the same values."""
    import dataclasses

    from exporter import defaults
    from exporter.budget import DEFAULT_RESERVE
    from exporter.config import Settings
    from exporter.northflank.client import DEFAULT_BASE_URL
    from exporter.planner import PlannerSettings

    parsed = load_settings(["--demo"], {})
    built = Settings()
    for name in (
        "telemetry_path",
        "api_url",
        "rate_limit_reserve",
        "discovery_interval",
        "schedules_interval",
        "restores_interval",
        "request_timeout",
        "concurrency",
        "schedule_grace",
        "max_connections",
        "read_timeout",
        "idle_timeout",
    ):
        assert getattr(parsed, name) == getattr(built, name), name
    planner = PlannerSettings()
    assert {f.name: getattr(planner, f.name) for f in dataclasses.fields(planner)} == {
        "max_staleness": None,
        "discovery_interval": defaults.DISCOVERY_INTERVAL,
        "schedules_interval": defaults.SCHEDULES_INTERVAL,
        "restores_interval": defaults.RESTORES_INTERVAL,
        "concurrency": defaults.CONCURRENCY,
    }
    assert (DEFAULT_RESERVE, DEFAULT_BASE_URL) == (defaults.RATE_LIMIT_RESERVE, defaults.API_URL)

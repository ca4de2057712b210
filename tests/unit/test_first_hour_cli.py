"""The command line as a new user meets it (issue 10, section 4): a bad flag is one line and exit 2, no
abbreviated flags, a --help without internal placeholders, a --version that says the revision and Python."""

from __future__ import annotations

import argparse
import platform
import re

import pytest

from exporter.flags import build_parser
from tests.support import run_cli

PROG = "northflank-backup-exporter"
HINT = f"Run '{PROG} --help' for the flags."


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # argparse's own errors: an unknown (or abbreviated) flag, a bad choice, a bad number.
        (["--web.listen=:1"], "unrecognized arguments: --web.listen=:1"),
        (["--web.listen", ":1"], "unrecognized arguments: --web.listen :1"),
        (
            ["--log.level=loud"],
            "--log.level: invalid choice: 'loud' (choose from 'debug', 'info', 'warn', 'error')",
        ),
        (["--northflank.concurrency=many"], "--northflank.concurrency: invalid int value: 'many'"),
        (["--web.listen-address"], "--web.listen-address: expected one argument"),
    ],
)
def test_a_flag_argparse_refuses_is_one_line_and_a_hint_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == f"{PROG}: error: {message}\n{HINT}\n"


def test_a_value_the_configuration_refuses_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NF_API_TOKEN", "nf-cli-test-token")
    code, out, err = run_cli(capsys, "--web.listen-address=nowhere")
    assert (code, out) == (2, "")
    assert err.startswith(f"{PROG}: error: --web.listen-address: ")
    assert err.count("\n") == 1
    assert "usage:" not in err


def test_abbreviations_of_flags_are_refused() -> None:
    parser = build_parser()
    assert parser.allow_abbrev is False
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and len(flag) > 4:
                with pytest.raises(SystemExit) as exit_:
                    parser.parse_args([flag[:-1] + "=x" if action.nargs != 0 else flag[:-1]])
                assert exit_.value.code == 2, flag


def test_help_shows_no_internal_placeholders_and_no_empty_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "--help")
    assert (code, err) == (0, "")
    for clutter in ("(default: None)", "(default: )", "(default: [])", "(default: False)", "==SUPPRESS=="):
        assert clutter not in out
    text = " ".join(out.split())
    parser = build_parser()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        # No metavar made of the internal name (TOKEN_FLAG, REQUEST_TIMEOUT, WEB_CONFIG_FILE...).
        assert re.search(rf"\b{re.escape(action.dest.upper())}\b", out) is None, action.dest
        flag = max(action.option_strings, key=len)
        if action.nargs != 0 and action.choices is None and action.metavar is None:
            assert f"{flag} <" in text, flag
    # A real default is still shown.
    assert "(default: :10150)" in text


def test_version_says_the_version_the_revision_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "--version")
    assert (code, err) == (0, "")
    assert re.fullmatch(
        rf"{PROG} \S+ \(revision (?:unknown|[0-9a-f]{{40}}|[0-9a-f]{{64}}), "
        rf"Python {re.escape(platform.python_version())}\)\n",
        out,
    ), out

"""``--help`` tells that the ``check`` subcommand exists (issue 10, section 2): cli.main routes it before
the flag parser runs, so nothing else in the exporter's help would mention it."""

from __future__ import annotations

import pytest

from tests.support import run_cli

PROG = "northflank-backup-exporter"


def test_help_names_the_check_subcommand_its_output_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "--help")
    assert (code, err) == (0, "")
    text = " ".join(out.split())  # argparse wraps at the terminal's width
    assert f"'{PROG} check [--output text|json] [flags...]'" in text
    assert "exits 0 (all OK), 1 (some not OK) or 2 (could not tell)" in text
    assert f"'{PROG} check --help' for more" in text


def test_the_help_the_exporter_points_to_exists(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: {PROG} check [--output text|json]")
    assert "Exit status: 0 every addon OK, 1 some addon not OK, 2 could not tell." in " ".join(out.split())

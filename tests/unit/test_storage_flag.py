"""--storage.path: off by default; a path that cannot hold the state is one clear line at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_settings

ENV = {"NF_API_TOKEN": "nf-flag-token"}


def test_off_by_default_and_a_directory_is_taken(tmp_path: Path) -> None:
    assert load_settings([], ENV).storage_path is None
    assert load_settings([f"--storage.path={tmp_path}"], ENV).storage_path == tmp_path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing", "does not exist"),
        ("file", "is not a directory"),
        ("/proc", "cannot create a file in /proc"),
    ],
)
def test_an_unusable_path_is_one_line(tmp_path: Path, path: str, message: str) -> None:
    (tmp_path / "file").write_text("x")
    target = path if path.startswith("/") else str(tmp_path / path)
    with pytest.raises(ConfigError) as error:
        load_settings([f"--storage.path={target}"], ENV)
    text = str(error.value)
    assert text.startswith("--storage.path: ")
    assert message in text
    assert "\n" not in text

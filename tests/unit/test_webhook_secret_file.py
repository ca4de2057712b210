"""--webhook.secret-file: what is accepted, what is refused without blocking or echoing the secret, and
SIGHUP's re-read keeping the secret in use when the file went bad."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from exporter.clock import FixedClock
from exporter.web.webhook import (
    MAX_SECRET_BYTES,
    NoHints,
    WebhookReceiver,
    WebhookSecret,
    WebhookSecretError,
)

OLD = "whsec-old-Qm4-never-logged"
NEW = "whsec-new-Zr7-never-logged"


def _replace(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def test_line_ends_are_not_part_of_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    for data in (b"whsec-1\n", b"whsec-1\r\n", b"whsec-1"):
        path.write_bytes(data)
        secret = WebhookSecret.from_file(path)
        assert secret.matches("whsec-1")
        assert secret.path == path
    path.write_bytes(b"a" * MAX_SECRET_BYTES + b"\r\n")
    assert WebhookSecret.from_file(path).matches("a" * MAX_SECRET_BYTES)


def test_unusable_files_are_refused_by_name_only(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing": None,
        tmp_path / "empty": b"\n",
        tmp_path / "long": b"whsec-" + b"b" * MAX_SECRET_BYTES,
        # A secret then more: the size says it is not a secret file, whatever a first read would see.
        tmp_path / "trailing": b"whsec-" + b"c" * (MAX_SECRET_BYTES - 8) + b"\n\n\n\n\n\n\nwhsec-d",
        tmp_path: None,  # a directory
    }
    for path, data in cases.items():
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(WebhookSecretError) as error:
            WebhookSecret.from_file(path)
        assert str(path) in str(error.value)
        assert "whsec" not in str(error.value).replace(str(tmp_path), "")


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """Read on the event loop at SIGHUP: a FIFO with no writer must not hang everything."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | WebhookSecret] = []

    def read() -> None:
        try:
            outcome.append(WebhookSecret.from_file(fifo))
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert len(outcome) == 1
    assert isinstance(outcome[0], WebhookSecretError)
    assert "not a regular file" in str(outcome[0])


def test_reload_swaps_the_secret_and_keeps_it_when_the_file_goes_bad(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "secret"
    path.write_text(OLD + "\n")
    receiver = WebhookReceiver(WebhookSecret.from_file(path), NoHints(), clock=FixedClock(0.0))
    assert receiver.reload_secret() is False  # unchanged
    _replace(path, (NEW + "\n").encode())
    assert receiver.reload_secret() is True
    assert receiver._secret.matches(NEW)
    assert not receiver._secret.matches(OLD)
    assert caplog.text.count("changed: deliveries need the new secret") == 1

    for bad in (b"", b"\n"):
        caplog.clear()
        _replace(path, bad)
        assert receiver.reload_secret() is False
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(errors) == 1
        assert errors[0].levelno == logging.ERROR
        assert "keeping the webhook secret in use" in errors[0].getMessage()
        assert receiver._secret.matches(NEW)
    caplog.clear()
    path.unlink()
    assert receiver.reload_secret() is False
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert receiver._secret.matches(NEW)
    assert OLD not in caplog.text
    assert NEW not in caplog.text


def test_a_secret_given_as_a_value_has_nothing_to_reload() -> None:
    receiver = WebhookReceiver(WebhookSecret(OLD.encode()), NoHints(), clock=FixedClock(0.0))
    assert receiver.reload_secret() is False
    assert receiver._secret.matches(OLD)

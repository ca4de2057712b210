"""Fixtures every suite shares: the Prometheus binaries, and reproducible property tests under CI.

The harness that runs an exporter against the simulator is in :mod:`tests.support`
(:func:`~tests.support.simulated_exporter`, :func:`~tests.support.running_exporter`), with the fixed
start time the suites share (:data:`~tests.support.MONDAY_NOON`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.e2e.binaries import require_binary

# Under CI a failing property test prints the blob that replays its example exactly
# (``@reproduce_failure``), as the run's random seed is gone once the job ends.
settings.register_profile("ci", print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Tests that run the CLI in-process call configure_logging, which replaces the root handlers and
    levels: without this, the next test in the same worker would see (or miss) log records by order."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, named_level in named.items():
        logging.getLogger(name).setLevel(named_level)


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path; the test is skipped without it, and fails under CI=true."""
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus() -> str:
    return require_binary("prometheus")


@pytest.fixture(scope="session")
def alertmanager() -> str:
    return require_binary("alertmanager")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_binary("amtool")

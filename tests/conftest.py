"""Fixtures every suite shares: the Prometheus binaries, and reproducible property tests under CI.

The harness that runs an exporter against the simulator is in :mod:`tests.support`
(:func:`~tests.support.simulated_exporter`, :func:`~tests.support.running_exporter`), with the fixed
start time the suites share (:data:`~tests.support.MONDAY_NOON`).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.e2e.binaries import require_binary

# Under CI a failing property test prints the blob that replays its example exactly
# (``@reproduce_failure``), as the run's random seed is gone once the job ends.
settings.register_profile("ci", print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


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

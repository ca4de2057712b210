"""A faithful, deterministic simulator of the Northflank API parts the exporter reads.

- :mod:`.fleet`: what the account contains (projects, addons, schedules, behaviours, destinations)
  and the named scenarios (``demo``, ``e2e``, ``reference``);
- :mod:`.history`: what backups, restores and destination backups exist at an instant (pure);
- :mod:`.app`: the starlette app and the :class:`Simulator` (clock, rate limit, faults, request log);
- :mod:`.server`: serving it with uvicorn; ``python -m exporter.simulator`` runs it as a process.
"""

from .app import API_ROUTES, DEFAULT_TEAM_ID, DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from .faults import BodyKind, FaultKind, FaultSpec, SimulatedConnectionReset
from .fleet import (
    SCENARIOS,
    SIMULATED_ACCESS_KEY,
    SIMULATED_SECRET_KEY,
    SIMULATED_SECRETS,
    Behaviour,
    Fleet,
    generate_fleet,
    reference,
    scenario,
)
from .server import SimulatorServer, serve

__all__ = [
    "API_ROUTES",
    "DEFAULT_TEAM_ID",
    "DEFAULT_TOKEN",
    "IN_PROCESS_URL",
    "SCENARIOS",
    "SIMULATED_ACCESS_KEY",
    "SIMULATED_SECRETS",
    "SIMULATED_SECRET_KEY",
    "Behaviour",
    "BodyKind",
    "FaultKind",
    "FaultSpec",
    "Fleet",
    "SimulatedConnectionReset",
    "Simulator",
    "SimulatorServer",
    "generate_fleet",
    "reference",
    "scenario",
    "serve",
]

"""A faithful, deterministic simulator of the Northflank API parts the exporter reads.

- :mod:`.fleet`: what an account contains (projects, addons, schedules, behaviours, destinations);
- :mod:`.scenarios`: the named fleets (``demo``, ``e2e``, ``reference``), the last from
  :mod:`.reference_fleet`, the fleet model the benchmarks are measured against;
- :mod:`.history`: what backups, restores and destination backups exist at an instant (pure);
- :mod:`.app`: the :class:`Simulator` (clock, rate limit, faults, request log) and its starlette app,
  made of :mod:`.gate` (token, rate limit, request log, transport faults), :mod:`.routes` (the API) and
  :mod:`.admin` (the ``/_simulator/`` endpoints);
- :mod:`.server`: serving it with uvicorn; ``python -m exporter.simulator`` runs it as a process.
"""

from .app import DEFAULT_TEAM_ID, DEFAULT_TOKEN, IN_PROCESS_URL, Simulator
from .faults import BodyKind, FaultKind, FaultSpec, SimulatedConnectionReset
from .fleet import SIMULATED_ACCESS_KEY, SIMULATED_SECRET_KEY, SIMULATED_SECRETS, Behaviour, Fleet
from .reference_fleet import generate_fleet, reference
from .routes import API_ROUTES
from .scenarios import SCENARIOS, scenario
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

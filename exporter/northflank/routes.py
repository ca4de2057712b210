"""The route templates of the Northflank API the exporter reads, and how to fill them in.

A template (``/v1/projects/{projectId}/addons``) is what metrics, logs and errors name: it is bounded and
carries no identifier. The concrete path is built from it with :func:`expand`, which percent-encodes every
parameter, so an id can never add a path segment or a query string.
"""

from __future__ import annotations

import re
from urllib.parse import quote

PROJECTS = "/v1/projects"
ADDONS = "/v1/projects/{projectId}/addons"
BACKUPS = "/v1/projects/{projectId}/addons/{addonId}/backups"
BACKUP_SCHEDULES = "/v1/projects/{projectId}/addons/{addonId}/backup-schedules"
ADDON_RESTORES = "/v1/projects/{projectId}/addons/{addonId}/restores"
BACKUP_DESTINATIONS = "/v1/backup-destinations"
DESTINATION_BACKUPS = "/v1/backup-destinations/{backupDestinationId}/backups"

#: The routes of a team-scoped token; an organisation-scoped token uses them behind :data:`TEAM_PREFIX`.
ROUTES: tuple[str, ...] = (
    PROJECTS,
    ADDONS,
    BACKUPS,
    BACKUP_SCHEDULES,
    ADDON_RESTORES,
    BACKUP_DESTINATIONS,
    DESTINATION_BACKUPS,
)

TEAM_PREFIX = "/v1/teams/{teamId}"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def team_scoped(template: str) -> str:
    """``/v1/projects`` -> ``/v1/teams/{teamId}/projects``: the same route for an organisation token."""
    if not template.startswith("/v1/"):
        raise ValueError(f"not a /v1 route template: {template}")
    if template.startswith(TEAM_PREFIX + "/"):
        return template
    return TEAM_PREFIX + template[len("/v1") :]


def expand(template: str, **params: str) -> str:
    """Fill a template in; every value is percent-encoded as one path segment and must be non-empty."""
    names = _PLACEHOLDER.findall(template)
    missing = [name for name in names if not params.get(name)]
    if missing:
        raise ValueError(f"{template}: missing or empty path parameter(s): {', '.join(missing)}")
    extra = sorted(set(params) - set(names))
    if extra:
        raise ValueError(f"{template}: unknown path parameter(s): {', '.join(extra)}")
    return _PLACEHOLDER.sub(lambda match: quote(params[match.group(1)], safe=""), template)


__all__ = [
    "ADDONS",
    "ADDON_RESTORES",
    "BACKUPS",
    "BACKUP_DESTINATIONS",
    "BACKUP_SCHEDULES",
    "DESTINATION_BACKUPS",
    "PROJECTS",
    "ROUTES",
    "TEAM_PREFIX",
    "expand",
    "team_scoped",
]

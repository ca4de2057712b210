"""The route templates of the Northflank API the exporter reads, and how to fill them in.

A template (``/v1/projects/{projectId}/addons``) is what metrics, logs and errors name: it is bounded and
carries no identifier. The concrete path is built from it with :func:`expand`, which accepts only ids of
the API's documented pattern ``^[A-Za-z0-9-]+$``: percent-encoding alone is not enough, since ``.`` and
``..`` are resolved as dot segments (``/v1/projects/../addons`` is ``/v1/addons``) and an empty id
changes the route, and both would send the bearer token to another endpoint.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from exporter.northflank.errors import InvalidIdentifierError

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
#: What every path parameter must be, whole (``fullmatch``: ``$`` would let a trailing newline through).
_ID = re.compile(r"[A-Za-z0-9-]+")


def team_scoped(template: str) -> str:
    """``/v1/projects`` -> ``/v1/teams/{teamId}/projects``: the same route for an organisation token."""
    if not template.startswith("/v1/"):
        raise ValueError(f"not a /v1 route template: {template}")
    if template.startswith(TEAM_PREFIX + "/"):
        return template
    return TEAM_PREFIX + template[len("/v1") :]


def valid_id(value: object) -> bool:
    """Whether ``value`` may be a path parameter: a string of ASCII letters, digits and dashes."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def expand(template: str, **params: str) -> str:
    """Fill a template in. A parameter that is not an id of the documented pattern is refused with
    :class:`InvalidIdentifierError` (a parameter missing or unknown to the template is a bug: ValueError).
    """
    names = _PLACEHOLDER.findall(template)
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(f"{template}: missing path parameter(s): {', '.join(missing)}")
    extra = sorted(set(params) - set(names))
    if extra:
        raise ValueError(f"{template}: unknown path parameter(s): {', '.join(extra)}")
    invalid = [name for name in names if not valid_id(params[name])]
    if invalid:
        # Names the parameter, never the value: it came from the API and may be anything.
        raise InvalidIdentifierError(
            f"refused to request it: {', '.join(invalid)} is not an id (^[A-Za-z0-9-]+$)", endpoint=template
        )
    # Quoting is now a no-op; it stays so that widening the pattern can never open a path segment.
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
    "valid_id",
]

"""The resources the exporter reads from the Northflank API: one vocabulary for every layer.

A ``Resource`` is a ``StrEnum``, so its value is the label value the metrics use (``resource="backups"``)
and it compares equal to that string. Tables keyed by resource (what to call, how to summarise, which
tier refreshes it) are keyed by this enum, never by string literals.
"""

from __future__ import annotations

from enum import StrEnum


class Resource(StrEnum):
    PROJECTS = "projects"
    ADDONS = "addons"
    BACKUPS = "backups"
    SCHEDULES = "schedules"
    RESTORES = "restores"
    BACKUP_DESTINATIONS = "backup_destinations"
    DESTINATION_BACKUPS = "destination_backups"

    @property
    def per_addon(self) -> bool:
        """Read once per addon (the other resources are read per account or per project)."""
        return self in ADDON_RESOURCES


#: Every resource, in the order the metrics list them.
RESOURCES: tuple[Resource, ...] = tuple(Resource)
#: The listings read for each addon, in the order a new addon's first reads go out.
ADDON_RESOURCES: tuple[Resource, ...] = (Resource.BACKUPS, Resource.SCHEDULES, Resource.RESTORES)

__all__ = ["ADDON_RESOURCES", "RESOURCES", "Resource"]

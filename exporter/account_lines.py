"""The samples of the account's listings rather than an addon's (rendered by :mod:`exporter.collector`):
each backup destination's, and the refresh times of the account-wide listings. Pure functions of the
snapshot, like the rest of the page; a destination that cannot be written raises, and the collector
leaves it out and counts it."""

from __future__ import annotations

from exporter.exposition import Family, label_set, sample
from exporter.metrics import (
    DESTINATION_BACKUPS,
    DESTINATION_INFO,
    DESTINATION_LAST,
    DESTINATION_SIZE,
    LAST_REFRESH,
)
from exporter.northflank.models import BackupStatus
from exporter.resources import Resource
from exporter.snapshot import DestinationSnapshot, Snapshot


def destination_lines(destination: DestinationSnapshot) -> dict[str, list[str]]:
    """A destination's samples by family: all of them, or (raising) none."""
    out: dict[str, list[str]] = {}

    def add(family: Family, family_labels: str, value: float) -> None:
        out.setdefault(family.name, []).append(sample(family.name, family_labels, value))

    labels = label_set(("destination",), (destination.id,))
    name = label_set(("destination_name",), (destination.name,))
    add(DESTINATION_INFO, f"{labels},{name}", 1)
    if destination.backups is None:
        return out
    summary = destination.backups.value
    for status in BackupStatus:
        add(DESTINATION_BACKUPS, f'{labels},status="{status.value}"', summary.counts.get(status, 0))
    add(DESTINATION_SIZE, labels, summary.completed_size_bytes)
    for (project, addon), at in sorted(summary.last_completed_at.items()):
        add(DESTINATION_LAST, f"{labels},{label_set(('project', 'addon'), (project, addon))}", at)
    return out


def _account_labels(resource: Resource) -> str:
    """The labels of an account-wide resource's refresh time: no project, no addon."""
    return f'project="",addon="",resource="{resource}"'


def account_refreshes_lines(snapshot: Snapshot) -> bytes:
    """LAST_REFRESH's samples of the account-wide listings (projects, each project's addons, the
    destinations and their backups), written after the addons' own."""
    out: list[str] = []
    if snapshot.projects_at is not None:
        out.append(sample(LAST_REFRESH.name, _account_labels(Resource.PROJECTS), snapshot.projects_at))
    for project in sorted(snapshot.projects.values(), key=lambda p: p.id):
        if project.addons_at is not None:
            labels = label_set(("project", "addon", "resource"), (project.id, "", Resource.ADDONS))
            out.append(sample(LAST_REFRESH.name, labels, project.addons_at))
    if snapshot.destinations_at is not None:
        out.append(
            sample(LAST_REFRESH.name, _account_labels(Resource.BACKUP_DESTINATIONS), snapshot.destinations_at)
        )
    times = [d.backups.at for d in snapshot.destinations.values() if d.backups is not None]
    if times and len(times) == len(snapshot.destinations):
        # The least recent of them: every destination's listing is at least this fresh.
        out.append(sample(LAST_REFRESH.name, _account_labels(Resource.DESTINATION_BACKUPS), min(times)))
    return "".join(out).encode()


__all__ = ["account_refreshes_lines", "destination_lines"]

"""Prometheus exporter for the backups of Northflank database addons."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("northflank-backup-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

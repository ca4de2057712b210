"""/metrics of a running exporter against exporter.metrics: every family declared there, each with one
HELP and one TYPE (the declared ones), and no ``_created`` series."""

from __future__ import annotations

import re
from pathlib import Path

from exporter import metrics
from exporter.config import ListenAddress
from exporter.exposition import escape_help
from exporter.web.webhook import WebhookSecret
from tests.support import MONDAY_NOON, simulated_exporter

TOKEN = "nf-metrics-surface-token-51c0"
_HEADER = re.compile(r"^# (HELP|TYPE) (\S+) (.*)$")


async def test_every_family_on_metrics_is_declared_once_with_its_help_and_type(tmp_path: Path) -> None:
    # With the webhook served and the state saved: their families are exposed only then.
    async with simulated_exporter(
        "demo",
        token=TOKEN,
        start=MONDAY_NOON,
        passes=True,
        webhook_listen_address=ListenAddress("127.0.0.1", 0),
        webhook_secret=WebhookSecret(b"metrics-surface-webhook-secret"),
        storage_path=tmp_path,
    ) as simulated:
        await simulated.exporter.scheduler.refresh()
        text = await simulated.exporter.scrape_text()

    helps: dict[str, list[str]] = {}
    types: dict[str, list[str]] = {}
    for line in text.splitlines():
        if match := _HEADER.match(line):
            kind, name, rest = match.groups()
            (helps if kind == "HELP" else types).setdefault(name, []).append(rest)
    assert helps.keys() == types.keys()
    assert {name: len(v) for name, v in helps.items() if len(v) > 1} == {}
    assert {name: len(v) for name, v in types.items() if len(v) > 1} == {}
    declared = {family.name: family for family in metrics.FAMILIES}
    # With the exporter's own planner (its families are declared there too): the page is the declarations.
    assert set(types) == set(declared)
    for name, family in declared.items():
        assert types[name] == [family.type], name
        help_text = family.help.format(window="3600s") if "{window}" in family.help else family.help
        assert helps[name] == [escape_help(help_text)], name
    assert "_created" not in text

"""The monitoring mixin (mixin/) evaluated with the jsonnet package, against the shipped files.

With its default ``_config`` the mixin must give back exactly what ships (prometheus/alerts.yml and
rules.yml, grafana/northflank-backups.json): it reads those files, so there is one source of truth, and
this shows it adds or loses nothing on the way. Overridden, each ``_config`` field changes what it says
and nothing else, and the result still passes ``promtool check rules``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import _jsonnet
import pytest
import yaml

from tests.e2e.binaries import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
MIXIN = REPO_ROOT / "mixin"
ALERTS_FILE = REPO_ROOT / "prometheus" / "alerts.yml"
RULES_FILE = REPO_ROOT / "prometheus" / "rules.yml"
DASHBOARD_FILE = REPO_ROOT / "grafana" / "northflank-backups.json"
CUSTOM_SELECTOR = 'job="nbe", cluster="prod"'


def evaluate(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mixin's three outputs, with ``config`` merged into its ``_config``."""
    overrides = json.dumps(config or {})
    snippet = f"""
        local mixin = (import 'mixin/mixin.libsonnet') + {{ _config+:: {overrides} }};
        {{
          alerts: mixin.prometheusAlerts,
          rules: mixin.prometheusRules,
          dashboards: mixin.grafanaDashboards,
          config: mixin._config,
        }}
    """
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet(str(REPO_ROOT / "evaluate.jsonnet"), snippet)
    )
    return result


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return evaluate()


@pytest.fixture(scope="module")
def custom() -> dict[str, Any]:
    return evaluate(
        {
            "exporterSelector": CUSTOM_SELECTOR,
            "runbookURLPattern": "https://wiki.example.com/runbooks/northflank#%s",
            "dashboardTags": ["backups"],
            "dashboardTimezone": "utc",
            "dashboardRefresh": "5m",
        }
    )


def _rules(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_default_mixin_is_the_shipped_files(default: dict[str, Any]) -> None:
    assert default["alerts"] == load_yaml(ALERTS_FILE)
    assert default["rules"] == load_yaml(RULES_FILE)
    assert default["dashboards"] == {DASHBOARD_FILE.name: json.loads(DASHBOARD_FILE.read_text("utf-8"))}


def test_mixin_exposes_the_conventional_fields(default: dict[str, Any]) -> None:
    assert set(default["config"]) >= {"exporterSelector", "runbookURLPattern", "dashboardTags"}
    assert default["alerts"]["groups"]
    assert default["rules"]["groups"]
    # The shipped alerts use the default selector: overriding it has something to change.
    assert f"{{{default['config']['exporterSelector']}}}" in ALERTS_FILE.read_text(encoding="utf-8")


def test_entry_points_render_what_the_mixin_holds(default: dict[str, Any]) -> None:
    """alerts.jsonnet and rules.jsonnet are what `jsonnet -S` turns into rule files, as in node-mixin."""
    for name, key in (("alerts.jsonnet", "alerts"), ("rules.jsonnet", "rules")):
        text = json.loads(_jsonnet.evaluate_file(str(MIXIN / name)))
        assert yaml.safe_load(text) == default[key]
    dashboards = json.loads(_jsonnet.evaluate_file(str(MIXIN / "dashboards.jsonnet")))
    assert dashboards == default["dashboards"]


def test_exporter_selector_changes_only_the_job_matchers(
    default: dict[str, Any], custom: dict[str, Any]
) -> None:
    shipped = default["config"]["exporterSelector"]
    changed = 0
    for before, after in zip(_rules(default["alerts"]), _rules(custom["alerts"]), strict=True):
        assert after["expr"] == before["expr"].replace(f"{{{shipped}}}", f"{{{CUSTOM_SELECTOR}}}")
        changed += after["expr"] != before["expr"]
        assert {**after, "expr": None, "annotations": None} == {**before, "expr": None, "annotations": None}
    assert changed >= 1
    down = next(rule for rule in _rules(custom["alerts"]) if rule["alert"] == "NorthflankExporterDown")
    assert f"up{{{CUSTOM_SELECTOR}}}" in down["expr"]
    assert custom["rules"] == default["rules"]


def test_runbook_url_pattern(custom: dict[str, Any]) -> None:
    for rule in _rules(custom["alerts"]):
        expected = f"https://wiki.example.com/runbooks/northflank#{rule['alert'].lower()}"
        assert rule["annotations"]["runbook_url"] == expected


def test_dashboard_config(default: dict[str, Any], custom: dict[str, Any]) -> None:
    (before,) = default["dashboards"].values()
    (after,) = custom["dashboards"].values()
    assert (after["tags"], after["timezone"], after["refresh"]) == (["backups"], "utc", "5m")
    variables = {variable["name"]: variable for variable in after["templating"]["list"]}
    assert variables["job"]["query"] == f"label_values(northflank_up{{{CUSTOM_SELECTOR}}}, job)"
    assert variables["job"]["definition"] == variables["job"]["query"]
    # Nothing else moves: panels, other variables, annotations, the import inputs.
    for key in ("panels", "annotations", "__inputs", "__requires", "uid", "title"):
        assert after[key] == before[key]
    others = [v for v in after["templating"]["list"] if v["name"] != "job"]
    assert others == [v for v in before["templating"]["list"] if v["name"] != "job"]


@pytest.mark.e2e
def test_customised_rules_pass_promtool(custom: dict[str, Any], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    paths = []
    for key in ("alerts", "rules"):
        path = tmp_path / f"{key}.yml"
        path.write_text(yaml.safe_dump(custom[key], sort_keys=False), encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run(
        [promtool, "check", "rules", *paths], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout)

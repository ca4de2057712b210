"""Helpers of the e2e tests: finding the Prometheus tools, and the PromQL the shipped rules and dashboard use.

:func:`require_binary` finds a binary on PATH or skips the test, and fails it instead under ``CI=true``,
where the binaries are installed by ``.ci/run`` and a skip would hide a broken set-up.

:func:`shipped_expressions` lists every PromQL expression of ``prometheus/alerts.yml``,
``prometheus/rules.yml`` and ``grafana/northflank-backups.json`` (panel targets and the metric selectors of
template variables); :func:`metric_names` tells which metric names an expression reads, and
:func:`exporter_metric_names_used` which of those the exporter has to expose. Names are sample names as
PromQL spells them (``northflank_api_requests_total``, ``northflank_api_request_duration_seconds_bucket``),
so they compare with the names of the text exposition.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS_FILE = REPO_ROOT / "prometheus" / "alerts.yml"
RULES_FILE = REPO_ROOT / "prometheus" / "rules.yml"
RULE_FILES = (ALERTS_FILE, RULES_FILE)
ALERTS_TEST_FILE = REPO_ROOT / "prometheus" / "alerts_test.yml"
DASHBOARD_FILE = REPO_ROOT / "grafana" / "northflank-backups.json"
RUNBOOK_FILE = REPO_ROOT / "docs" / "runbook.md"
EXAMPLE_PROMETHEUS_CONFIG = REPO_ROOT / "examples" / "prometheus.yml"
EXAMPLE_ALERTMANAGER_CONFIG = REPO_ROOT / "examples" / "alertmanager.yml"

#: Binaries known under more than one name: Debian ships Alertmanager as ``prometheus-alertmanager``.
_ALIASES: dict[str, tuple[str, ...]] = {
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),
}

#: Metrics that Prometheus itself provides, not the exporter.
PROMETHEUS_METRICS = frozenset({"up"})


def require_binary(name: str) -> str:
    """The path of ``name`` (or of an alias); skips the test when it is missing, fails it under CI=true."""
    for candidate in _ALIASES.get(name, (name,)):
        path = shutil.which(candidate)
        if path is not None:
            return path
    message = f"{name} is not installed (looked for {', '.join(_ALIASES.get(name, (name,)))} on PATH)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true, so this is an error: .ci/run should have installed it")
    pytest.skip(message)


@dataclass(frozen=True, slots=True)
class Expression:
    """A PromQL expression and where it comes from (``file: what``)."""

    source: str
    expr: str


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_dashboard(path: Path = DASHBOARD_FILE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        dashboard: dict[str, Any] = json.load(handle)
    return dashboard


def iter_rules(path: Path) -> Iterator[dict[str, Any]]:
    """Every rule (alerting and recording) of a Prometheus rule file, in file order."""
    document = load_yaml(path)
    for group in document.get("groups", []):
        yield from group.get("rules", [])


def alert_rules(path: Path = ALERTS_FILE) -> list[dict[str, Any]]:
    return [rule for rule in iter_rules(path) if "alert" in rule]


def recorded_metric_names(paths: Iterable[Path] = RULE_FILES) -> set[str]:
    """The names the recording rules of ``paths`` write."""
    return {str(rule["record"]) for path in paths for rule in iter_rules(path) if "record" in rule}


def rule_expressions(paths: Iterable[Path] = RULE_FILES) -> list[Expression]:
    expressions = []
    for path in paths:
        for rule in iter_rules(path):
            kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
            expressions.append(Expression(f"{path.relative_to(REPO_ROOT)}: {kind} {name}", str(rule["expr"])))
    return expressions


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, also those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    if isinstance(query, dict):
        query = query.get("query", "")
    return str(query)


def dashboard_expressions(path: Path = DASHBOARD_FILE) -> list[Expression]:
    """The PromQL of every panel target, and the metric selector of every ``label_values`` variable."""
    dashboard = load_dashboard(path)
    where = path.relative_to(REPO_ROOT)
    expressions = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                source = f"{where}: panel {panel.get('title')!r} target {target.get('refId')}"
                expressions.append(Expression(source, str(target["expr"])))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = _variable_query(variable)
        match = _LABEL_VALUES.match(query)
        if match is None:
            expressions.append(Expression(f"{where}: variable {variable.get('name')}", query))
        elif match.group("selector"):
            selector = match.group("selector")
            expressions.append(Expression(f"{where}: variable {variable.get('name')}", selector))
    return expressions


def shipped_expressions() -> list[Expression]:
    """Every PromQL expression of the shipped rule files and dashboard."""
    return rule_expressions() + dashboard_expressions()


#: What Grafana puts in for its built-in interval variables when it runs a query; other variables
#: (``$job``, ``${datasource}``) become a match-anything regex.
_GRAFANA_INTERVALS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute_grafana_variables(expr: str) -> str:
    """The expression as Prometheus would receive it from Grafana with every variable set to All."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        return _GRAFANA_INTERVALS.get(name, ".*")

    return _GRAFANA_VARIABLE.sub(replace, expr)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
        "start",
        "end",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (function names, keywords and label names are left out)."""
    text = substitute_grafana_variables(expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function call or an aggregation, or a keyword
        names.add(name)
    return names


def used_metric_names(expressions: Iterable[Expression] | None = None) -> set[str]:
    """Every metric name the shipped rules and dashboard read, recording-rule outputs included."""
    chosen = shipped_expressions() if expressions is None else expressions
    return {name for expression in chosen for name in metric_names(expression.expr)}


def exporter_metric_names_used() -> set[str]:
    """The metric names the shipped rules and dashboard need the exporter to expose."""
    return used_metric_names() - recorded_metric_names() - PROMETHEUS_METRICS


__all__ = [
    "ALERTS_FILE",
    "ALERTS_TEST_FILE",
    "DASHBOARD_FILE",
    "EXAMPLE_ALERTMANAGER_CONFIG",
    "EXAMPLE_PROMETHEUS_CONFIG",
    "PROMETHEUS_METRICS",
    "REPO_ROOT",
    "RULES_FILE",
    "RULE_FILES",
    "RUNBOOK_FILE",
    "Expression",
    "alert_rules",
    "dashboard_expressions",
    "exporter_metric_names_used",
    "iter_panels",
    "iter_rules",
    "load_dashboard",
    "load_yaml",
    "metric_names",
    "recorded_metric_names",
    "require_binary",
    "rule_expressions",
    "shipped_expressions",
    "substitute_grafana_variables",
    "used_metric_names",
]

"""Static checks of what ships for Prometheus, Alertmanager and Grafana.

- promtool checks the rule files and the example Prometheus configuration, and runs the rule unit tests;
  amtool checks the example Alertmanager configuration and its routing by severity;
- every PromQL expression of the dashboard is valid (promtool checks it as a recording rule);
- the alerts follow the conventions (name prefix, severity, summary, description, runbook section, unit
  tests that show each alert firing and silent);
- the dashboard's structure: fixed uid, not editable, variables, units, descriptions, $__rate_interval.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.binaries import (
    ALERTS_FILE,
    ALERTS_TEST_FILE,
    DASHBOARD_FILE,
    EXAMPLE_ALERTMANAGER_CONFIG,
    EXAMPLE_PROMETHEUS_CONFIG,
    REPO_ROOT,
    RULE_FILES,
    RULES_FILE,
    RUNBOOK_FILE,
    Expression,
    alert_rules,
    dashboard_expressions,
    exporter_metric_names_used,
    iter_panels,
    load_dashboard,
    load_yaml,
    metric_names,
    recorded_metric_names,
    shipped_expressions,
    substitute_grafana_variables,
    used_metric_names,
)

RUNBOOK_URL = (
    "https://github.com/northflank-backup-exporter/northflank-backup-exporter/blob/main/docs/runbook.md"
)
SEVERITIES = {"critical", "warning", "info"}
ALERT_NAME = re.compile(r"^Northflank(Backup|Exporter)[A-Z][A-Za-z]+$")
RECORD_NAME = re.compile(r"^northflank:[a-z0-9_]+(:[a-z0-9_]+)*$")
EXPORTER_METRIC = re.compile(r"^northflank_[a-z0-9_]+$")
EXAMPLE_JOB = "northflank-backup-exporter"
ADDON_VARIABLES = ("job", "instance", "project", "addon")
RATE_FUNCTIONS = re.compile(r"\b(rate|irate|increase)\s*\(")
ADDON_INFO_JOIN = re.compile(
    r"\* on\(job, instance, project, addon\) group_left\(addon_name, project_name\)\s+northflank_addon_info"
)

ALERTS = alert_rules()
ALERT_NAMES = [str(rule["alert"]) for rule in ALERTS]
DASHBOARD = load_dashboard()
PANELS = [panel for panel in iter_panels(DASHBOARD) if panel.get("type") != "row"]
PROMETHEUS_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ALERT_ANNOTATIONS = [
    annotation
    for annotation in DASHBOARD["annotations"]["list"]
    if annotation.get("datasource") == PROMETHEUS_DATASOURCE
]
#: At most this many series per per-addon time series panel, whatever the size of the fleet.
TOP_SERIES = 10


def run(argv: Sequence[str], *, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Runs a tool; a non-zero exit fails the test with the tool's output."""
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in RUNBOOK_FILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def call_arguments(expr: str, start: int) -> str:
    """The text between the parenthesis that opens at ``start`` and the one that closes it."""
    depth = 0
    for index in range(start, len(expr)):
        if expr[index] == "(":
            depth += 1
        elif expr[index] == ")":
            depth -= 1
            if depth == 0:
                return expr[start + 1 : index]
    raise AssertionError(f"unbalanced parentheses in {expr!r}")


def panel_id(panel: dict[str, Any]) -> str:
    return f"{panel.get('id')}: {panel.get('title')}"


# --------------------------------------------------------------------------------------------------------
# promtool and amtool


@pytest.mark.e2e
def test_promtool_check_rules(promtool: str) -> None:
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert "SUCCESS" in result.stdout


@pytest.mark.e2e
def test_promtool_rule_unit_tests(promtool: str) -> None:
    result = run([promtool, "test", "rules", str(ALERTS_TEST_FILE)])
    assert "SUCCESS" in result.stdout


@pytest.mark.e2e
def test_promtool_check_example_config(promtool: str) -> None:
    # Run from elsewhere: promtool resolves rule_files relative to the configuration file.
    result = run([promtool, "check", "config", str(EXAMPLE_PROMETHEUS_CONFIG)], cwd=Path("/"))
    assert "SUCCESS: 2 rule files found" in result.stdout
    checked = {
        Path(line.removeprefix("Checking ")).resolve()
        for line in result.stdout.splitlines()
        if line.startswith("Checking ")
    }
    assert checked >= {path.resolve() for path in RULE_FILES}


@pytest.mark.e2e
def test_amtool_check_example_config(alertmanager: str, amtool: str) -> None:
    # alertmanager is asked for too: the example is for Alertmanager itself; amtool ships with it.
    result = run([amtool, "check-config", str(EXAMPLE_ALERTMANAGER_CONFIG)])
    assert "SUCCESS" in result.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("severity", sorted(SEVERITIES))
def test_example_alertmanager_routes_by_severity(severity: str, amtool: str) -> None:
    config = f"--config.file={EXAMPLE_ALERTMANAGER_CONFIG}"
    run(
        [amtool, "config", "routes", "test", config, f"--verify.receivers={severity}", f"severity={severity}"]
    )


@pytest.mark.e2e
def test_dashboard_expressions_are_valid_promql(tmp_path: Path, promtool: str) -> None:
    """Every dashboard query, with Grafana's variables filled in, parses as PromQL."""
    expressions = dashboard_expressions() + [Expression("annotation", a["expr"]) for a in ALERT_ANNOTATIONS]
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute_grafana_variables(expression.expr)}
        for index, expression in enumerate(expressions)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = run([promtool, "check", "rules", str(path)])
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --------------------------------------------------------------------------------------------------------
# Alerts


def test_alert_names_are_unique_and_prefixed() -> None:
    assert ALERT_NAMES, "no alert in prometheus/alerts.yml"
    assert len(set(ALERT_NAMES)) == len(ALERT_NAMES), ALERT_NAMES
    assert [name for name in ALERT_NAMES if not ALERT_NAME.match(name)] == []


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_NAMES)
def test_alert_labels_and_annotations(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    summary, description = annotations["summary"], annotations["description"]
    assert summary.strip()
    assert "{{" not in summary, "summary must be a static sentence"
    assert summary.endswith("."), summary
    assert "{{" in description, "description must be templated"
    assert annotations["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"
    assert "for" in rule, "every alert needs a for: duration"
    if "northflank_addon_info" in rule["expr"]:
        # Per-addon alerts name the addon and project by id and by name.
        for label in ("project", "addon", "project_name", "addon_name"):
            assert f"$labels.{label} }}}}" in description, label
        assert re.search(ADDON_INFO_JOIN, rule["expr"]), "join northflank_addon_info for the names"
    elif name.startswith("NorthflankBackup"):
        assert "$labels.project" in description
        assert "$labels.addon" in description


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_has_runbook_section(name: str) -> None:
    assert name.lower() in runbook_anchors(), f"docs/runbook.md has no section '## {name}'"


def test_runbook_has_no_section_for_unknown_alerts() -> None:
    documented = {
        match.group(1)
        for match in re.finditer(r"^## (Northflank\w+)\s*$", RUNBOOK_FILE.read_text(encoding="utf-8"), re.M)
    }
    assert documented == set(ALERT_NAMES)


def _alert_tests() -> list[dict[str, Any]]:
    document = load_yaml(ALERTS_TEST_FILE)
    return [case for group in document["tests"] for case in group.get("alert_rule_test", [])]


def test_unit_tests_load_the_shipped_rule_files() -> None:
    document = load_yaml(ALERTS_TEST_FILE)
    assert {(ALERTS_TEST_FILE.parent / name).resolve() for name in document["rule_files"]} == {
        path.resolve() for path in RULE_FILES
    }


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_is_unit_tested_firing_and_silent(name: str) -> None:
    cases = [case for case in _alert_tests() if case["alertname"] == name]
    firing = [case for case in cases if case.get("exp_alerts")]
    silent = [case for case in cases if not case.get("exp_alerts")]
    assert firing, f"no test shows {name} firing"
    assert silent, f"no test shows {name} silent"
    rule = next(rule for rule in ALERTS if rule["alert"] == name)
    for case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert set(expected["exp_annotations"]) == set(rule["annotations"])


def test_unit_tests_name_only_existing_alerts() -> None:
    assert {case["alertname"] for case in _alert_tests()} <= set(ALERT_NAMES)


def test_recording_rules_are_named_by_convention() -> None:
    names = recorded_metric_names([RULES_FILE])
    assert names
    assert [name for name in names if not RECORD_NAME.match(name)] == []
    assert recorded_metric_names([ALERTS_FILE]) == set()


# --------------------------------------------------------------------------------------------------------
# Metric names


def test_metric_names_extraction() -> None:
    expr = (
        'sum by (code) (rate(northflank_api_requests_total{job=~"$job", code!~"5.."}[$__rate_interval]))'
        " / on(job) group_left(version) northflank_exporter_build_info offset 1d"
        ' and northflank:addon_backup_age_ratio > 1e3 or vector(0) unless up{job="x"}'
    )
    assert metric_names(expr) == {
        "northflank_api_requests_total",
        "northflank_exporter_build_info",
        "northflank:addon_backup_age_ratio",
        "up",
    }


def test_shipped_expressions_cover_rules_and_dashboard() -> None:
    sources = {expression.source.split(":")[0] for expression in shipped_expressions()}
    assert sources == {"prometheus/alerts.yml", "prometheus/rules.yml", "grafana/northflank-backups.json"}


def test_only_exporter_metrics_and_recording_rules_are_used() -> None:
    recorded = recorded_metric_names()
    unknown = sorted(
        name
        for name in used_metric_names()
        if not (EXPORTER_METRIC.match(name) or name in recorded or name == "up")
    )
    assert unknown == []
    assert exporter_metric_names_used() <= used_metric_names()
    # northflank:addon_backup_age_ratio stays for your own queries; the dashboard computes the same from
    # the exporter's metrics (test_dashboard_computes_the_allowed_age_as_the_rules_do) to work without it.
    assert recorded - used_metric_names() == {"northflank:addon_backup_age_ratio"}, "a rule nobody reads"


def test_recording_rules_read_are_defined() -> None:
    read = {name for name in used_metric_names() if name.startswith("northflank:")}
    assert read <= recorded_metric_names()


# --------------------------------------------------------------------------------------------------------
# Dashboard


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "northflank-backups"
    assert DASHBOARD["editable"] is False
    assert DASHBOARD.get("id") is None
    assert DASHBOARD["title"]


def test_dashboard_datasource_variable() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


@pytest.mark.parametrize("name", ADDON_VARIABLES)
def test_dashboard_label_variables(name: str) -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    variable = variables[name]
    assert variable["type"] == "query"
    assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert re.fullmatch(rf"label_values\(\w+(\{{.*\}})?, {name}\)", str(variable["query"]))


def test_dashboard_panels_exist_and_ids_are_unique() -> None:
    ids = [panel["id"] for panel in iter_panels(DASHBOARD)]
    assert len(ids) == len(set(ids))
    assert {panel["title"] for panel in iter_panels(DASHBOARD) if panel["type"] == "row"} == {
        "Fleet summary",
        "Addons",
        "Backup age and size",
        "Failures and restores",
        "Backup destinations",
        "Exporter and API health",
    }


@pytest.mark.parametrize("panel", PANELS, ids=[panel_id(panel) for panel in PANELS])
def test_dashboard_panel_has_unit_description_and_queries(panel: dict[str, Any]) -> None:
    assert str(panel.get("description", "")).strip(), "panel without a description"
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    assert str(defaults.get("unit", "")).strip(), "panel without a unit (fieldConfig.defaults.unit)"
    assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}
    targets = panel.get("targets", [])
    assert targets
    assert all(str(target.get("expr", "")).strip() for target in targets)
    for target in targets:
        assert target.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}
    assert len({target["refId"] for target in targets}) == len(targets)


@pytest.mark.parametrize(
    "expression", dashboard_expressions(), ids=[expression.source for expression in dashboard_expressions()]
)
def test_dashboard_rates_use_rate_interval(expression: Expression) -> None:
    for match in RATE_FUNCTIONS.finditer(expression.expr):
        arguments = call_arguments(expression.expr, match.end() - 1)
        ranges = re.findall(r"\[([^\[\]]*)\]", arguments)
        message = f"{match.group(1)}() in {expression.expr!r} must use [$__rate_interval]"
        assert ranges, message
        assert all(value == "$__rate_interval" for value in ranges), message


PANEL_EXPRESSIONS = [expression for expression in dashboard_expressions() if ": panel " in expression.source]


@pytest.mark.parametrize(
    "expression", PANEL_EXPRESSIONS, ids=[expression.source for expression in PANEL_EXPRESSIONS]
)
def test_dashboard_queries_filter_on_job_and_instance(expression: Expression) -> None:
    for selector in re.findall(r"\b[a-z_:]+\{([^{}]*)\}", expression.expr):
        assert 'job=~"$job"' in selector, expression.expr
        assert 'instance=~"$instance"' in selector, expression.expr


def _normalised(expr: str) -> str:
    """PromQL without label matchers, ``@`` modifiers and whitespace, to compare two spellings."""
    expr = re.sub(r"\{[^{}]*\}", "", expr)
    expr = re.sub(r"@\s*(?:end|start)\(\)", "", expr)
    return re.sub(r"\s+", "", expr)


def _reads_recording_rule(panel: dict[str, Any]) -> set[str]:
    return {
        name
        for target in panel.get("targets", [])
        for name in metric_names(str(target.get("expr", "")))
        if name.startswith("northflank:")
    }


def test_dashboard_needs_the_recording_rules_in_one_panel_only_and_says_so() -> None:
    """Without prometheus/rules.yml only the 7-day size ratio is empty, and its description says why."""
    dependent = {panel_id(panel): panel for panel in PANELS if _reads_recording_rule(panel)}
    assert set(dependent) == {"18: Size relative to the 7-day maximum (lowest 10)"}
    for panel in dependent.values():
        description = str(panel["description"])
        assert "Needs the recording rule" in description
        assert "prometheus/rules.yml" in description
        for name in _reads_recording_rule(panel):
            assert name in description


def test_dashboard_computes_the_allowed_age_as_the_rules_do() -> None:
    """The panels that judge a backup too old inline the recording rule's (and the alert's) threshold."""
    allowed = next(
        rule["expr"]
        for rule in load_yaml(RULES_FILE)["groups"][0]["rules"]
        if rule.get("record") == "northflank:addon_backup_allowed_age_seconds"
    )
    alert = next(rule["expr"] for rule in ALERTS if rule["alert"] == "NorthflankBackupTooOld")
    threshold = _normalised(allowed)
    assert f"({threshold})" in _normalised(alert)
    judging = [
        (panel_id(panel), str(target["expr"]))
        for panel in PANELS
        for target in panel["targets"]
        if "northflank_addon_backup_schedule_max_interval_seconds" in str(target["expr"])
        and "northflank_addon_backup_last_completed_age_seconds" in str(target["expr"])
    ]
    assert {source.split(":")[0] for source, _ in judging} == {"4", "11", "16"}
    for source, expr in judging:
        assert f"({threshold})" in _normalised(expr), source


def _top_limit(expr: str) -> int | None:
    match = re.search(r"\b(?:topk|bottomk)\((\d+),", expr)
    return None if match is None else int(match.group(1))


PER_ADDON_SERIES = [
    panel
    for panel in PANELS
    if panel["type"] == "timeseries"
    and any("{{addon" in str(target.get("legendFormat", "")) for target in panel["targets"])
]


@pytest.mark.parametrize("panel", PER_ADDON_SERIES, ids=[panel_id(panel) for panel in PER_ADDON_SERIES])
def test_per_addon_time_series_show_a_fixed_number_of_addons(panel: dict[str, Any]) -> None:
    """At 1000 addons a graph of every addon is unreadable: a stable top N (chosen over the whole range)."""
    for target in panel["targets"]:
        expr = str(target["expr"])
        assert _top_limit(expr) == TOP_SERIES, expr
        # The selection is evaluated once for the whole range (@ end()), so the same addons are drawn
        # from left to right instead of a different top N at every step.
        selection = expr[expr.rindex("\nand on(") :]
        assert re.search(r"@ end\(\)", selection), expr
        assert re.search(rf"\((top|lowest) {TOP_SERIES}\)$", str(panel["title"])), panel["title"]
        assert f"{TOP_SERIES}" in str(panel["description"])


def test_per_addon_time_series_are_all_limited() -> None:
    assert len(PER_ADDON_SERIES) >= 10
    # Any other time series that selects addons aggregates them away.
    unlimited = []
    for panel in PANELS:
        if panel["type"] != "timeseries" or panel in PER_ADDON_SERIES:
            continue
        for target in panel["targets"]:
            expr = str(target["expr"])
            aggregated = re.match(r"(sum|max|min|count|avg) by \(([^()]*)\) \(", expr)
            if 'addon=~"$addon"' in expr and (aggregated is None or "addon" in aggregated.group(2)):
                unlimited.append(f"{panel_id(panel)} {target['refId']}")
    assert unlimited == []


def test_alert_annotations_on_the_time_series() -> None:
    (annotation,) = ALERT_ANNOTATIONS
    assert annotation["enable"] is True
    expr = str(annotation["expr"])
    assert metric_names(expr) == {"ALERTS"}
    assert 'alertstate="firing"' in expr
    (pattern,) = re.findall(r'alertname=~"([^"]+)"', expr)
    assert all(re.fullmatch(pattern, name) for name in ALERT_NAMES)
    assert 'job=~"$job"' in expr
    assert 'instance=~"$instance"' in expr
    # Alerts about the exporter itself have no project or addon label: they stay when one is chosen.
    assert 'project=~"$project|"' in expr
    assert 'addon=~"$addon|"' in expr
    assert "{{alertname}}" in annotation["titleFormat"]


def _datasource_references(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from _datasource_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_references(item)


def test_dashboard_is_importable_from_a_file_as_grafana_com_dashboards_are() -> None:
    """``__inputs`` for the import dialog; provisioning (no import) still works through the variable."""
    (prometheus_input,) = DASHBOARD["__inputs"]
    assert prometheus_input == {
        "name": "DS_PROMETHEUS",
        "label": "Prometheus",
        "description": prometheus_input["description"],
        "type": "datasource",
        "pluginId": "prometheus",
        "pluginName": "Prometheus",
    }
    text = DASHBOARD_FILE.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{(DS_\w+)\}", text)) == {"DS_PROMETHEUS"}, "every input used, none unknown"
    requires = {(item["type"], item["id"]) for item in DASHBOARD["__requires"]}
    panel_types = {panel["type"] for panel in PANELS}
    assert requires == {("grafana", "grafana"), ("datasource", "prometheus")} | {
        ("panel", kind) for kind in panel_types
    }
    # Every query goes through the datasource variable; only its default value is the import input, so a
    # provisioned copy, where nothing replaces ${DS_PROMETHEUS}, falls back to the default data source.
    references = list(_datasource_references(DASHBOARD["panels"])) + list(
        _datasource_references(DASHBOARD["annotations"])
    )
    references += list(_datasource_references(DASHBOARD["templating"]))
    assert references
    assert all(
        reference == PROMETHEUS_DATASOURCE or reference == {"type": "grafana", "uid": "-- Grafana --"}
        for reference in references
    ), references
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    imported = json.loads(text.replace("${DS_PROMETHEUS}", "prometheus-uid"))
    chosen = {variable["name"]: variable for variable in imported["templating"]["list"]}["datasource"]
    assert chosen["current"]["value"] == "prometheus-uid"


# --------------------------------------------------------------------------------------------------------
# Examples and provisioning


def test_example_prometheus_config() -> None:
    config = load_yaml(EXAMPLE_PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [target for group in jobs[EXAMPLE_JOB]["static_configs"] for target in group["targets"]]
    assert targets == ["localhost:10150"]
    rule_files = {(EXAMPLE_PROMETHEUS_CONFIG.parent / name).resolve() for name in config["rule_files"]}
    assert rule_files == {path.resolve() for path in RULE_FILES}
    managers = config["alerting"]["alertmanagers"]
    alertmanagers = [target for m in managers for group in m["static_configs"] for target in group["targets"]]
    assert alertmanagers == ["localhost:9093"]
    # NorthflankExporterDown watches the example's job.
    exporter_down = next(rule["expr"] for rule in ALERTS if rule["alert"] == "NorthflankExporterDown")
    (pattern,) = re.findall(r'up\{job=~"([^"]+)"\}', exporter_down)
    assert re.fullmatch(pattern, EXAMPLE_JOB)


def test_example_alertmanager_config_has_webhooks() -> None:
    config = load_yaml(EXAMPLE_ALERTMANAGER_CONFIG)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    for severity in SEVERITIES:
        assert receivers[severity]["webhook_configs"]
    routed = {route["receiver"]: route["matchers"] for route in config["route"]["routes"]}
    assert routed == {severity: [f'severity="{severity}"'] for severity in SEVERITIES}


def test_grafana_provisioning() -> None:
    datasources = load_yaml(REPO_ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert datasources["apiVersion"] == 1
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    dashboards = load_yaml(REPO_ROOT / "grafana" / "provisioning" / "dashboards" / "northflank.yml")
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


def test_dashboard_file_is_formatted_json() -> None:
    text = DASHBOARD_FILE.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert "\t" not in text

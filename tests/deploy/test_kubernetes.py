"""The Kubernetes manifests of deploy/kubernetes/.

Built-in kinds (Deployment, Service, Secret) are validated with kubernetes-validate in strict mode (unknown
fields are errors) against pinned Kubernetes versions. It has no schemas for the Prometheus Operator's
ServiceMonitor and PrometheusRule, so those are checked against the parts of the operator's CRD schemas
that the manifests use. Then the manifests are checked against each other and against the image: labels
and selectors, port names, the probes, the security context, the token file, and that
prometheusrule.yaml is what scripts/generate_prometheusrule.py makes from the rule files today.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporter.flags import build_parser
from tests.deploy import KUBERNETES_DIR, REPO_ROOT, parse_dockerfile, project_version

#: Oldest and newest Kubernetes versions the manifests are validated against.
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
NAME = "northflank-backup-exporter"
GENERATOR = REPO_ROOT / "scripts" / "generate_prometheusrule.py"
GENERATED = KUBERNETES_DIR / "prometheusrule.yaml"
REGENERATE = ".venv/bin/python scripts/generate_prometheusrule.py"
#: Files that exist for the user to copy, deliberately not part of the kustomization.
NOT_APPLIED = {"secret.yaml", "kustomization.yaml"}

# The Prometheus Operator's duration format (monitoring.coreos.com/v1 Duration).
_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "labels": _STRING_MAP, "namespace": {}},
    "additionalProperties": False,
}
#: The fields of the operator's CRDs that these manifests use, with their types; unknown fields are errors.
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "namespaceSelector": {"type": "object"},
                    "selector": {
                        "type": "object",
                        "required": ["matchLabels"],
                        "additionalProperties": False,
                        "properties": {"matchLabels": {**_STRING_MAP, "minProperties": 1}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                                "honorLabels": {"type": "boolean"},
                                "basicAuth": {"type": "object"},
                                "tlsConfig": {"type": "object"},
                                "relabelings": {"type": "array"},
                                "metricRelabelings": {"type": "array"},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": {"type": "string", "pattern": _DURATION},
                                "limit": {"type": "integer"},
                                "rules": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["expr"],
                                        "additionalProperties": False,
                                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                        "properties": {
                                            "alert": {
                                                "type": "string",
                                                "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                                            },
                                            "record": {
                                                "type": "string",
                                                "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$",
                                            },
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": {"type": "string", "pattern": _DURATION},
                                            "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                            "labels": _STRING_MAP,
                                            "annotations": _STRING_MAP,
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _require_module(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        message = f"{name} is not installed (pip install -e '.[dev]' installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true, so this is an error")
        pytest.skip(message)


def _load(name: str) -> list[dict[str, Any]]:
    documents = [
        doc for doc in yaml.safe_load_all((KUBERNETES_DIR / name).read_text(encoding="utf-8")) if doc
    ]
    assert documents, f"{name} holds no object"
    return documents


def _one(name: str, kind: str) -> dict[str, Any]:
    (document,) = _load(name)
    assert document["kind"] == kind, f"{name} should hold a {kind}"
    return document


def _kustomization() -> dict[str, Any]:
    (document,) = _load("kustomization.yaml")
    return document


def _applied() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` creates (resources, with the images: rewrite)."""
    kustomization = _kustomization()
    objects = [doc for resource in kustomization["resources"] for doc in _load(resource)]
    for image in kustomization.get("images", []):
        for doc in objects:
            for container in _pod_spec(doc).get("containers", []) if doc["kind"] == "Deployment" else []:
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return objects


def _deployment() -> dict[str, Any]:
    return _one("deployment.yaml", "Deployment")


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _container(deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    (container,) = _pod_spec(deployment or _deployment())["containers"]
    assert isinstance(container, dict)
    return container


def _image_ids() -> tuple[int, int]:
    final = parse_dockerfile()[-1]
    user = final.last("USER")
    assert user is not None
    uid, gid = user.arguments.split(":")
    return int(uid), int(gid)


def _exposed_port() -> int:
    expose = parse_dockerfile()[-1].last("EXPOSE")
    assert expose is not None
    return int(expose.arguments.split()[0])


# --- the files --------------------------------------------------------------------------------------


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    kustomization = _kustomization()
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    on_disk = {path.name for path in KUBERNETES_DIR.glob("*.yaml")}
    assert set(resources) == on_disk - NOT_APPLIED, "list new manifests in kustomization.yaml"
    assert "secret.yaml" not in resources, "applying the example Secret would overwrite the real token"
    (image,) = kustomization["images"]
    assert image["name"] == _container()["image"].partition(":")[0]
    assert image["newTag"] == project_version()


def test_image_tag_is_the_project_version() -> None:
    assert _container()["image"] == f"{NAME}:{project_version()}"
    assert _container()["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_pass_kubernetes_validate_strict(version: str) -> None:
    kubernetes_validate = _require_module("kubernetes_validate")
    documents = [*_applied(), *_load("secret.yaml")]
    validated = set()
    for document in documents:
        if document["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{document['kind']}/{document['metadata']['name']} at {path}: {error.message}")
        validated.add(document["kind"])
    assert validated == {"Deployment", "Service", "Secret"}


def test_kubernetes_validate_catches_a_misspelt_field() -> None:
    # The negative control: strict validation really rejects what Kubernetes would ignore or refuse.
    kubernetes_validate = _require_module("kubernetes_validate")
    broken = copy.deepcopy(_deployment())
    _container(broken)["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", ["servicemonitor.yaml", "prometheusrule.yaml"])
def test_operator_objects_match_the_crd_fields_they_use(name: str) -> None:
    jsonschema = _require_module("jsonschema")
    (document,) = _load(name)
    validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[document["kind"]])
    errors = [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]
    assert not errors, "\n".join(errors)


def test_crd_schema_catches_a_bad_rule() -> None:
    jsonschema = _require_module("jsonschema")
    broken = copy.deepcopy(_one("prometheusrule.yaml", "PrometheusRule"))
    broken["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    validator = jsonschema.Draft202012Validator(CRD_SCHEMAS["PrometheusRule"])
    assert list(validator.iter_errors(broken))


# --- how the objects fit together -------------------------------------------------------------------


def test_labels_selectors_and_port_names_line_up() -> None:
    deployment = _deployment()
    service = _one("service.yaml", "Service")
    monitor = _one("servicemonitor.yaml", "ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the Deployment's selector must match its pods"
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects no pod"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == NAME

    container_ports = {port["name"]: port["containerPort"] for port in _container(deployment)["ports"]}
    assert container_ports == {"http": _exposed_port()}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in container_ports
    assert service_port["port"] == _exposed_port()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    seconds = {"s": 1, "m": 60}
    interval, timeout = (
        int(value[:-1]) * seconds[value[-1]] for value in (endpoint["interval"], endpoint["scrapeTimeout"])
    )
    assert timeout <= interval


def test_service_name_gives_the_job_label_the_alerts_expect() -> None:
    # Without jobLabel, the operator names the job after the Service; NorthflankExporterDown watches
    # up{job=~".*northflank.*"}.
    monitor = _one("servicemonitor.yaml", "ServiceMonitor")
    assert "jobLabel" not in monitor["spec"]
    assert "northflank" in _one("service.yaml", "Service")["metadata"]["name"]
    alerts = (REPO_ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    assert 'job=~".*northflank.*"' in alerts


def test_the_container_arguments_are_flags_the_exporter_knows() -> None:
    container = _container()
    assert "command" not in container, "the image's ENTRYPOINT is the exporter: pass flags as args"
    parsed = build_parser().parse_args(container["args"])
    host, _, port = parsed.listen_address.rpartition(":")
    assert host in ("", "0.0.0.0"), "listen on every interface of the pod"
    assert int(port) == _exposed_port()


def test_one_replica_and_never_two_at_once() -> None:
    deployment = _deployment()
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    text = (KUBERNETES_DIR / "deployment.yaml").read_text(encoding="utf-8")
    assert "API budget" in text, "say next to replicas why there is only one"


def test_security_context_is_locked_down_and_matches_the_image_user() -> None:
    deployment = _deployment()
    pod = _pod_spec(deployment)
    container = _container(deployment)
    uid, gid = _image_ids()
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == uid
    assert pod_context["runAsGroup"] == gid
    assert pod_context["fsGroup"] == gid, "the mounted token must be readable by the image's group"
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == uid
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in context["capabilities"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False, "the exporter never talks to the Kubernetes API"
    assert pod.get("hostNetwork", False) is False


def test_resources_have_requests_and_limits() -> None:
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}, kind
    mebibytes = {"Mi": 1, "Gi": 1024}
    request, limit = (
        int(value[:-2]) * mebibytes[value[-2:]]
        for value in (resources["requests"]["memory"], resources["limits"]["memory"])
    )
    assert 32 <= request <= limit


def test_probes_hit_health_and_readiness_on_the_http_port() -> None:
    container = _container()
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert readiness["httpGet"] == {"path": "/-/ready", "port": "http"}
    assert "http" in {port["name"] for port in container["ports"]}
    for probe in (liveness, readiness):
        assert probe["timeoutSeconds"] < probe["periodSeconds"]
    # A slow first refresh must not get the pod killed: only readiness waits for it.
    assert liveness["failureThreshold"] * liveness["periodSeconds"] >= 60


def test_token_comes_from_the_secret_as_a_read_only_file() -> None:
    deployment = _deployment()
    container = _container(deployment)
    for variable in container.get("env", []):
        if "TOKEN" in variable["name"]:
            assert "value" not in variable, f"{variable['name']}: a token in plain text in the manifest"
            assert "secretKeyRef" in variable["valueFrom"]
    (token_flag,) = [arg for arg in container["args"] if arg.startswith("--northflank.token-file=")]
    token_path = token_flag.partition("=")[2]
    volumes = {volume["name"]: volume for volume in _pod_spec(deployment)["volumes"]}
    (mount,) = [
        m for m in container["volumeMounts"] if token_path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mount["readOnly"] is True
    secret_volume = volumes[mount["name"]]["secret"]
    (item,) = [
        i for i in secret_volume["items"] if f"{mount['mountPath'].rstrip('/')}/{i['path']}" == token_path
    ]
    assert secret_volume["defaultMode"] & 0o007 == 0, "the token file should not be world-readable"

    secret = _one("secret.yaml", "Secret")
    assert secret["metadata"]["name"] == secret_volume["secretName"]
    placeholder = secret["stringData"][item["key"]]
    assert "REPLACE" in placeholder, "secret.yaml is an example: it must hold an obvious placeholder"
    assert "EXAMPLE" in (KUBERNETES_DIR / "secret.yaml").read_text(encoding="utf-8")


def test_read_only_root_has_a_writable_tmp() -> None:
    deployment = _deployment()
    mounts = {mount["mountPath"]: mount["name"] for mount in _container(deployment)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in _pod_spec(deployment)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_state_directory_is_a_writable_volume_on_disk() -> None:
    """--storage.path on an emptyDir (it outlives container restarts), not in memory (it would count
    against the memory limit), and the flag names the mounted path."""
    deployment = _deployment()
    container = _container(deployment)
    (path,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--storage.path=")]
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in _pod_spec(deployment)["volumes"]}
    mount = mounts[path]
    assert not mount.get("readOnly", False)
    volume = volumes[mount["name"]]["emptyDir"]
    assert volume.get("medium") != "Memory"
    assert volume["sizeLimit"]


# --- the generated PrometheusRule -------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_up_to_date_with_the_rule_files() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--stdout"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    current = GENERATED.read_text(encoding="utf-8") if GENERATED.exists() else ""
    if result.stdout != current:
        diff = "".join(
            list(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    result.stdout.splitlines(keepends=True),
                    "deploy/kubernetes/prometheusrule.yaml (checked in)",
                    "generated now",
                )
            )[:60]
        )
        pytest.fail(f"deploy/kubernetes/prometheusrule.yaml is out of date: run `{REGENERATE}`\n{diff}")


def test_prometheusrule_holds_every_group_of_the_rule_files() -> None:
    expected = []
    for name in ("rules.yml", "alerts.yml"):
        path = REPO_ROOT / "prometheus" / name
        if path.exists():
            expected.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    rule = _one("prometheusrule.yaml", "PrometheusRule")
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"] == _deployment()["metadata"]["labels"]
    header = GENERATED.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# Generated by scripts/generate_prometheusrule.py")
    assert "do not edit" in header
    alert_names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alert_names, "no alerting rule"


def test_generator_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def _write_rule_files(root: Path, alerts: object, rules: object | None) -> None:
    (root / "prometheus").mkdir(parents=True)
    (root / "prometheus" / "alerts.yml").write_text(yaml.safe_dump(alerts), encoding="utf-8")
    if rules is not None:
        (root / "prometheus" / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")


def test_generator_copes_with_awkward_rule_text_and_is_deterministic(tmp_path: Path) -> None:
    awkward = {
        "groups": [
            {
                "name": "awkward",
                "interval": "1m",
                "rules": [
                    {
                        "alert": "Awkward",
                        "expr": 'sum by (job) (up{job=~".*: #x"})  \n  > 0\n\ttrailing tab\t\n',
                        "for": "5m",
                        "labels": {"severity": "warning", "empty": "", "number_like": "010"},
                        "annotations": {
                            "description": "{{ $labels.job }}: 'quotes' \"double\" # not a comment " * 4,
                            "unicode": "sauvegarde échouée — ✓",
                            "summary": "- leading dash",
                        },
                    },
                    {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                ],
            }
        ]
    }
    _write_rule_files(tmp_path, awkward, rules=None)
    generator = _generator()
    first: str = generator.render(tmp_path)
    assert first == generator.render(tmp_path)
    assert yaml.safe_load(first)["spec"]["groups"] == awkward["groups"]
    assert "prometheus/rules.yml" not in first.split("apiVersion", 1)[0], "the header names a missing file"


def test_generator_rejects_what_the_operator_would(tmp_path: Path) -> None:
    group = {"name": "same", "rules": [{"record": "a:b", "expr": "1"}]}
    _write_rule_files(tmp_path / "dup", {"groups": [group]}, rules={"groups": [group]})
    generator = _generator()
    with pytest.raises(generator.RuleFileError, match="unique"):
        generator.render(tmp_path / "dup")
    _write_rule_files(tmp_path / "empty", {"groups": [{"name": "x", "rules": []}]}, rules=None)
    with pytest.raises(generator.RuleFileError, match="no rules"):
        generator.render(tmp_path / "empty")
    _write_rule_files(tmp_path / "flat", ["not", "a", "rule", "file"], rules=None)
    with pytest.raises(generator.RuleFileError, match="groups"):
        generator.render(tmp_path / "flat")


def test_durations_in_the_operator_format() -> None:
    # The pattern above is the operator's; make sure it is not vacuous.
    assert re.match(_DURATION, "1h30m")
    assert not re.match(_DURATION, "5 minutes")


def test_readme_says_how_the_image_is_built_and_pushed() -> None:
    """No image is published: the directory's README and the kustomization show the build and push."""
    readme = (KUBERNETES_DIR / "README.md").read_text(encoding="utf-8")
    kustomization = (KUBERNETES_DIR / "kustomization.yaml").read_text(encoding="utf-8")
    image = _container()["image"]
    for where, text in (("README.md", readme), ("kustomization.yaml", kustomization)):
        built = re.findall(r"docker build -t (\S+) \.", text)
        pushed = re.findall(r"docker push (\S+)", text)
        assert built, f"{where}: no `docker build -t <image> .`"
        assert built == pushed, f"{where}: push what was built"
        for reference in built:
            assert reference.endswith("/" + image), f"{where}: {reference} is not {image} in a registry"
    (edit,) = re.findall(r"kustomize edit set image (\S+)=(\S+)", readme)
    assert edit[0] == image.partition(":")[0]
    assert edit[1] == built[0]

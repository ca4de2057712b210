"""The optional webhook, as deployed: the kustomize component deploy/kubernetes/webhook/ (applied here as
kustomize applies its RFC 6902 patch, then validated strictly) and the README's `docker run` with the
webhook. Both must expose the webhook's port alone, keep /metrics private and mount the secret read-only."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load_settings
from tests.deploy import KUBERNETES_DIR, REPO_ROOT
from tests.deploy.test_dockerfile import _docker_run_line, _parse_docker_run
from tests.deploy.test_kubernetes import (
    KUBERNETES_VERSIONS,
    _container,
    _deployment,
    _one,
    _pod_spec,
    _require_module,
)

COMPONENT = KUBERNETES_DIR / "webhook"
#: In the component's directory but not its resources: the patch is applied, the Secret is an example.
NOT_RESOURCES = {"kustomization.yaml", "deployment-patch.yaml", "secret.yaml"}


def _load(name: str) -> list[dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all((COMPONENT / name).read_text(encoding="utf-8")) if doc]
    assert documents, f"webhook/{name} holds no object"
    return documents


def _component() -> dict[str, Any]:
    (document,) = _load("kustomization.yaml")
    return document


def _apply_json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``add`` operations of RFC 6902 (all the component uses), as kustomize applies them."""
    patched = copy.deepcopy(document)
    for operation in operations:
        assert operation["op"] == "add", "the component only appends: nothing of the base is replaced"
        *parents, last = operation["path"].lstrip("/").split("/")
        node: Any = patched
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if last == "-":
            assert isinstance(node, list), operation["path"]
            node.append(copy.deepcopy(operation["value"]))
        else:
            assert isinstance(node, dict), operation["path"]
            node[last] = copy.deepcopy(operation["value"])
    return patched


def _patched_deployment() -> dict[str, Any]:
    (patch,) = _component()["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": _deployment()["metadata"]["name"]}
    operations = yaml.safe_load((COMPONENT / patch["path"]).read_text(encoding="utf-8"))
    return _apply_json_patch(_deployment(), operations)


def _webhook_service() -> dict[str, Any]:
    (service,) = _load("service.yaml")
    assert service["kind"] == "Service"
    return service


def test_the_component_lists_its_resources_and_leaves_out_the_example_secret() -> None:
    component = _component()
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert component["kind"] == "Component"
    on_disk = {path.name for path in COMPONENT.glob("*.yaml")}
    assert set(component["resources"]) == on_disk - NOT_RESOURCES
    # Off by default: the base does not pull the component in (the webhook needs a Secret first).
    base = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "webhook" not in str(base.get("resources", [])) + str(base.get("components", []))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_patched_deployment_and_the_webhook_objects_pass_kubernetes_validate(version: str) -> None:
    kubernetes_validate = _require_module("kubernetes_validate")
    for document in (_patched_deployment(), _webhook_service(), *_load("secret.yaml")):
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{document['kind']}/{document['metadata']['name']} at {path}: {error.message}")


def test_the_webhook_port_alone_is_on_its_own_service() -> None:
    deployment = _patched_deployment()
    container = _container(deployment)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert set(ports) == {"http", "webhook"}
    assert ports["webhook"] != ports["http"]
    service = _webhook_service()
    (port,) = service["spec"]["ports"]  # only the webhook's: /metrics is not reachable through it
    assert port["targetPort"] == "webhook"
    assert port["port"] == ports["webhook"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the webhook Service selects no pod"
    # The ServiceMonitor must not pick up the webhook Service (it has no metrics port).
    monitor = _one("servicemonitor.yaml", "ServiceMonitor")
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["name"] != _one("service.yaml", "Service")["metadata"]["name"]


def test_the_patched_arguments_start_with_the_webhook_on_its_port(tmp_path: Path) -> None:
    """The patched args, with the mounted files in a temp dir, are a configuration the exporter accepts,
    with the webhook on the port the Service targets."""
    deployment = _patched_deployment()
    container = _container(deployment)
    (secret_flag,) = [a for a in container["args"] if a.startswith("--webhook.secret-file=")]
    secret_path = secret_flag.partition("=")[2]
    (token_flag,) = [a for a in container["args"] if a.startswith("--northflank.token-file=")]
    (storage_flag,) = [a for a in container["args"] if a.startswith("--storage.path=")]
    (tmp_path / "secret").write_text("whsec-kubernetes-test\n")
    (tmp_path / "token").write_text("nf-kubernetes-test-token\n")
    (tmp_path / "state").mkdir()
    replaced = {
        secret_path: str(tmp_path / "secret"),
        token_flag.partition("=")[2]: str(tmp_path / "token"),
        storage_flag.partition("=")[2]: str(tmp_path / "state"),
    }
    arguments = [
        arg.split("=", 1)[0] + "=" + replaced.get(arg.partition("=")[2], arg.partition("=")[2])
        for arg in container["args"]
    ]
    settings = load_settings(arguments, {})
    assert settings.webhook_listen_address is not None
    assert settings.webhook_listen_address.host in ("", "0.0.0.0")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert settings.webhook_listen_address.port == ports["webhook"]
    assert settings.listen_address.port == ports["http"]
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.matches("whsec-kubernetes-test")

    # The secret file comes read-only from the example Secret's key, not world-readable.
    volumes = {volume["name"]: volume for volume in _pod_spec(deployment)["volumes"]}
    (mount,) = [
        m for m in container["volumeMounts"] if secret_path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mount["readOnly"] is True
    secret_volume = volumes[mount["name"]]["secret"]
    assert secret_volume["defaultMode"] & 0o007 == 0
    (item,) = [
        i for i in secret_volume["items"] if f"{mount['mountPath'].rstrip('/')}/{i['path']}" == secret_path
    ]
    (secret,) = _load("secret.yaml")
    assert secret["metadata"]["name"] == secret_volume["secretName"]
    assert "REPLACE" in secret["stringData"][item["key"]]
    assert "EXAMPLE" in (COMPONENT / "secret.yaml").read_text(encoding="utf-8")
    # Not the token's Secret: rotating one never touches the other.
    token_volume = next(v for v in volumes.values() if v.get("secret") and v is not volumes[mount["name"]])
    assert token_volume["secret"]["secretName"] != secret_volume["secretName"]


def _readme_webhook_docker_run() -> list[str]:
    section = (
        (REPO_ROOT / "README.md")
        .read_text(encoding="utf-8")
        .split("\n## Webhook push from Northflank\n", 1)[1]
    )
    section = section.split("\n## ", 1)[0]
    return _docker_run_line(section.splitlines(), "README, Webhook push from Northflank")


def test_the_documented_docker_run_publishes_the_webhook_alone_and_mounts_its_secret(tmp_path: Path) -> None:
    run = _parse_docker_run(_readme_webhook_docker_run())
    published = [value or "" for option, value in run.options if option == "-p"]
    public = [p for p in published if not p.startswith(("127.0.0.1:", "[::1]:"))]
    volumes = [value or "" for option, value in run.options if option == "-v"]
    (secret_volume,) = [v for v in volumes if "webhook-secret" in v]
    host, container_path, mode = secret_volume.split(":")
    assert mode == "ro"
    assert host.endswith("/webhook-secret")
    assert f"--webhook.secret-file={container_path}" in run.arguments
    assert "--read-only" in dict(run.options)

    # The arguments, with the mounts in a temp dir, are a configuration the exporter accepts.
    (tmp_path / "secret").write_text("whsec-docker-test\n")
    (tmp_path / "token").write_text("nf-docker-test-token\n")
    (tmp_path / "state").mkdir()
    mounts = {volume.split(":")[1]: volume.split(":")[0].rsplit("/", 1)[1] for volume in volumes}
    names = {"webhook-secret": "secret", "nf-token": "token", "nf-state": "state"}
    arguments = []
    for argument in run.arguments:
        flag, _, value = argument.partition("=")
        arguments.append(f"{flag}={tmp_path / names[mounts[value]]}" if value in mounts else argument)
    settings = load_settings(arguments, {})
    assert settings.webhook_listen_address is not None
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.matches("whsec-docker-test")
    # Only the webhook's port is published on every interface; /metrics on the loopback only.
    assert public == [f"{settings.webhook_listen_address.port}:{settings.webhook_listen_address.port}"]
    assert f"127.0.0.1:{settings.listen_address.port}:{settings.listen_address.port}" in published

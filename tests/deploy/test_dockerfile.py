"""The container image, checked without a Docker engine.

hadolint lints the Dockerfile; the structure of the final stage is checked instruction by instruction; and
the builder stage is *replayed*: its ENV, ARG, WORKDIR, COPY and RUN instructions run on this machine
against a copy of the build context (the tree less .dockerignore), with the image's absolute paths
(/src, /opt/venv) moved under a temporary directory and the machine's Python standing in for the base
image's. The resulting virtual environment is what the final stage copies, so running its entry point
(and the HEALTHCHECK command against it) shows that the image's install steps produce a working exporter.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.config import ListenAddress
from exporter.flags import DEFAULT_LISTEN_ADDRESS
from tests.deploy import (
    DOCKERFILE,
    REPO_ROOT,
    Instruction,
    Stage,
    build_context,
    dockerignore_rules,
    env_assignments,
    expand,
    is_ignored,
    parse_dockerfile,
    project_version,
    require_tool,
)
from tests.support import free_port

ENTRYPOINT = "northflank-backup-exporter"
OCI_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.source",
)
REPLAY_TIMEOUT = 300


def _stages() -> tuple[Stage, Stage]:
    stages = parse_dockerfile()
    assert len(stages) >= 2, "the Dockerfile should be multi-stage: a builder and a final stage"
    builder = next((stage for stage in stages if stage.name == "builder"), None)
    assert builder is not None, "no stage is named 'builder' (FROM ... AS builder)"
    return builder, stages[-1]


def _single(stage: Stage, keyword: str) -> Instruction:
    found = stage.all(keyword)
    assert len(found) == 1, f"the final stage should have exactly one {keyword}, has {len(found)}"
    return found[0]


def _copied_from_builder(final: Stage) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for copy in final.all("COPY"):
        flags, rest = copy.flags()
        assert flags.get("from") == "builder", (
            f"line {copy.line}: the final stage copies only from the builder"
        )
        *sources, destination = shlex.split(rest)
        pairs.extend((source, destination) for source in sources)
    return pairs


# --- static checks ----------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    hadolint = require_tool("hadolint")
    labels = [
        "org.opencontainers.image.title:text",
        "org.opencontainers.image.source:url",
        "org.opencontainers.image.documentation:url",
        "org.opencontainers.image.licenses:spdx",
    ]
    command = [hadolint, "--no-color", "--format", "json"]
    for label in labels:
        command += ["--require-label", label]
    result = subprocess.run(
        [*command, str(DOCKERFILE)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False
    )
    findings = json.loads(result.stdout or "[]")
    report = "\n".join(f"Dockerfile:{item['line']} {item['code']} {item['message']}" for item in findings)
    assert findings == [], f"hadolint:\n{report}"
    assert result.returncode == 0, result.stderr


def test_base_image_is_pinned_slim_python_and_the_same_in_both_stages() -> None:
    builder, final = _stages()
    assert builder.image == final.image, "the venv links to the base's interpreter: both stages need one base"
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?", final.image)
    assert match, f"{final.image}: pin a full version tag of a slim Python image (python:X.Y.Z-slim-<debian>)"
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(part) for part in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())  # type: ignore[union-attr]
    assert (int(match.group(1)), int(match.group(2))) >= minimum, f"{final.image} is older than {requires}"


def test_final_stage_copies_only_the_builders_virtual_environment() -> None:
    _, final = _stages()
    pairs = _copied_from_builder(final)
    assert len(pairs) == 1, f"the final stage should copy one thing, the venv: {pairs}"
    source, destination = pairs[0]
    assert source == destination, "the venv must keep its path: its scripts' shebangs point into it"
    env = dict(pair for item in final.all("ENV") for pair in env_assignments(item))
    assert env.get("PATH", "").startswith(f"{source}/bin:"), "the venv's bin/ should come first on PATH"
    # The only RUN of the final stage creates the user: nothing is installed there.
    runs = final.all("RUN")
    assert len(runs) <= 1
    assert all("useradd" in run.arguments and "install" not in run.arguments for run in runs)


def test_final_stage_runs_as_a_fixed_numeric_non_root_user() -> None:
    _, final = _stages()
    user = _single(final, "USER").arguments
    match = re.fullmatch(r"(\d+):(\d+)", user)
    assert match, f"USER {user}: use numeric UID:GID so Kubernetes' runAsNonRoot can verify it"
    uid, gid = match.groups()
    assert uid != "0"
    assert gid != "0"
    # The passwd/group entries created in the image carry the same ids.
    (run,) = final.all("RUN")
    assert f"--uid {uid}" in run.arguments
    assert f"--gid {gid}" in run.arguments
    assert final.instructions.index(_single(final, "USER")) > max(
        final.instructions.index(item) for item in final.all("RUN") + final.all("COPY")
    ), "USER should come after every RUN and COPY"


def test_entrypoint_is_exec_form_and_the_exposed_port_is_the_default_one() -> None:
    _, final = _stages()
    entrypoint = _single(final, "ENTRYPOINT").json_form()
    assert entrypoint == [ENTRYPOINT], "ENTRYPOINT should be the exec form of the console script"
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert ENTRYPOINT in scripts
    assert not final.all("CMD"), "no CMD: arguments given to `docker run` are the exporter's flags"
    exposed = _single(final, "EXPOSE").arguments.split()
    assert exposed == [str(ListenAddress.parse(DEFAULT_LISTEN_ADDRESS).port)]


def _duration_seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, text
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _healthcheck() -> tuple[dict[str, str], list[str]]:
    _, final = _stages()
    flags, rest = _single(final, "HEALTHCHECK").flags()
    assert rest.startswith("CMD "), "HEALTHCHECK CMD ... (not NONE)"
    command = Instruction("CMD", rest.removeprefix("CMD "), 0).json_form()
    assert command is not None, "HEALTHCHECK CMD should use the exec form (no shell in between)"
    return flags, command


def test_healthcheck_probes_healthy_endpoint_with_python_and_sane_timings() -> None:
    _, final = _stages()
    flags, command = _healthcheck()
    assert command[0] == "python", "slim images have no curl: the check should use Python"
    port = _single(final, "EXPOSE").arguments.split()[0]
    assert f"http://127.0.0.1:{port}/-/healthy" in " ".join(command)
    interval, timeout = _duration_seconds(flags["interval"]), _duration_seconds(flags["timeout"])
    assert 10 <= interval <= 300
    assert timeout < interval
    assert "start-period" in flags
    assert int(flags["retries"]) >= 2
    inner = re.search(r"timeout=(\d+(?:\.\d+)?)", " ".join(command))
    assert inner, "give the request its own timeout (urlopen(..., timeout=N))"
    assert float(inner.group(1)) < timeout, "the request's own timeout should end before Docker's"


def test_final_stage_environment_and_labels() -> None:
    _, final = _stages()
    env = dict(pair for item in final.all("ENV") for pair in env_assignments(item))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    labels = dict(pair for item in final.all("LABEL") for pair in env_assignments(item))
    missing = [name for name in OCI_LABELS if name not in labels]
    assert not missing, f"missing OCI labels: {missing}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    args = dict(pair for item in final.all("ARG") for pair in env_assignments(item))
    assert args.get("VERSION") == project_version(), (
        f"ARG VERSION={args.get('VERSION')} in the Dockerfile, but pyproject.toml says {project_version()}"
    )


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    rules = dockerignore_rules()
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".hypothesis/examples/x",
        "tests/unit/test_config.py",
        "bench/results.json",
        "exporter/__pycache__/cli.cpython-312.pyc",
        "northflank_backup_exporter.egg-info/PKG-INFO",
        "build/lib/exporter/cli.py",
        "dist/x.whl",
        "token",
        ".env",
    ):
        assert is_ignored(path, rules), f"{path} should not be sent to the Docker daemon"
    builder, _ = _stages()
    for copy in builder.all("COPY"):
        *sources, _ = shlex.split(copy.arguments)
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file"
            assert not is_ignored(source, rules), f"COPY {source}: left out of the context by .dockerignore"
    assert not is_ignored("exporter/simulator/__init__.py", rules)


# --- the replay -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replay:
    root: Path  # stands for the image's "/"
    venv: Path  # the virtual environment the final stage copies
    final_path: str  # the final stage's PATH, rebased
    seconds: float


def _rebaser(prefixes: set[str], root: Path) -> Callable[[str], str]:
    patterns = [
        (re.compile(r"(?<![\w./-])" + re.escape(prefix) + r"(?![\w.-])"), str(root) + prefix)
        for prefix in sorted(prefixes, key=len, reverse=True)
    ]

    def rebase(text: str) -> str:
        for pattern, replacement in patterns:
            text = pattern.sub(replacement.replace("\\", "\\\\"), text)
        return text

    return rebase


def _host_python_dir(directory: Path) -> Path:
    """A bin/ with ``python`` and ``python3``: the interpreter under the running venv, as the base's."""
    base = shutil.which("python3", path=str(Path(sys.base_prefix) / "bin")) or sys.executable
    directory.mkdir(parents=True)
    for name in ("python", "python3"):
        (directory / name).symlink_to(os.path.realpath(base))
    return directory


def _replay(tmp: Path) -> Replay:
    builder, final = _stages()
    context, root = tmp / "context", tmp / "root"
    build_context(context)
    venv_image_path = _copied_from_builder(final)[0][0]
    prefixes = {venv_image_path}
    for item in builder.all("WORKDIR") + builder.all("COPY"):
        for word in shlex.split(item.arguments):
            if word.startswith("/"):
                prefixes.add(word.rstrip("/"))
    rebase = _rebaser(prefixes, root)
    # A path the rebase missed would be created on this machine itself: notice it.
    existing_before = {prefix for prefix in prefixes if Path(prefix).exists()}

    image_path = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    ignored = ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")
    env = {name: value for name, value in os.environ.items() if name not in ignored}
    env["PATH"] = f"{_host_python_dir(tmp / 'host-bin')}:{image_path}"
    workdir = root
    workdir.mkdir(parents=True)
    started = time.monotonic()
    for item in builder.instructions:
        where = f"Dockerfile:{item.line} {item.keyword}"
        if item.keyword in ("ENV", "ARG"):
            for name, value in env_assignments(item):
                if item.keyword == "ARG" and not value:
                    continue
                env[name] = expand(rebase(value), env)
        elif item.keyword == "WORKDIR":
            workdir = Path(rebase(expand(item.arguments, env)))
            if not workdir.is_absolute():
                workdir = root / workdir
            workdir.mkdir(parents=True, exist_ok=True)
        elif item.keyword == "COPY":
            flags, rest = item.flags()
            assert "from" not in flags, f"{where}: the replay copies from the build context only"
            *sources, destination = item.json_form() or shlex.split(rest)
            target = Path(rebase(destination)) if destination.startswith("/") else workdir / destination
            for source in sources:
                origin = context / source
                assert origin.exists(), f"{where}: {source} is not in the build context (.dockerignore?)"
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    path = target / origin.name if destination.endswith("/") else target
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, path)
        elif item.keyword == "RUN":
            assert item.json_form() is None, f"{where}: the replay runs the shell form"
            result = subprocess.run(
                ["/bin/sh", "-c", rebase(item.arguments)],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=REPLAY_TIMEOUT,
                check=False,
            )
            assert result.returncode == 0, (
                f"{where} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        else:
            pytest.fail(f"{where}: the replay knows ENV, ARG, WORKDIR, COPY and RUN only; extend it")
    seconds = time.monotonic() - started
    leaked = {prefix for prefix in prefixes if Path(prefix).exists()} - existing_before
    assert not leaked, f"the replay wrote outside its temporary root: {sorted(leaked)}"
    final_env = {"PATH": image_path}
    for item in final.all("ENV"):
        for name, value in env_assignments(item):
            final_env[name] = expand(rebase(value), final_env)
    return Replay(
        root=root, venv=Path(rebase(venv_image_path)), final_path=final_env["PATH"], seconds=seconds
    )


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    return _replay(tmp_path_factory.mktemp("docker-replay"))


def _run(replay: Replay, *args: str) -> subprocess.CompletedProcess[str]:
    # As the container runs it: the final stage's PATH, outside the source tree (so that nothing imports
    # the checkout's exporter/ by accident).
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("NF_", "NORTHFLANK_"))}
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        cwd=replay.root,
        env={**clean, "PATH": replay.final_path},
        timeout=60,
        check=False,
    )


def _resolve(replay: Replay, name: str) -> str:
    found = shutil.which(name, path=replay.final_path)
    assert found is not None, f"{name} is not on the final stage's PATH"
    return found


def test_replayed_install_gives_a_working_entry_point(replay: Replay) -> None:
    entrypoint = _resolve(replay, ENTRYPOINT)
    assert Path(entrypoint).parent == replay.venv / "bin", f"{ENTRYPOINT} resolves outside the venv"
    print(f"replayed the builder stage in {replay.seconds:.1f}s")

    version = _run(replay, entrypoint, "--version")
    assert version.returncode == 0, version.stderr
    # "northflank-backup-exporter 0.1.0 (revision …, python …)": the version first, as Go exporters print it.
    assert version.stdout.startswith(f"{ENTRYPOINT} {project_version()} ("), version.stdout

    helped = _run(replay, entrypoint, "--help")
    assert helped.returncode == 0, helped.stderr
    for flag in (
        "--web.listen-address",
        "--northflank.token-file",
        "--demo",
        "--webhook.listen-address",
        "--webhook.secret-file",
    ):
        assert flag in helped.stdout

    imported = _run(replay, _resolve(replay, "python"), "-c", "import exporter; print(exporter.__file__)")
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).is_relative_to(replay.venv), "imported from outside the venv"

    no_token = _run(replay, entrypoint)
    assert no_token.returncode == 2
    assert "token" in no_token.stderr.lower()


def test_replayed_venv_is_lean_and_precompiled(replay: Replay) -> None:
    bin_dir = replay.venv / "bin"
    assert not (bin_dir / "pip").exists(), "pip should be uninstalled from the image's venv"
    (site_packages,) = (replay.venv / "lib").glob("python3*/site-packages")
    assert (site_packages / "exporter" / "cli.py").is_file(), "a regular install, not an editable one"
    assert list((site_packages / "exporter" / "__pycache__").glob("*.pyc")), "no byte-code compiled"
    assert not list(site_packages.glob("__editable__*"))


@pytest.fixture
def demo_exporter(replay: Replay) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [_resolve(replay, ENTRYPOINT), "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=replay.root,
        env={**os.environ, "PATH": replay.final_path},
    )
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


def test_healthcheck_command_passes_against_the_replayed_exporter_and_fails_without_it(
    replay: Replay, demo_exporter: tuple[int, subprocess.Popen[str]]
) -> None:
    flags, command = _healthcheck()
    port, proc = demo_exporter
    default_port = str(ListenAddress.parse(DEFAULT_LISTEN_ADDRESS).port)
    check = [
        _resolve(replay, command[0]),
        *(part.replace(f":{default_port}/", f":{port}/") for part in command[1:]),
    ]
    timeout = _duration_seconds(flags["timeout"])

    deadline = time.monotonic() + 20
    while (result := _run(replay, *check)).returncode != 0:
        assert proc.poll() is None, f"the exporter exited: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"healthcheck never passed: {result.stderr}"
        time.sleep(0.2)

    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    started = time.monotonic()
    stopped = _run(replay, *check)
    assert stopped.returncode != 0, "the healthcheck passed with no exporter running"
    assert time.monotonic() - started < timeout


# --- the documented `docker run` ----------------------------------------------------------------------

README = REPO_ROOT / "README.md"
#: The `docker run` options the documented command may use, and whether each takes a value.
_DOCKER_RUN_OPTIONS = {
    "-d": False,
    "--read-only": False,
    "--name": True,
    "-p": True,
    "--user": True,
    "-v": True,
}


def _docker_run_line(lines: list[str], where: str) -> list[str]:
    """The one ``docker run`` command among ``lines``, continuation lines joined, split as a shell would."""
    starts = [index for index, line in enumerate(lines) if line.strip().startswith("docker run")]
    assert len(starts) == 1, f"{where}: expected one `docker run` command, found {len(starts)}"
    command, index = "", starts[0]
    while True:
        line = lines[index].strip()
        command += line.removesuffix("\\") + " "
        if not line.endswith("\\"):
            return shlex.split(command)
        index += 1


def _documented_docker_runs() -> dict[str, list[str]]:
    header = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.removeprefix("#"))
    readme = README.read_text(encoding="utf-8").split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    return {
        "Dockerfile": _docker_run_line(header, "Dockerfile header"),
        "README": _docker_run_line(readme.splitlines(), "README, Install"),
    }


@dataclass(frozen=True, slots=True)
class DockerRun:
    options: list[tuple[str, str | None]]
    image: str
    arguments: list[str]


def _parse_docker_run(argv: list[str]) -> DockerRun:
    assert argv[:2] == ["docker", "run"]
    options: list[tuple[str, str | None]] = []
    rest = argv[2:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        assert option in _DOCKER_RUN_OPTIONS, f"{option}: unknown to this test, check and add it"
        options.append((option, rest.pop(0) if _DOCKER_RUN_OPTIONS[option] else None))
    image, *arguments = rest
    return DockerRun(options=options, image=image, arguments=arguments)


def test_documented_docker_run_passes_the_token_as_a_read_only_file() -> None:
    runs = _documented_docker_runs()
    assert runs["README"] == runs["Dockerfile"], "the README and the Dockerfile document the same command"
    run = _parse_docker_run(runs["README"])
    assert run.image == f"{ENTRYPOINT}:{project_version()}"
    flags = dict(run.options)
    assert "--read-only" in flags
    assert flags["-p"] == f"{ListenAddress.parse(DEFAULT_LISTEN_ADDRESS).port}:10150"
    # Not in the environment: `docker inspect` shows it to anyone who may talk to the Docker daemon.
    assert not [option for option, _ in run.options if option in ("-e", "--env", "--env-file")]
    token_volume, state_volume = [value or "" for option, value in run.options if option == "-v"]
    host, container, mode = token_volume.split(":")
    assert mode == "ro"
    assert host.endswith("/nf-token")
    # The state directory (--storage.path) is read-write: the exporter saves there.
    state_host, state_container = state_volume.split(":")
    assert state_host.endswith("/nf-state")
    assert run.arguments == [f"--northflank.token-file={container}", f"--storage.path={state_container}"]


def test_documented_docker_run_arguments_start_the_replayed_exporter(replay: Replay, tmp_path: Path) -> None:
    """The flags after the image name, given to the replayed entry point with the mount in a temp dir."""
    run = _parse_docker_run(_documented_docker_runs()["README"])
    token_volume, state_volume = [value or "" for option, value in run.options if option == "-v"]
    container, state_container = token_volume.split(":")[1], state_volume.split(":")[1]
    token = "nf-docker-run-token-5b1e"
    token_file = tmp_path / "nf-token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o400)
    state_dir = tmp_path / "nf-state"
    state_dir.mkdir(mode=0o700)
    arguments = [
        argument.replace(container, str(token_file)).replace(state_container, str(state_dir))
        for argument in run.arguments
    ]
    port, closed = free_port(), free_port()
    proc = subprocess.Popen(
        [
            _resolve(replay, ENTRYPOINT),
            *arguments,
            f"--web.listen-address=127.0.0.1:{port}",
            # Nothing listens there: the exporter serves (and stays healthy) without the API.
            f"--northflank.api-url=http://127.0.0.1:{closed}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=replay.root,
        env={name: value for name, value in os.environ.items() if not name.startswith(("NF_", "NORTHFLANK_"))}
        | {"PATH": replay.final_path},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"the exporter exited: {proc.communicate()[1]}"
            failure = ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=4) as answer:
                    if answer.status == 200:
                        break
            except OSError as error:
                failure = str(error)
            assert time.monotonic() < deadline, f"/-/healthy never answered: {failure}"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
    assert token not in stdout + stderr

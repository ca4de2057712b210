"""The wheel and sdist a user installs: built with ``python -m build``, installed into a fresh venv.

The build runs without build isolation (the dev extras carry ``build`` and a PEP 639 setuptools), on a copy
of the files a release is built from, so it needs no network and writes nothing into the checkout. The
fresh venv gets the wheel alone (``--no-deps``); the runtime dependencies come from the dev venv's
site-packages through a ``.pth`` path line, which (unlike ``site.addsitedir``) does not run the dev venv's
own ``.pth`` files, so the checkout's editable install stays out of reach.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "northflank-backup-exporter"
PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
VERSION = str(PROJECT["version"])
DIST_NAME = "northflank_backup_exporter"
#: What a release is built from: pyproject.toml names README.md (readme) and LICENSE (license-files).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "exporter")
TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class Built:
    source: Path
    wheel: Path
    sdist: Path
    output: str


@dataclass(frozen=True, slots=True)
class Installed:
    venv: Path
    script: Path


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _package_files(root: Path) -> set[str]:
    """The package's files, relative to ``root``, without byte-code (which no distribution carries)."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / "exporter").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    }


def _clean_env() -> dict[str, str]:
    # No PYTHONPATH or VIRTUAL_ENV of the caller: the fresh venv must stand on its own.
    ignored = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {name: value for name, value in os.environ.items() if name not in ignored}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("distribution")
    source, dist = root / "source", root / "dist"
    source.mkdir()
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        else:
            shutil.copy2(origin, source / name)
    result = _run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        cwd=root,
        env=_clean_env(),
    )
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return Built(source=source, wheel=wheel, sdist=sdist, output=result.stdout + result.stderr)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    # --without-pip: ensurepip would take longer than everything else; the dev venv's pip installs into
    # the new interpreter with --python.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv.parent
    ).stdout.strip()
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "dev-dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(dependencies)), encoding="utf-8"
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            str(built.wheel),
        ],
        cwd=venv.parent,
        env=_clean_env(),
    )
    return Installed(venv=venv, script=venv / "bin" / SCRIPT)


def _metadata(built: Built) -> Message:
    with zipfile.ZipFile(built.wheel) as archive:
        text = archive.read(f"{DIST_NAME}-{VERSION}.dist-info/METADATA").decode("utf-8")
    return email.parser.Parser(policy=email.policy.compat32).parsestr(text)


def test_build_prints_no_warning(built: Built) -> None:
    # A license given as a TOML table (or a license classifier) makes setuptools print a deprecation
    # warning on every build and install.
    # (Byte-compiling is off when PYTHONDONTWRITEBYTECODE is set, and setuptools says so: not a problem.)
    warnings = [
        line
        for line in built.output.splitlines()
        if ("warning" in line.lower() or "deprecat" in line.lower()) and "byte-compiling" not in line
    ]
    assert warnings == [], built.output


def test_wheel_carries_the_license_metadata_and_the_whole_package(built: Built) -> None:
    metadata = _metadata(built)
    assert metadata["Name"] == "northflank-backup-exporter"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier") or []
    assert "Topic :: System :: Monitoring" in classifiers
    # PEP 639: a License-Expression excludes license classifiers.
    assert not [c for c in classifiers if c.startswith("License ::")]
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert metadata["Requires-Python"] == PROJECT["requires-python"]

    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
        license_text = archive.read(f"{DIST_NAME}-{VERSION}.dist-info/licenses/LICENSE")
        entry_points = archive.read(f"{DIST_NAME}-{VERSION}.dist-info/entry_points.txt").decode()
    assert license_text == (REPO_ROOT / "LICENSE").read_bytes()
    assert f"{SCRIPT} = exporter.cli:main" in entry_points
    # Every file of the package (templates and data included), and nothing of the tests.
    assert _package_files(built.source) <= names
    assert not [name for name in names if name.startswith(("tests/", "bench/"))]


def test_sdist_carries_the_license_and_the_package(built: Built) -> None:
    prefix = f"{DIST_NAME}-{VERSION}/"
    with tarfile.open(built.sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
        member = archive.extractfile(prefix + "LICENSE")
        assert member is not None
        license_text = member.read()
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert license_text == (REPO_ROOT / "LICENSE").read_bytes()
    assert _package_files(built.source) <= names


def test_license_file_is_the_apache_license() -> None:
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_console_script_runs_from_the_wheel_in_a_fresh_venv(installed: Installed, tmp_path: Path) -> None:
    env = _clean_env()
    assert installed.script.is_file()
    # The script's interpreter is the fresh venv's, and it imports the installed copy of the package.
    assert installed.script.read_text(encoding="utf-8").splitlines()[0] == f"#!{installed.venv}/bin/python"
    where = _run(
        [str(installed.venv / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        cwd=tmp_path,
        env=env,
    )
    module = Path(where.stdout.strip())
    assert module.is_relative_to(installed.venv), module
    assert not module.is_relative_to(REPO_ROOT)

    version = _run([str(installed.script), "--version"], cwd=tmp_path, env=env)
    assert version.stdout.startswith(f"{SCRIPT} {VERSION}"), (version.stdout, version.stderr)

    helped = _run([str(installed.script), "--help"], cwd=tmp_path, env=env)
    for flag in ("--northflank.token-file", "--web.listen-address", "--demo"):
        assert flag in helped.stdout

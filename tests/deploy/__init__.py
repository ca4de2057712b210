"""Tests of the deployment files: the Dockerfile, .dockerignore and deploy/kubernetes/.

Helpers shared by both test modules live here: a small Dockerfile parser (enough for this project's
Dockerfile: stages, line continuations, comments, JSON and shell forms), the .dockerignore rules as Docker
applies them, and the project's version.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"


def project_version() -> str:
    version: str = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    return version


def require_tool(name: str) -> str:
    """A dev tool of the venv (next to the running interpreter) or on PATH; skip if missing, fail under CI."""
    beside = Path(os.path.dirname(os.path.abspath(sys.executable))) / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} is not installed (pip install -e '.[dev]' installs it into the venv)"
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; CI=true, so this is an error")
    pytest.skip(message)


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    arguments: str  # the rest of the logical line, continuations joined
    line: int  # first physical line, 1-based

    def json_form(self) -> list[str] | None:
        """The arguments as a JSON array (exec form), or None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list), self
        assert all(isinstance(item, str) for item in value), self
        return value

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading ``--name=value`` flags (as COPY and HEALTHCHECK take them) and the rest."""
        rest = self.arguments.strip()
        found: dict[str, str] = {}
        while match := re.match(r"--([a-z-]+)=(\S+)\s+", rest):
            found[match.group(1)] = match.group(2)
            rest = rest[match.end() :]
        return found, rest


@dataclass(slots=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # comments (also inside continuations, as Docker drops them) and blank lines
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        lines.append((start, " ".join(part for part in current if part)))
        current = []
    assert not current, "the Dockerfile ends inside a line continuation"
    return lines


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    """The stages of a Dockerfile, in order; instructions before the first FROM (ARG) are ignored."""
    stages: list[Stage] = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            words = [word for word in words if not word.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip(), number))
    return stages


def env_assignments(instruction: Instruction) -> list[tuple[str, str]]:
    """``ENV a=1 b=2`` (or the legacy ``ENV a 1``) as (name, unexpanded value) pairs."""
    words = shlex.split(instruction.arguments)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(name, value) for name, _, value in (word.partition("=") for word in words)]


def expand(value: str, environ: dict[str, str]) -> str:
    """Docker's substitution of ``$NAME`` and ``${NAME}`` in ENV values and the like."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))", lambda match: environ.get(match.group(1) or match.group(2), ""), value
    )


# --- .dockerignore -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    text: str
    pattern: re.Pattern[str]
    exclusion: bool  # a "!" rule: puts matching paths back


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    # Go's filepath.Match plus "**" (any number of directories), as Docker's patternmatcher does.
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):
                index += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", index)
            out.append("[" + pattern[index + 1 : end].replace("!", "^", 1) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[IgnoreRule]:
    rules = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        text = os.path.normpath(line.removeprefix("!").strip()).strip("/")
        rules.append(IgnoreRule(text, _glob_to_regex(text), exclusion))
    return rules


def is_ignored(relative: str, rules: list[IgnoreRule]) -> bool:
    """Whether Docker leaves ``relative`` (a path in the build context) out: the last matching rule wins,
    and a rule matches a path when it matches the path or one of its parent directories."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for rule in rules:
        if any(rule.pattern.match(candidate) for candidate in candidates):
            ignored = not rule.exclusion
    return ignored


def _prunable(relative_dir: str, rules: list[IgnoreRule]) -> bool:
    """An ignored directory under which no "!" rule can put anything back (so the walk may skip it)."""
    if not is_ignored(relative_dir, rules):
        return False
    return not any(
        rule.exclusion and (rule.text.startswith(relative_dir + "/") or rule.text.startswith("**"))
        for rule in rules
    )


def build_context(destination: Path, root: Path = REPO_ROOT) -> list[str]:
    """Copy what ``docker build`` would send (the tree less .dockerignore) to ``destination``."""
    rules = dockerignore_rules()
    copied: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if not _prunable(os.path.normpath(os.path.join(relative_dir, name)), rules)
        )
        for filename in sorted(filenames):
            relative = os.path.normpath(os.path.join(relative_dir, filename))
            if is_ignored(relative, rules):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(directory, filename), target)
            copied.append(relative)
    return copied

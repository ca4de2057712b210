"""The modules of ``exporter/`` import each other without a cycle, and each imports on its own.

A cycle works until someone imports the modules in another order (then a name is missing from a
half-initialised module), and it ties two modules into one that cannot be understood, changed or tested
apart. So it is checked on the graph itself, read with ``ast``: every import at module level, those under
``if TYPE_CHECKING:`` included (they never run, but a cycle through them is the same knot: the one
between ``northflank/client.py`` and ``northflank/metrics.py`` was one). Imports inside functions run
later, when every module is complete, and are left out.
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import exporter

ROOT = Path(exporter.__file__).parent
#: Running these starts a program: they are entry points, imported by nobody.
ENTRY_POINTS = frozenset({"__main__"})


def module_name(path: Path) -> str:
    parts = ("exporter", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    module_name(path): path
    for path in sorted(ROOT.rglob("*.py"))
    if path.stem not in ENTRY_POINTS and "__pycache__" not in path.parts
}


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements at module level (into if/try/with blocks, not into defs)."""
    for statement in body:
        yield statement
        if isinstance(statement, ast.If):
            yield from _module_statements(statement.body)
            yield from _module_statements(statement.orelse)
        elif isinstance(statement, ast.Try):
            for block in (statement.body, statement.orelse, statement.finalbody):
                yield from _module_statements(block)
            for handler in statement.handlers:
                yield from _module_statements(handler.body)
        elif isinstance(statement, ast.With):
            yield from _module_statements(statement.body)


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(name: str, source: str | None = None) -> set[str]:
    """The ``exporter`` modules that module ``name`` imports directly (``source``: its text, if not the
    file's)."""
    text = MODULES[name].read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(MODULES[name]))
    found: set[str] = set()
    for statement in _module_statements(tree.body):
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            base = statement.module or ""
            if statement.level:
                package = _package_of(name).split(".")
                anchor = package[: len(package) - (statement.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # An ancestor package of the importer is being imported already: only a name it defines
            # (not a submodule, which is loaded on its own) needs it complete.
            if not name.startswith(f"{base}."):
                found.add(base)
            for alias in statement.names:
                submodule = f"{base}.{alias.name}"  # ``from exporter.northflank import routes``
                found.add(submodule if submodule in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name) for name in MODULES}


def test_the_graph_sees_the_imports_it_must() -> None:
    """The reader of imports finds what is there: else an empty graph would pass for an acyclic one."""
    graph = import_graph()
    assert "exporter.northflank.client" in graph["exporter.app"]
    assert "exporter.northflank.routes" in graph["exporter.northflank.client"]  # from ... import routes
    assert "exporter.planner.policy" in graph["exporter.planner.loop"]
    assert "exporter.config" in graph["exporter.planner.scheduler"]  # under TYPE_CHECKING
    assert "exporter.simulator.protocols" in graph["exporter.simulator.routes"]  # from .protocols import
    assert sum(len(edges) for edges in graph.values()) > 2 * len(graph)


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = import_graph()
    graph["exporter.northflank.routes"] = {*graph["exporter.northflank.routes"], "exporter.northflank.client"}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
    # The cycle of issue 11, through a TYPE_CHECKING block, as the reader sees it in a file.
    source = MODULES["exporter.northflank.metrics"].read_text(encoding="utf-8")
    typed = source + "\nif TYPE_CHECKING:\n    from exporter.northflank.client import NorthflankClient\n"
    assert "exporter.northflank.client" in imported_modules("exporter.northflank.metrics", typed)


def test_no_module_of_the_exporter_is_in_an_import_cycle() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        pytest.fail(f"import cycle: {cycle}")


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """All of them, in one interpreter that has imported nothing of the exporter yet (this process has).
    With the graph acyclic, the order they are imported in cannot matter."""
    script = (
        "import importlib, sys, traceback\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        print(f'{name}: {type(error).__name__}: {error}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *sorted(MODULES)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
    assert len(MODULES) > 50, sorted(MODULES)

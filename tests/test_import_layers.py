"""Import layers (issue 16, "no import circles"): the DDP library is below the trainer that uses it and the
command line that starts it; the Ray backend and the local executors share a lower module
(``kdfair.sweep.worker``). Imports inside functions count: a lazy import is still a circle."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import kdfair

SRC = Path(kdfair.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _graph() -> dict[str, set[str]]:
    """kdfair module -> the kdfair modules it imports anywhere in its body (not under TYPE_CHECKING)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = {
            id(node)
            for guard in ast.walk(tree)
            if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
            for node in ast.walk(guard)
        }
        imported: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, target: str) -> bool:
    seen, stack = set(), [start]
    while stack:
        module = stack.pop()
        if module == target:
            return True
        if module not in seen:
            seen.add(module)
            stack.extend(graph[module])
    return False


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("kdfair.train.ddp", "kdfair.train.runner"),
        ("kdfair.train.ddp", "kdfair.train.ddp_cli"),
        ("kdfair.train.runner", "kdfair.train.ddp_cli"),
        ("kdfair.sweep.ray_backend", "kdfair.sweep.executors"),
        ("kdfair.sweep.worker", "kdfair.sweep.executors"),
        ("kdfair.sweep.worker", "kdfair.sweep.ray_backend"),
    ],
)
def test_lower_module_never_imports_the_upper(lower: str, upper: str) -> None:
    graph = _graph()
    assert _reaches(graph, upper, lower)  # the upper module does use the lower one
    assert not _reaches(graph, lower, upper), f"{lower} imports {upper}: an import circle"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_import_graph_has_no_circle() -> None:
    """Every kdfair module, imports anywhere in its body counted (a package's ``__init__`` is a module)."""
    assert _cycles(_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]

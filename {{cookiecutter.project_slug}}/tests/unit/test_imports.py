"""The package's import graph: every module's imports point down, so each can be read without the ones above it."""

from __future__ import annotations

import ast
from pathlib import Path

import {{ cookiecutter.package_name }}

PACKAGE = Path({{ cookiecutter.package_name }}.__file__).parent
NAME = PACKAGE.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module of the package that ``path`` imports, at its top, under TYPE_CHECKING or inside a function."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name == NAME or name.startswith(f"{NAME}.")}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations/versions" not in str(path)}
    edges = {name: {target for target in imports(path) if target in modules} - {name} for name, path in modules.items()}
    # A package's __init__ runs before any of its modules: an edge to a module is an edge to its packages too, but
    # for the packages the importing module is inside (their __init__ is already running).
    for source, targets in edges.items():
        for target in list(targets):
            parent = target.rpartition(".")[0]
            while parent and parent != NAME:
                targets.add(parent)
                parent = parent.rpartition(".")[0]
        edges[source] = {target for target in targets if target != source and not source.startswith(f"{target}.")}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_circle() -> None:
    """No module imports, directly or not, a module that imports it back, TYPE_CHECKING and function-level imports
    included."""
    found = cycle(graph())
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_settings_and_resilience_stand_alone() -> None:
    """settings imports nothing of the service's; resilience imports only resilience."""
    edges = graph()
    assert edges[f"{NAME}.settings"] == set()
    resilience = {name: targets for name, targets in edges.items() if name.startswith(f"{NAME}.resilience")}
    reached = {target for targets in resilience.values() for target in targets}
    assert resilience and all(target.startswith(f"{NAME}.resilience") for target in reached), reached


def test_the_check_finds_a_circle() -> None:
    """The check above is not blind: a made-up circle of three modules is found."""
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]

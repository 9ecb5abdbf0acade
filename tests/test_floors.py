"""The package's reading order: every module of ect/ imports only from the floors below its own (or from its own
subpackage), with no import cycle between modules or between subpackages. Function-level imports count."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "ect"
# Bottom first. A unit is a subpackage (ect.raw) or a top-level module (ect.energy).
FLOORS = [
    {"ect", "ect.errors", "ect.numbers", "ect.processes"},
    {"ect.raw", "ect.energy", "ect.architectures", "ect.backends", "ect.quality", "ect.masking", "ect.steady"},
    {"ect.sensors", "ect.data", "ect.config", "ect.projection"},
    {"ect.models", "ect.profiling", "ect.validation", "ect.analysis", "ect.store"},
    {"ect.aggregate"},
    {"ect.tracking"},
    {"ect.runs"},
    {"ect.runners", "ect.pipeline"},
    {"ect.cli"},
    {"ect.__main__"},
]
FLOOR_OF = {unit: number for number, units in enumerate(FLOORS) for unit in units}
BOTTOM = {"ect.raw", "ect.energy", "ect.architectures", "ect.backends", "ect.quality", "ect.masking", "ect.errors",
          "ect.numbers", "ect.steady", "ect.processes"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(ect module imported, line, at import time) for every import statement of the module, nested ones too."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top_level = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # "from ect.models import layers" imports the submodule ect.models.layers.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        at_import = id(node) in top_level
        for name in names:
            while name and name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if name in MODULES and name != module:
                found.append((name, node.lineno, at_import))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


EDGES = {module: imports(module) for module in MODULES}


def test_every_module_has_a_floor():
    assert not {unit_of(m) for m in MODULES} - set(FLOOR_OF), "add the new subpackage or module to FLOORS"


def test_no_import_cycle_between_modules():
    graph = {module: {target for target, _, _ in edges} for module, edges in EDGES.items()}
    assert cycles(graph) == []


def test_no_import_cycle_between_subpackages():
    graph = defaultdict(set)
    for module, edges in EDGES.items():
        graph[unit_of(module)] |= {unit_of(target) for target, _, _ in edges} - {unit_of(module)}
    assert cycles(dict(graph)) == []


def test_modules_import_only_from_lower_floors():
    wrong = [f"{MODULES[module].relative_to(REPO)}:{line} imports {target} (floor {FLOOR_OF[unit_of(target)]} "
             f"is not below {unit_of(module)}'s floor {FLOOR_OF[unit_of(module)]})"
             for module, edges in EDGES.items() for target, line, _ in edges
             if unit_of(target) != unit_of(module) and FLOOR_OF[unit_of(target)] >= FLOOR_OF[unit_of(module)]]
    assert wrong == []


def test_the_bottom_floor_imports_nothing_above_it():
    wrong = [(module, target) for module, edges in EDGES.items() if unit_of(module) in BOTTOM
             for target, _, _ in edges if unit_of(target) not in BOTTOM | {"ect"}]
    assert wrong == []


def third_party(module: str) -> list[tuple[str, int, bool]]:
    tree = ast.parse(MODULES[module].read_text())
    top_level = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found += [(name.split(".")[0], node.lineno, id(node) in top_level) for name in names]
    return found


def test_only_the_runners_import_airflow():
    assert [(m, line) for m in MODULES for name, line, _ in third_party(m)
            if name == "airflow" and unit_of(m) != "ect.runners"] == []


def test_tensorflow_and_keras_are_never_imported_at_import_time():
    """Importing TensorFlow costs seconds: only ect.models.layers (a Keras layer) may do it at import time."""
    assert [(m, line) for m in MODULES for name, line, at_import in third_party(m)
            if name in ("tensorflow", "keras") and at_import and m != "ect.models.layers"] == []


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_cycles(source, expected):
    assert cycles(source) == expected

"""The package's layers import in one direction, with no cycles.

Every ``import`` of a fastsd module anywhere in ``fastsd/`` (module level, inside
functions and under ``TYPE_CHECKING``) is read from the source and checked
against :data:`ALLOWED`: a layer may import itself and the layers listed for it,
nothing above. Imports inside functions are allowed only where they load an
optional dependency (scikit-learn through the estimators) or a command of the
CLI / a lazy attribute of ``fastsd`` (start-up time), see :data:`LAZY_OK`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastsd"

#: Layer of each module, by longest matching prefix.
LAYER_OF = {
    "fastsd._typing": "base",
    "fastsd._config": "base",
    "fastsd._version": "base",
    "fastsd._validation": "base",
    "fastsd._jit": "base",
    "fastsd._fit": "base",
    "fastsd._argparse": "base",
    "fastsd.exceptions": "base",
    "fastsd.tables": "base",
    "fastsd.math": "math",
    "fastsd.reference": "reference",
    "fastsd.kernels": "kernels",
    "fastsd.decomposition": "decomposition",
    "fastsd.engine": "engine",
    "fastsd.store": "store",
    "fastsd.blocks": "blocks",
    "fastsd.datasets": "data",
    "fastsd.problems": "data",
    "fastsd.config": "config",
    "fastsd.estimators": "estimators",
    "fastsd.plotting": "plotting",
    "fastsd.experiments": "experiments",
    "fastsd.bench": "bench",
    "fastsd.cli": "interface",
    "fastsd.__main__": "interface",
    "fastsd": "interface",
}

_LOW = {"base"}
_NUMERIC = _LOW | {"math", "reference", "kernels", "decomposition", "engine"}
#: layer -> the layers it may import (besides itself).
ALLOWED = {
    "base": set(),
    "math": _LOW,
    "reference": _LOW | {"math"},
    "kernels": _LOW | {"math"},
    "decomposition": _LOW | {"math"},
    "engine": _LOW | {"math", "reference", "kernels", "decomposition"},
    "store": _LOW | {"math"},
    "blocks": _NUMERIC | {"store"},
    "data": _NUMERIC,
    "config": _NUMERIC | {"store", "blocks", "data"},
    "estimators": _NUMERIC,
    "plotting": _LOW,
    "experiments": _NUMERIC | {"store", "blocks", "data", "estimators", "plotting"},
    "bench": _NUMERIC | {"store", "blocks", "data", "config"},
    "interface": set(LAYER_OF.values()),
}

#: Imports of fastsd modules allowed inside functions: (importer prefix, imported prefix).
LAZY_OK = [
    ("fastsd.cli", "fastsd"),  # each command loads its own modules (start-up time)
    ("fastsd", "fastsd.estimators"),  # lazy attributes of the package (scikit-learn)
    ("fastsd", "fastsd.problems"),
    ("fastsd.experiments", "fastsd.estimators"),  # scikit-learn, an optional dependency
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    best = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF[best]


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported fastsd module, inside a function, line) for every import in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target == "fastsd" or target.startswith("fastsd."):
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(
                            ".py"
                        ).exists() or (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                        found.append((sub if is_module else target, inner, child.lineno))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("fastsd"):
                        found.append((alias.name, inner, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module_name(p): _imports(p) for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_run_down_the_layers(path):
    module = _module_name(path)
    layer = _layer(module)
    for target, _, line in GRAPH[module]:
        other = _layer(target)
        assert other == layer or other in ALLOWED[layer], (
            f"{module}:{line} ({layer}) imports {target} ({other}); "
            f"{layer} may import {sorted(ALLOWED[layer])}"
        )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_inside_functions_only_for_optional_dependencies(path):
    module = _module_name(path)
    for target, inner, line in GRAPH[module]:
        if inner:
            assert any(
                (module == a or module.startswith(a + "."))
                and (target == b or target.startswith(b + "."))
                for a, b in LAZY_OK
            ), f"{module}:{line} imports {target} inside a function; import it at the top"


def test_no_import_cycles():
    edges = {m: {t for t, _, _ in deps if t in GRAPH and t != m} for m, deps in GRAPH.items()}
    # a package's __init__ re-exporting its submodules is not a cycle with them
    for m in edges:
        edges[m] = {t for t in edges[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_every_module_has_a_layer():
    for module in GRAPH:
        assert _layer(module) in ALLOWED, module

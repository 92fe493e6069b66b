"""The product's import graph, read from the source with ``ast``: no cycles, and the layers hold.

Every ``import`` and ``from ... import`` of our own modules counts, those under ``TYPE_CHECKING`` and
inside functions included: a cycle that exists only for annotations still ties two modules into
one concept (the review found four, ``vendors/<v>.py`` <-> ``hooks/<v>.py``). ``testing/`` (the
emulators and the demo vendor) is not product and is left out; the demo's record in ``vendors/``
is in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_flowruns

PACKAGE = "airflow_provider_flowruns"
ROOT = Path(airflow_provider_flowruns.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _product_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(ROOT.rglob("*.py"))
        if "testing" not in path.relative_to(ROOT).parts
    }


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Our modules that ``module`` imports (``from pkg import name`` counts ``pkg.name`` when that
    is a module, else ``pkg``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _product_modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


GRAPH = _graph()


def test_the_walk_sees_the_product_and_its_arrows() -> None:
    """The graph is not vacuous: known arrows are in it, including annotation-only ones."""
    assert len(GRAPH) > 50
    assert f"{PACKAGE}.core.http" in GRAPH[f"{PACKAGE}.hooks.habu"]
    assert f"{PACKAGE}.vendors" in GRAPH[f"{PACKAGE}.hooks.habu"]
    assert f"{PACKAGE}.hooks.habu" in GRAPH[f"{PACKAGE}.operators.habu"]  # under TYPE_CHECKING
    assert f"{PACKAGE}.core.vendor" in GRAPH[f"{PACKAGE}.get_provider_info"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_product_imports_have_no_cycle() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (
            "core",
            (
                "hooks",
                "operators",
                "sensors",
                "transfers",
                "triggers",
                "vendors",
                "links",
                "get_provider_info",
            ),
        ),
        ("vendors", ("hooks", "operators", "sensors", "transfers", "triggers", "core.http")),
        ("hooks", ("operators", "sensors", "transfers", "triggers", "links")),
        ("sensors", ("operators.base", "transfers")),
        ("forms", ("core", "hooks", "vendors", "operators")),
        ("get_provider_info", ("hooks", "operators", "sensors", "transfers", "triggers", "links")),
    ],
)
def test_layers_import_only_downward(layer: str, forbidden: tuple[str, ...]) -> None:
    prefix = f"{PACKAGE}.{layer}"
    banned = tuple(f"{PACKAGE}.{f}" for f in forbidden)
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module == prefix or module.startswith(prefix + ".")
        for target in targets
        if target.startswith(banned)
        and (target in banned or target.startswith(tuple(b + "." for b in banned)))
    )
    assert wrong == []

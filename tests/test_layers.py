"""The project's layers, checked on its import graph (every import statement, top-level or inside a
function, parsed from the source): no import cycle between modules; the data, profile and method
packages never reach up into the orchestration; only command lines import `analysis/`; the models
import nothing from the harness but the shared interfaces."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "baselines", "analysis")
ORCHESTRATION = ("benchmark.suite", "benchmark.suite_plan", "benchmark.suite_executor", "benchmark.records",
                 "benchmark.tracking", "benchmark.registry", "benchmark.model_spec", "benchmark.run",
                 "benchmark.run_queue", "benchmark.studies", "benchmark.study_archive")
LOWER_LAYERS = ("benchmark.data", "benchmark.profiles", "benchmark.methods")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (`from a.b import c` counts `a.b.c` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name if name in known else name.rsplit(".", 1)[0] for name in names} & known
    return found


def import_graph() -> nx.DiGraph:
    files = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        graph.add_edges_from((name, other) for other in imported_modules(path, set(files)) if other != name)
    return graph


def is_command(module: str) -> bool:
    """A module run with `python -m` (its own or its package's `__main__`)."""
    path = ROOT / Path(*module.split("."))
    source = path / "__main__.py" if path.is_dir() else path.with_suffix(".py")
    return 'if __name__ == "__main__"' in source.read_text() or module.endswith("__main__")


GRAPH = import_graph()


def test_the_graph_sees_every_kind_of_import():
    assert GRAPH.has_edge("benchmark.registry", "benchmark.methods")  # from a package import a name
    assert GRAPH.has_edge("benchmark.methods.kd", "benchmark.methods.targets")  # from a module import a name
    assert GRAPH.has_edge("analysis.report", "analysis.runs")  # inside a function
    assert GRAPH.has_edge("analysis.figures", "matplotlib") is False  # only the project's modules


def test_a_cycle_or_a_layer_breach_would_be_seen(tmp_path):
    """The checks below are not vacuous: a graph with a back edge has a cycle, and a breach is found."""
    graph = GRAPH.copy()
    graph.add_edge("benchmark.methods.targets", "benchmark.registry")
    assert list(nx.simple_cycles(graph)) and breaches(graph, "benchmark.methods")


def test_no_import_cycle_between_modules():
    assert list(nx.simple_cycles(GRAPH)) == []


def breaches(graph: nx.DiGraph, layer: str) -> set[tuple[str, str]]:
    """(module of `layer`, orchestration or analysis module it imports)."""
    return {(module, other) for module in graph if module == layer or module.startswith(f"{layer}.")
            for other in graph.successors(module) if other.startswith((*ORCHESTRATION, "analysis"))}


@pytest.mark.parametrize("layer", LOWER_LAYERS)
def test_data_profiles_and_methods_never_import_the_orchestration(layer):
    assert breaches(GRAPH, layer) == set()


def test_only_commands_import_the_analysis():
    importers = {module for module in GRAPH if not module.startswith("analysis")
                 for other in GRAPH.successors(module) if other.startswith("analysis")}
    assert importers and all(is_command(module) for module in importers), importers


def test_models_import_nothing_from_the_harness_but_the_shared_interfaces():
    reached = {other for module in GRAPH if module.startswith("baselines") for other in GRAPH.successors(module)}
    assert {other for other in reached if other.startswith("benchmark")} == {"benchmark.interfaces"}


def test_every_module_is_on_the_map():
    """ARCHITECTURE.md names every module by its path (a package's `__init__.py` that holds only its
    docstring excepted)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    modules = [path.relative_to(ROOT).as_posix() for package in PACKAGES for path in (ROOT / package).rglob("*.py")
               if path.name != "__init__.py" or any(not isinstance(node, ast.Expr) for node in ast.parse(path.read_text()).body)]
    assert [module for module in modules if f"`{module}`" not in text] == []

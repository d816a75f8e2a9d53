"""The layers point down only: each package of devstack/ imports its own layer and those below it
(function-level imports too), agent/ imports neither devstack/ nor tasks/, and no module imports
itself back through others (no cycle). Read from the source, so a broken copy fails here."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.static

# Bottom to top. agent/ is the service: below everything, importing nothing of ours.
LAYERS = (
    "agent",
    "devstack.core",
    "devstack.host",
    "devstack.image",
    "devstack.cluster",
    "devstack.release",
    "devstack.verify",
    "devstack.harness",
    "devstack.perf",
    "devstack.provision",
    "tasks",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module of ours that `path` imports, wherever the import statement is: `from a
    import b` imports the module a.b when there is one, else a."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found & modules


def layer_of(module: str) -> int | None:
    for index, layer in reversed(list(enumerate(LAYERS))):
        if module == layer or module.startswith(layer + "."):
            return index
    return None


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = {
        module_name(path): path
        for package in ("agent", "devstack", "tasks")
        for path in (root / package).rglob("*.py")
    }
    return {name: imports_of(path, set(modules)) for name, path in modules.items()}


def upward_arrows(edges: dict[str, set[str]]) -> list[str]:
    found = []
    for source, targets in edges.items():
        for target in targets:
            below, above = layer_of(source), layer_of(target)
            if below is not None and above is not None and above > below:
                found.append(f"{source} -> {target}")
    return sorted(found)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as the modules around it (depth-first, one per back edge)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_every_package_is_in_a_layer() -> None:
    packages = {name for name in graph() if name.count(".") <= 1 and name != "devstack"}
    unplaced = [p for p in packages if layer_of(p) is None and p.split(".")[0] == "devstack"]
    assert unplaced == []


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_arrows(graph()) == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_a_broken_copy_fails_both_checks() -> None:
    """An arrow up from core to the Go build, and the cycle it closes (the one issue #24 found)."""
    edges = graph()
    edges["devstack.core.tools"] = {*edges["devstack.core.tools"], "devstack.cluster.binaries"}
    assert "devstack.core.tools -> devstack.cluster.binaries" in upward_arrows(edges)
    assert any(
        cycle[0] == "devstack.cluster.binaries" or "devstack.core.tools" in cycle
        for cycle in cycles(edges)
    )

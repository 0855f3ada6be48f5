"""Dependencies run one way: no import cycle between the modules of the
packages (function-local imports included, so none can hide a cycle),
``pyg_hgconv`` never imports ``tvconv`` or the benchmarks, ``tvconv`` never
imports the benchmarks, and importing a package alone loads nothing above it."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pyg_hgconv", "tvconv", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # the deepest known module the import names
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imported_modules(p, known) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph of the modules that hold code: importing ``a.b.c`` runs the
    ``__init__`` of ``a`` and ``a.b`` first, which may re-export from their
    submodules; those re-exports are not dependencies of ``a.b.c``."""
    inits = {m for m in graph if (REPO / Path(*m.split(".")) / "__init__.py").is_file()}
    return {m: {d for d in deps if d not in inits} for m, deps in graph.items()
            if m not in inits}


def test_no_import_cycle_between_modules():
    cycle = find_cycle(without_package_inits(import_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("package, forbidden", [
    ("pyg_hgconv", ("tvconv", "benchmarks")), ("tvconv", ("benchmarks",))])
def test_dependencies_run_one_way(package, forbidden):
    graph = import_graph()
    offending = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.split(".")[0] == package
                       for d in deps if d.split(".")[0] in forbidden)
    assert not offending, offending


@pytest.mark.parametrize("module, absent", [
    ("pyg_hgconv.profile.counter", ("tvconv", "benchmarks")),
    ("pyg_hgconv.nn.models", ("tvconv", "benchmarks")),
    ("pyg_hgconv.viz", ("tvconv", "benchmarks")),
    ("tvconv", ("benchmarks",)),
])
def test_importing_a_package_alone_loads_nothing_above_it(module, absent):
    code = (f"import sys, {module}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(absent)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]", f"importing {module} loaded {out}"


def test_the_library_registers_graph_convs_only():
    code = ("import pyg_hgconv.nn.conv.registry as r; "
            "print(r.conv_names('graph'), r.conv_names('grid'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "['hgconv', 'gcn', 'gmm', 'spline', 'dynamic_edge'] []"

"""The shape of birdlab: stages in pipeline order, no import cycles, notebook support only for notebooks.

Every import statement counts, function-local ones included (a local import hides a cycle, it does not
remove it). Edges are read from the source with `ast`, so the test needs none of the heavy packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import birdlab

PACKAGE_ROOT = Path(birdlab.__file__).resolve().parent
STAGES = ("base", "data", "features", "frontend", "teacher", "training", "export", "agreement", "notebook_support",
          "entry")
"""Lower stages never import higher ones. frontend and teacher sit side by side (neither imports the other)."""
BASE_MODULES = {"birdlab", "birdlab.errors", "birdlab.paths", "birdlab.metrics", "birdlab.provenance"}
ENTRY_MODULES = {"birdlab.cli", "birdlab.demo", "birdlab.__main__"}
MAX_LOCAL_IMPORTS_OUTSIDE_CLI = 5


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> str:
    if module in BASE_MODULES:
        return "base"
    if module in ENTRY_MODULES:
        return "entry"
    package = module.split(".")[1]
    assert package in STAGES, f"{module}: not in a stage package {STAGES[1:-1]}; put it in one or in BASE_MODULES"
    return package


def birdlab_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The birdlab module an import of `target` loads (a name imported from a module resolves to the module)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target if target.startswith("birdlab") else None


def import_edges() -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, function-local) for every import of a birdlab module by a birdlab module."""
    modules = birdlab_modules()
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local_lines = {n.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
                # `from package import module` runs the package's __init__ too: both are edges
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in targets:
                imported = resolve(target, modules)
                if imported and imported != name:
                    edges.append((name, imported, node.lineno, node.lineno in local_lines))
    return edges


def upward_imports(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    return [f"{a} ({stage_of(a)}) imports {b} ({stage_of(b)}), line {line}" for a, b, line, _ in edges
            if STAGES.index(stage_of(b)) > STAGES.index(stage_of(a))]


def test_lower_stages_never_import_higher_ones():
    wrong = upward_imports(import_edges())
    assert not wrong, "\n".join(wrong)


def test_frontend_and_teacher_do_not_import_each_other():
    pairs = {("frontend", "teacher"), ("teacher", "frontend")}
    wrong = [f"{a} imports {b}" for a, b, _, _ in import_edges() if (stage_of(a), stage_of(b)) in pairs]
    assert not wrong, wrong


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in birdlab_modules()}
    for a, b, _, _ in import_edges():
        graph[a].add(b)
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_only_notebooks_use_notebook_support():
    wrong = [f"{a} imports {b}" for a, b, _, _ in import_edges()
             if b.startswith("birdlab.notebook_support") and not a.startswith("birdlab.notebook_support")]
    assert not wrong, wrong


def test_few_function_local_imports_of_birdlab_outside_the_cli():
    local = [f"{a}:{line} imports {b}" for a, b, line, is_local in import_edges() if is_local and a != "birdlab.cli"]
    assert len(local) <= MAX_LOCAL_IMPORTS_OUTSIDE_CLI, "\n".join(local)


def test_the_layer_check_sees_a_violation():
    """The stage check can fail: an edge from data up to training is reported, one down is not."""
    edges = [("birdlab.data.synth", "birdlab.training.train", 7, False),
             ("birdlab.training.train", "birdlab.data.synth", 9, False)]
    assert upward_imports(edges) == ["birdlab.data.synth (data) imports birdlab.training.train (training), line 7"]


def test_each_stage_exposes_a_curated_api():
    """Every stage package lists its API in __all__, and every listed name resolves."""
    import importlib

    for stage in STAGES[1:-1]:
        if not (PACKAGE_ROOT / stage).is_dir():
            continue
        package = importlib.import_module(f"birdlab.{stage}")
        assert package.__all__, f"birdlab.{stage} has an empty __all__"
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert not missing, f"birdlab.{stage}.__all__ lists {missing}, which do not resolve"

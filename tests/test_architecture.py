"""The package's shape: layers that only point down, no import cycles, modules a person can hold in their head.

The import graph is read from the source (``ast``), so these tests see every import, including those inside
functions, without running any of them. Imports under ``if TYPE_CHECKING:`` are for type checkers only and
are left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transferkit"

# Lower layers never import higher ones (STYLE.md, "Layout"). Within a layer, imports may go either way as
# long as they form no cycle.
LAYERS = {
    "low": ["_version", "errors", "files", "registry", "settings", "progress", "targets", "augment", "devices",
            "datasets", "data", "training", "evaluation"],
    "middle": ["backbones", "heads", "cache", "config", "state", "model", "selection", "strategies", "artifacts",
               "faces", "explain", "export",  # export and explain: model.py offers model.export() / .explain()
               "adaptation"],
    "high": ["experiments", "serving", "distributed"],
    "front": ["api", "estimators", "cli", "__init__"],
}  # fmt: skip
RANK = {name: rank for rank, names in enumerate(LAYERS.values()) for name in names}
MAX_LINES = 500
# Imports inside functions are for optional heavy extras (each backbone family) and for the lazy front door:
# the CLI and package __init__ files that answer --help without torch, and the HTTP service, which serves an
# exported folder without torch and imports the PyTorch model loader only for a PyTorch model folder.
LAZY_IMPORTS_ALLOWED = (
    "transferkit.cli", "transferkit.backbones.catalog", "transferkit.backbones.factory", "transferkit.serving",
)  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> list[tuple[str, bool]]:
    """(imported transferkit module, inside a function?) for every runtime import in module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nested = {
        id(child) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.walk(node)
    }  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # "from a.b import c" imports the module a.b.c when it is one, else a name from a.b
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("transferkit") and target != name:
                found.append((target, id(node) in nested))
    return found


GRAPH = {name: sorted({target for target, _ in imports_of(name)}) for name in MODULES}


def layer(name: str) -> int:
    parts = name.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    assert key in RANK, f"{name} is in no layer; add {key!r} to LAYERS in tests/test_architecture.py"
    return RANK[key]


def test_every_module_belongs_to_a_layer():
    for name in MODULES:
        layer(name)


def test_imports_only_point_down():
    upward = [
        f"{name} ({list(LAYERS)[layer(name)]}) imports {target} ({list(LAYERS)[layer(target)]})"
        for name, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(name)
    ]
    assert not upward, "\n".join(upward)


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, []):
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
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert find_cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycles():
    assert find_cycles(GRAPH) == []


def test_imports_sit_at_the_top_of_modules():
    lazy = [
        f"{name} imports {target} inside a function"
        for name in MODULES
        for target, inside in imports_of(name)
        if inside and not name.startswith(LAZY_IMPORTS_ALLOWED) and MODULES[name].name != "__init__.py"
    ]
    assert not lazy, "\n".join(lazy)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_too_long_to_hold_in_ones_head(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it (STYLE.md: modules of 50-400 lines)"


def test_help_and_catalog_commands_do_not_load_torch():
    """`transferkit --help`, `models` and `datasets` answer without importing torch, scikit-learn or pandas."""
    heavy = ("torch", "sklearn", "pandas", "transformers", "ray")
    for command in (["--help"], ["fit", "--help"], ["models"], ["datasets"]):
        code = (
            "import sys; from transferkit.cli import app\n"
            f"try:\n    app({command!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.stdout.strip().splitlines()[-1] == "[]", (command, done.stdout[-500:], done.stderr[-500:])

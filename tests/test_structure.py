"""The package stays in small pieces: files under 300 lines, functions under 60, no import
cycle between its modules (read with `ast`, nothing is imported).

Imports inside functions and `if TYPE_CHECKING:` blocks count too: a lazy or an
annotation-only import still ties two modules together (a cycle Python never runs into is
still two modules that each need the other).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parents[1]
# Import name -> folder, as pyproject's package-dir maps them.
PACKAGES = {
    "edge_deeplab": REPO / "edge_deeplab",
    "edge_deeplab.converters": REPO / "converters",
    "edge_deeplab.runtimes": REPO / "runtimes",
    "edge_deeplab.demos": REPO / "demos",
}
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60
# Functions allowed past the limit while a rewrite is in flight (none now).
IN_FLIGHT: set = set()


def package_modules() -> Dict[str, Path]:
    """Dotted module name -> source file, for every module of the package."""
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if name not in modules:  # edge_deeplab's own tree never holds the mapped folders
                modules[name] = path
    return modules


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth (functions, `if TYPE_CHECKING:` blocks)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def module_imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The package modules `name` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            anchor = base
            for _ in range(max(0, node.level - 1)):
                anchor = anchor.rsplit(".", 1)[0]
            module = node.module or ""
            prefix = f"{anchor}.{module}".rstrip(".") if node.level else module
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                found.add(target)
    return found


def import_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _is_parent_package(importer: str, imported: str) -> bool:
    """A module importing its own package's __init__ (e.g. `from . import x`) is not a cycle
    worth reporting: Python loads the package first."""
    return importer.startswith(imported + ".")


def test_no_file_over_300_lines():
    long = {
        str(path.relative_to(REPO)): n
        for path in package_modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    long = {}
    for path in package_modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                where = f"{path.relative_to(REPO)}::{node.name}"
                if length > MAX_FUNCTION_LINES and where not in IN_FLIGHT:
                    long[where] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_import_cycle_between_modules():
    modules = package_modules()
    known = set(modules)
    graph = {
        name: {
            target
            for target in module_imports(name, path, known)
            if not _is_parent_package(name, target)
        }
        for name, path in modules.items()
    }
    assert not import_cycles(graph), f"import cycles: {import_cycles(graph)}"


def test_the_checker_sees_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_checker_sees_annotation_only_and_lazy_imports(tmp_path):
    (tmp_path / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
        "def f():\n    from . import c\n",
        encoding="utf-8",
    )
    found = module_imports("pkg.a", tmp_path / "a.py", {"pkg", "pkg.a", "pkg.b", "pkg.c"})
    assert {"pkg.b", "pkg.c"} <= found

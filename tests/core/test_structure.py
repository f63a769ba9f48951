"""The package stays in pieces of one idea each, and its layers hold.

Sizes are read with `ast`: functions under 60 lines; files around 400 lines at most (a guide,
STYLE.md; past MAX_FILE_LINES a file holds two ideas). The import order of the layers
(pyproject's `[tool.importlinter]`: core -> runtimes -> segmenter -> evaluation ->
converters / training -> bench -> demos -> cli) and the absence of cycles between the
modules of one package are checked by import-linter on the package as it is installed
(converters/, runtimes/ and demos/ mapped into edge_deeplab). It counts imports inside
functions and `if TYPE_CHECKING:` blocks too: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

REPO = Path(__file__).resolve().parents[2]
# Import name -> folder, as pyproject's package-dir maps them.
PACKAGES = {
    "edge_deeplab": REPO / "edge_deeplab",
    "edge_deeplab.converters": REPO / "converters",
    "edge_deeplab.runtimes": REPO / "runtimes",
    "edge_deeplab.demos": REPO / "demos",
}
MAX_FILE_LINES = 450  # the guide is ~400 (STYLE.md); past this a file is two ideas
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


def test_no_file_over_the_size_guide():
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


def installed_layout(folder: Path) -> Path:
    """A copy of the package laid out as pip installs it (the mapped folders inside
    edge_deeplab), which import-linter can walk; returns the folder to put on sys.path."""
    root = folder / "site"
    for package, source in PACKAGES.items():
        shutil.copytree(source, root.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def lint_imports(site: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with pyproject's contracts on the package at `site`."""
    pytest.importorskip("importlinter")
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(command), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=site, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_layer_and_cycle_contracts_hold(tmp_path):
    result = lint_imports(installed_layout(tmp_path))
    assert result.returncode == 0 and "2 kept, 0 broken" in result.stdout, result.stdout[-3000:]


def test_the_contract_fails_on_a_planted_upward_import(tmp_path):
    """runtimes importing the CLI, lazily inside a function: the layers contract breaks."""
    site = installed_layout(tmp_path)
    base = site / "edge_deeplab" / "runtimes" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _planted():\n    from edge_deeplab.cli import main  # noqa\n")
    result = lint_imports(site)
    assert result.returncode != 0
    assert "edge_deeplab.runtimes is not allowed to import edge_deeplab.cli" in result.stdout


def test_the_contract_fails_on_a_planted_cycle(tmp_path):
    """Two modules of one package that need each other, one of them only under TYPE_CHECKING."""
    site = installed_layout(tmp_path)
    folder = site / "edge_deeplab" / "converters"
    (folder / "planted_a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from . import planted_b  # noqa\n")
    (folder / "planted_b.py").write_text("def f():\n    from . import planted_a  # noqa\n")
    result = lint_imports(site)
    assert result.returncode != 0 and "No cycles are allowed in edge_deeplab.converters" in result.stdout


def test_every_top_level_module_has_a_layer():
    """A module the layers do not name escapes the contract: each must be placed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    top = {name for name in package_modules() if name.count(".") == 1}
    assert top - named == set(), f"place these in pyproject's [tool.importlinter] layers: {sorted(top - named)}"

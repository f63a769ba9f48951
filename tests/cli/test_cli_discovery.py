"""Subcommands are found like the registries' members: every `*_cmd.py` of `edge_deeplab.cli`
is a command with no list to edit, and a module that is broken or misnamed fails loudly
instead of leaving its command out."""

from __future__ import annotations

import sys
import textwrap

import pytest

from edge_deeplab import cli
from edge_deeplab.cli.main import build_parser, main

HELLO = '''
import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("{command}", help="say hello")


def run(args) -> int:
    print("hello from a dropped-in file")
    return 0
'''


@pytest.fixture
def plugin_dir(tmp_path):
    """A folder on `edge_deeplab.cli.__path__`; write(name, source) drops a module into it."""
    folder = tmp_path / "cli_plugins"
    folder.mkdir()
    written = []

    def write(name: str, source: str) -> None:
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(f"{cli.__name__}.{name}")

    cli.__path__.append(str(folder))
    try:
        yield write
    finally:
        cli.__path__.remove(str(folder))
        for module in written:
            sys.modules.pop(module, None)


def _commands(parser) -> list:
    return list(parser._subparsers._group_actions[0].choices)


def test_help_lists_the_commands_in_a_stable_order():
    assert _commands(build_parser()) == [
        "quickstart", "train", "eval", "convert", "build-engine", "calib-curve", "formats", "doctor", "verify",
        "predict", "bench", "report", "demo",
    ]


def test_a_new_subcommand_is_one_file(plugin_dir, capsys):
    plugin_dir("hello_cmd", HELLO.format(command="hello"))
    assert _commands(build_parser())[-1] == "hello"  # no ORDER: after the ordered ones, alphabetically
    assert main(["hello"]) == 0
    assert "hello from a dropped-in file" in capsys.readouterr().out


def test_a_module_that_does_not_import_is_an_error_naming_it(plugin_dir):
    plugin_dir("typo_cmd", "import edge_deeplab.no_such_modul\n")
    with pytest.raises(ImportError, match=r"edge_deeplab\.cli\.typo_cmd") as caught:
        build_parser()
    assert caught.value.name == "edge_deeplab.cli.typo_cmd"
    assert "no_such_modul" in str(caught.value)


def test_a_module_named_unlike_its_command_is_an_error(plugin_dir):
    plugin_dir("helo_cmd", HELLO.format(command="hello"))
    with pytest.raises(ImportError, match=r"edge_deeplab\.cli\.helo_cmd adds \['hello'\], not 'helo'"):
        build_parser()


def test_a_module_without_run_is_an_error(plugin_dir):
    plugin_dir("half_cmd", "def add_parser(subparsers):\n    return subparsers.add_parser('half')\n")
    with pytest.raises(ImportError, match=r"edge_deeplab\.cli\.half_cmd has no run\(\)"):
        build_parser()


def test_helper_modules_are_not_commands():
    assert "common" not in _commands(build_parser()) and "train_flags" not in _commands(build_parser())

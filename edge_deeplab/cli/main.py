"""The `edge-deeplab` command: an argparse root with one module per subcommand.

Every `<name>_cmd.py` module of this package is a subcommand, found with
`pkgutil.iter_modules` (a new file needs no import line anywhere): it has
`add_parser(subparsers)`, which adds the command `<name>`, and `run(args) -> int`, and may
set `ORDER` (default 100) for its place in `--help` (ties alphabetical). A module that
fails to import, lacks those functions or adds a command under another name is an error,
not a missing command. Errors a user can cause (EdgeDeeplabError) are printed as one line
and exit with status 2 (`edge_deeplab.guard`). Every command takes -q/--quiet and
-v/--verbose (`common.add_log_flags`), and runs with the log they set (`edge_deeplab.logs`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from types import ModuleType
from typing import List, Optional

from .. import __version__
from ..guard import guarded
from ..logs import setup_logging
from .common import add_log_flags, verbosity

SUFFIX = "_cmd"
DEFAULT_ORDER = 100


def subcommand_modules() -> List[ModuleType]:
    """Every `*_cmd` module of this package (and of folders added to its `__path__`), imported,
    in `--help` order."""
    package = importlib.import_module(__package__)
    names = sorted({info.name for info in pkgutil.iter_modules(package.__path__) if info.name.endswith(SUFFIX)})
    modules = [_import_subcommand(f"{__package__}.{name}") for name in names]
    return sorted(modules, key=lambda module: getattr(module, "ORDER", DEFAULT_ORDER))


def _import_subcommand(qualified: str) -> ModuleType:
    try:
        module = importlib.import_module(qualified)
    except Exception as exc:
        raise ImportError(f"subcommand module {qualified} does not import: {exc}", name=qualified) from exc
    missing = [attr for attr in ("add_parser", "run") if not callable(getattr(module, attr, None))]
    if missing:
        raise ImportError(f"subcommand module {qualified} has no {' or '.join(missing)}()", name=qualified)
    return module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-deeplab",
        description="Train, quantize, convert, benchmark and run MobileNetV2 DeepLab v3 on the edge.",
    )
    parser.add_argument("--version", action="version", version=f"edge-deeplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in subcommand_modules():
        _add_command(sub, module)
    return parser


def _add_command(sub, module: ModuleType) -> None:
    """Add `module`'s command, which must be named like the module (`bench_cmd` -> `bench`,
    `build_engine_cmd` -> `build-engine`)."""
    before = set(sub.choices)
    command = module.add_parser(sub)
    added = sorted(set(sub.choices) - before)
    expected = module.__name__.rsplit(".", 1)[-1][: -len(SUFFIX)].replace("_", "-")
    if expected not in added:
        raise ImportError(
            f"subcommand module {module.__name__} adds {added or 'no command'}, not {expected!r}: "
            f"name the module after its command",
            name=module.__name__,
        )
    add_log_flags(command)
    command.set_defaults(handler=module.run)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    setup_logging(verbosity(args))
    words = sys.argv[1:] if argv is None else argv
    logging.getLogger(__name__).debug("edge-deeplab %s, Python %s: %s", __version__, sys.version.split()[0], words)
    return guarded(f"edge-deeplab {args.command}", lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

"""The `edge-deeplab` command: an argparse root with one module per subcommand.

Each subcommand module has `add_parser(subparsers)` and `run(args) -> int`. Errors a user
can cause (EdgeDeeplabError) are printed as one line and exit with status 2
(`edge_deeplab.guard`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .. import __version__
from ..guard import guarded

# One module per subcommand, in the order `--help` lists them.
SUBCOMMANDS = ("quickstart", "train", "eval", "convert", "formats", "verify", "predict", "bench", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-deeplab",
        description="Train, quantize, convert, benchmark and run MobileNetV2 DeepLab v3 on the edge.",
    )
    parser.add_argument("--version", action="version", version=f"edge-deeplab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}_cmd":
                raise
            continue  # a subcommand not installed in this build
        command = module.add_parser(sub)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    return guarded(f"edge-deeplab {args.command}", lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())

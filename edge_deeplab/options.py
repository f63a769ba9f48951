"""An option declared once: an options dataclass field carries its CLI flag and help.

    calib_size: int = option(200, "calibration images (LiteRT advises 100-500)")

is the field of the Python API (`ConvertOptions(calib_size=...)`), the `--calib-size` flag
of the CLI (type from the default, "(default 200)" added to the help) and the value passed
from one to the other (`cli.option_flags`). The train flags, whose defaults are the
configs', are declared the same way (`cli.train_flags`). The text parsers here are shared by fields and
hand-written flags; they raise argparse's error type so argparse reports them as usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Callable, Optional, Tuple

CLI = "cli"  # the metadata key of a field's flag


def option(default, help: str, *, flag: Optional[str] = None, parse: Optional[Callable] = None,
           choices=None, metavar: Optional[str] = None, inverted: bool = False, negatable: bool = False,
           show_default: bool = True):
    """A dataclass field that is also a CLI flag.

    Args:
        default: the field's default, also the flag's.
        help: the flag's help; "(default X)" is appended unless `show_default` is False or
            the default is None or a bool.
        flag: the flag's name (default: --field-name).
        parse: turns the flag's text into the value (default: int/float/str by the default).
        choices: allowed values (the choices may be a callable, resolved when the parser
            is built, so registries are read late).
        inverted: a bool field set False by its flag (`progress` <- `--quiet`).
        negatable: a bool field with a flag each way (`--decoder` / `--no-decoder`).
    """
    spec = {"help": help, "flag": flag, "parse": parse, "choices": choices, "metavar": metavar,
            "inverted": inverted, "negatable": negatable, "show_default": show_default}
    if isinstance(default, (list, dict, set)):
        raise TypeError("an option's default must be immutable (a tuple, not a list)")
    return dataclasses.field(default=default, metadata={CLI: spec})


def cli_fields(options_cls):
    """The fields of `options_cls` that are CLI flags, in declaration order."""
    return [f for f in dataclasses.fields(options_cls) if CLI in f.metadata]


def parse_size(text: str) -> Tuple[int, int]:
    """'257' or '257x257' or '360x480' (height x width) -> (h, w)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 8:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with N >= 8, got {text!r}")
    return values[0], values[1]


def parse_floats(text: str) -> Tuple[float, ...]:
    """'127.5' or '123.7,116.3,103.5' -> finite floats ('nan' and 'inf' are refused)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def finite_float(text: str) -> float:
    """A flag's number: float() also takes 'nan' and 'inf', which no flag means."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def parse_list(text: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())

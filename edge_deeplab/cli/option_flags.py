"""Flags built from options dataclasses (`edge_deeplab.options.option`), and options from flags."""

from __future__ import annotations

import argparse
import dataclasses

from ..options import CLI, cli_fields, finite_float


def add_option_flags(parser, options_cls) -> None:
    """One flag per option field of `options_cls`, its help and default from the field."""
    for f in cli_fields(options_cls):
        spec = f.metadata[CLI]
        flag = spec["flag"] or "--" + f.name.replace("_", "-")
        kwargs = {"dest": f.name, "default": f.default, "help": _help(spec, f.default)}
        if isinstance(f.default, bool):
            kwargs["action"] = "store_false" if spec["inverted"] else "store_true"
        else:
            kwargs["type"] = spec["parse"] or _parser_of(f.default)
            choices = spec["choices"]
            kwargs["choices"] = choices() if callable(choices) else choices
            kwargs["metavar"] = spec["metavar"]
        parser.add_argument(flag, **{k: v for k, v in kwargs.items() if v is not None})


def options_from_args(options_cls, args: argparse.Namespace, **values):
    """An `options_cls` from the parsed flags (its own checks run), `values` added or overriding."""
    given = {f.name: getattr(args, f.name) for f in cli_fields(options_cls) if hasattr(args, f.name)}
    return options_cls(**{**given, **values})


def keywords(options) -> dict:
    """An options object as the keyword arguments its API function takes (one level deep)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def _help(spec: dict, default) -> str:
    text = spec["help"]
    if spec["show_default"] and default is not None and not isinstance(default, bool):
        shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) \
            if isinstance(default, tuple) else (f"{default:g}" if isinstance(default, float) else default)
        text += f" (default {shown})"
    return text.replace("%", "%%")


def _parser_of(default):
    if isinstance(default, float):
        return finite_float
    if isinstance(default, int):
        return int
    return str


"""Flags built from options dataclasses (`edge_deeplab.options.option`), and options from flags."""

from __future__ import annotations

import argparse
import dataclasses

from ..options import CLI, cli_fields, finite_float, parse_size


def add_option_flags(parser, options_cls, *, unset: bool = False) -> None:
    """One flag per option field of `options_cls`, its help and default from the field.

    With `unset`, a flag left out parses as None while --help still shows the field's
    default: for flags that override values kept elsewhere (a resumed run's saved config),
    read back with `given_options`.
    """
    for f in cli_fields(options_cls):
        spec = f.metadata[CLI]
        flag = spec["flag"] or "--" + f.name.replace("_", "-")
        kwargs = {"dest": f.name, "default": None if unset else f.default, "help": _help(spec, f.default)}
        if spec["negatable"]:  # --x / --no-x; left out, the field's default (SUPPRESS: no auto "(default: ...)")
            kwargs.update(action=argparse.BooleanOptionalAction, default=None if unset else argparse.SUPPRESS)
        elif isinstance(f.default, bool):
            kwargs.update(action="store_const", const=not spec["inverted"])
        else:
            kwargs["type"] = spec["parse"] or _parser_of(f.default)
            choices = spec["choices"]
            kwargs["choices"] = choices() if callable(choices) else choices
            kwargs["metavar"] = spec["metavar"]
        parser.add_argument(flag, **{k: v for k, v in kwargs.items() if v is not None or k == "default"})


def options_from_args(options_cls, args: argparse.Namespace, **values):
    """An `options_cls` from the parsed flags (its own checks run), `values` added or overriding."""
    given = {f.name: getattr(args, f.name) for f in cli_fields(options_cls) if hasattr(args, f.name)}
    return options_cls(**{**given, **values})


def given_options(options_cls, args: argparse.Namespace) -> dict:
    """The option fields of `options_cls` whose flags were given (flags added with `unset`)."""
    return {f.name: getattr(args, f.name) for f in cli_fields(options_cls) if getattr(args, f.name, None) is not None}


def keywords(options) -> dict:
    """An options object as the keyword arguments its API function takes (one level deep)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def _help(spec: dict, default) -> str:
    text = spec["help"]
    if spec["negatable"]:
        text += f" (default {'on' if default else 'off'})"
    elif spec["show_default"] and default is not None and not isinstance(default, bool):
        text += f" (default {_shown(default, spec['parse'])})"
    return text.replace("%", "%%")


def _shown(default, parse) -> str:
    """A default as its flag would take it: floats as %g, tuples comma-separated, a size as HxW."""
    if parse is parse_size:
        return "x".join(str(v) for v in default)
    if isinstance(default, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
    return f"{default:g}" if isinstance(default, float) else str(default)


def _parser_of(default):
    if isinstance(default, float):
        return finite_float
    if isinstance(default, int):
        return int
    return str

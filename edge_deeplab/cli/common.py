"""Arguments and helpers shared by the subcommands: -q / -v on every one, the MODEL flags."""

from __future__ import annotations

import argparse
from typing import Optional

from ..errors import InvalidInputError
from ..options import parse_floats, parse_size
from ..presets import PRESETS


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    """-q/--quiet and -v/--verbose, added after a command's own flags.

    A command that has its own --quiet (no progress from that command's API, e.g. convert's)
    keeps it, and -q becomes its short form: either one also quiets the log.
    """
    group = parser.add_argument_group("output")
    own = parser._option_string_actions.get("--quiet")
    if own is None:
        group.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only: no progress")
        quiet = ("quiet", True)
    else:
        group.add_argument("-q", dest=own.dest, action="store_const", const=own.const, default=own.default,
                           help="short for --quiet; also warnings and errors only")
        quiet = (own.dest, own.const)
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="debug messages too, each with its logger's name")
    parser.set_defaults(quiet_flag=quiet)


def verbosity(args: argparse.Namespace) -> int:
    """-1 under -q/--quiet, else the number of -v (0 when the parser had no log flags)."""
    dest, const = getattr(args, "quiet_flag", ("quiet", True))
    return -1 if getattr(args, dest, None) == const else getattr(args, "verbose", 0)


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    """--preset / --labels / --mean / --std / --size for models without our metadata."""
    group = parser.add_argument_group("models without edge-deeplab metadata")
    group.add_argument("--preset", choices=PRESETS.names(),
                       help="labels, normalisation and palette of a published model")
    group.add_argument("--labels", help="labels file, one class name per line")
    group.add_argument("--mean", type=parse_floats, help="normalisation mean in pixel units (1 or 3 values)")
    group.add_argument("--std", type=parse_floats, help="normalisation std in pixel units (1 or 3 values)")
    group.add_argument("--size", type=parse_size, help="model input size HxW (for dynamic-size models)")


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """--runtime / --threads / --device / --trust-model."""
    from edge_deeplab.runtimes import RUNTIMES

    parser.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES.names()],
                        help="engine (default: chosen by the model file)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the engine")
    parser.add_argument("--device", default=None, help="engine device (CPU, GPU, NPU, AUTO, cuda, ...)")
    parser.add_argument("--trust-model", action="store_true",
                        help="open a TensorFlow SavedModel folder (its graph can read and write files: "
                             "only for models from a source you trust)")


def open_segmenter(args: argparse.Namespace, model: Optional[str] = None, **segmenter_options):
    """Open MODEL (a run folder or an artifact) with the runtime flags as a Segmenter.

    `segmenter_options` go to Segmenter (e.g. upsample="labels" for real-time use).
    """
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    options = {"threads": getattr(args, "threads", None), "device": getattr(args, "device", None),
               "trust_model": getattr(args, "trust_model", False)}
    runtime = load_runtime(model or args.model, backend=getattr(args, "runtime", "auto"), **options)
    try:
        return Segmenter(
            runtime,
            preset=getattr(args, "preset", None),
            labels=getattr(args, "labels", None),
            mean=getattr(args, "mean", None),
            std=getattr(args, "std", None),
            size=getattr(args, "size", None),
            **segmenter_options,
        )
    except Exception:
        runtime.close()
        raise

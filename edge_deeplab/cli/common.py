"""Arguments and helpers shared by the subcommands that take a MODEL."""

from __future__ import annotations

import argparse
from typing import Optional, Tuple

from ..errors import InvalidInputError
from ..presets import PRESETS


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
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_list(text: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


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
    """--runtime / --threads / --device."""
    from edge_deeplab.runtimes import RUNTIMES

    parser.add_argument("--runtime", default="auto", choices=["auto", *RUNTIMES.names()],
                        help="engine (default: chosen by the model file)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the engine")
    parser.add_argument("--device", default=None, help="engine device (CPU, GPU, NPU, AUTO, cuda, ...)")


def open_segmenter(args: argparse.Namespace, model: Optional[str] = None, **segmenter_options):
    """Open MODEL (a run folder or an artifact) with the runtime flags as a Segmenter.

    `segmenter_options` go to Segmenter (e.g. upsample="labels" for real-time use).
    """
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    if getattr(args, "threads", None) is not None and args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    options = {"threads": getattr(args, "threads", None), "device": getattr(args, "device", None)}
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

"""Arguments and helpers shared by the subcommands that take a MODEL."""

from __future__ import annotations

import argparse
from typing import Optional

from ..errors import InvalidInputError
from ..options import parse_floats, parse_size
from ..presets import PRESETS


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

"""The Jetson demo's defaults (`python -m edge_deeplab.cli.jetson MODEL`, docs/jetson.md).

The same flags as the webcam demo, with Jetson defaults: the CSI camera `csi://0`, and the
GPU: a TensorRT engine (.engine/.plan) runs on TensorRT; an .onnx model runs on ONNX
Runtime's TensorRT execution provider in FP16 (engines cached beside the model). Also
reads the power mode and clock state, which `--stats` records (None off a Jetson).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_deeplab.errors import InvalidInputError

from .jetson_power import is_jetson, power_state  # noqa: F401  (part of this module's API)


def jetson_defaults(args: argparse.Namespace) -> None:
    """Pick the GPU engine for MODEL unless --runtime/--device say otherwise.

    The engine is the first registered one that opens MODEL's suffix and has a Jetson GPU
    path (`Runtime.jetson_options`).
    """
    from edge_deeplab.runtimes import RUNTIMES

    if args.runtime != "auto" or args.device is not None:
        return
    model = Path(args.model)
    for name, cls in RUNTIMES.items():
        options = cls.jetson_options(model) if model.suffix.lower() in cls.suffixes else None
        if options is not None:
            args.runtime = name
            args.device = options.get("device", args.device)
            return
    raise InvalidInputError(
        f"{args.model}: the Jetson demo runs a TensorRT engine or an .onnx model; "
        "build one with `edge-deeplab convert MODEL --to tensorrt --precision fp16` "
        "(or pass --runtime to run it anyway)"
    )

"""Building a serialized TensorRT engine, weakly or strongly typed, from what the bindings offer.

TensorRT 10 (JetPack 6's 10.3, 10.16 on desktops) builds weakly typed networks: the fp32
ONNX plus builder flags (FP16; INT8 with an entropy calibrator), TensorRT choosing each
layer's precision. TensorRT 11 removed those flags and the calibrator: every network is
strongly typed, its precision declared by the ONNX (`tensorrt_onnx.py`). `typing_for`
picks by what the installed module has, not by its version string;
`EDGE_DEEPLAB_TENSORRT_TYPING=strong` asks for the strongly typed build on TensorRT 10 too.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from edge_deeplab.errors import ConversionError, first_line

TYPING_ENV = "EDGE_DEEPLAB_TENSORRT_TYPING"
TYPINGS = ("auto", "weak", "strong")
CUDA_PAIR_HINT = (
    "no NVIDIA driver, or one older than this TensorRT's CUDA (TensorRT 11 and cuda-python 13 "
    "from plain pip are CUDA 13 builds, driver R580+; `pip install 'edge-deeplab[tensorrt]'` "
    "installs the CUDA 12 pair)"
)


def has_weak_typing(trt, precision: str) -> bool:
    """Whether these bindings still have the builder flags (and calibrator) `precision` needs."""
    flags = getattr(trt, "BuilderFlag", None)
    if not hasattr(flags, "FP16"):
        return False
    return precision != "int8" or (hasattr(flags, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2"))


def typing_for(trt, precision: str) -> str:
    """ "weak" or "strong": weak where the bindings have it, unless the environment says strong."""
    wanted = os.environ.get(TYPING_ENV, "auto").strip().lower() or "auto"
    if wanted not in TYPINGS:
        raise ConversionError(f"{TYPING_ENV} must be one of {', '.join(TYPINGS)}; got {wanted!r}")
    weak = has_weak_typing(trt, precision)
    if wanted == "weak" and not weak:
        raise ConversionError(
            f"TensorRT {trt.__version__} has no weakly typed {precision} builds (removed in TensorRT 11); "
            f"unset {TYPING_ENV}"
        )
    return "weak" if weak and wanted != "strong" else "strong"


def network_flags(trt, typing: str) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if int(trt.__version__.split(".")[0]) < 10:  # TensorRT 8 (JetPack 5) defaults to implicit batch
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if typing == "strong" and hasattr(creation, "STRONGLY_TYPED"):  # kept, and ignored, by 11
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def new_builder(trt, logger):
    """trt.Builder, or a ConversionError saying why one cannot start."""
    try:
        builder = trt.Builder(logger)
    except (TypeError, RuntimeError) as exc:  # pybind11: "factory function returned nullptr"
        raise ConversionError(f"TensorRT cannot start a builder ({first_line(exc)}): {CUDA_PAIR_HINT}") from None
    if builder is None:
        raise ConversionError(f"TensorRT cannot start a builder: {CUDA_PAIR_HINT}")
    return builder


def build_engine(
    trt,
    onnx_bytes: bytes,
    precision: str,
    typing: str,
    calibrator=None,
    progress: Optional[Callable[[str], None]] = None,
) -> bytes:
    """Parse the ONNX and build a serialized engine.

    weak: FP16 flag (and INT8 with `calibrator`) on the fp32 ONNX; strong: the ONNX's own
    types (an fp16 or a Q/DQ int8 ONNX), no precision flags.
    """
    logger = trt.Logger(trt.Logger.WARNING)
    builder = new_builder(trt, logger)
    network = builder.create_network(network_flags(trt, typing))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT cannot parse the ONNX export: {errors}")
    config = builder.create_builder_config()
    if typing == "weak":
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
    if progress is not None and hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = progress_monitor(trt, progress)
    data = builder.build_serialized_network(network, config)
    if data is None:
        raise ConversionError(f"TensorRT could not build a {precision} engine (see its log above)")
    return bytes(data)


def progress_monitor(trt, say: Callable[[str], None]):
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            super().__init__()

        def phase_start(self, phase_name, parent_phase, num_steps):
            say(f"  TensorRT: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # keep building

        def phase_finish(self, phase_name):
            pass

    return Monitor()

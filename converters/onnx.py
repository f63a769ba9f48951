"""ONNX: fp32 through tf2onnx, int8 (QDQ, per-channel) through onnxruntime static quantization.

Opset 17: tf2onnx tests 14-18, and 17 is the newest that TensorRT 8.6 (JetPack 5) parses.
The int8 model is quantised from the fp32 export with the same calibration images as
every other target: U8 activations, S8 per-channel weights, QDQ format (onnxruntime's
advice for CPUs; VNNI CPUs need no reduce_range).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError
from edge_deeplab.metadata import ArtifactMetadata

from .artifact_metadata import embed_onnx_metadata
from .base import CONVERTERS, ConversionJob, Converter, Variant
from .savedmodel import INPUT_NAME

OPSET = 17


def export_onnx(job: ConversionJob, variant: Variant, path: Path) -> Path:
    """Export the SavedModel of `variant` to an fp32 ONNX file at `path`.

    Contract: input "image" float32 (1, H, W, 3); output "scores" float32 (1, H', W', C) or
    "labels" uint8 (1, H', W').
    """
    tf2onnx = deps._import("tf2onnx", "tf2onnx", "onnx", "ONNX export")
    saved_model = str(job.saved_model(variant))
    job.progress(f"  tf2onnx: opset {OPSET} ({variant.head}, {variant.resolution} resolution)")
    try:
        # The Python API of `python -m tf2onnx.convert --saved-model`.
        graph_def, inputs, outputs, _tables, renames = tf2onnx.tf_loader.from_saved_model(
            saved_model,
            None,
            None,
            signatures=["serving_default"],
            return_initialized_tables=True,
            return_tensors_to_rename=True,
        )
        tf2onnx.convert.from_graph_def(
            graph_def,
            name="edge_deeplab",
            input_names=inputs,
            output_names=outputs,
            opset=OPSET,
            tensors_to_rename=renames,
            output_path=str(path),
        )
    except Exception as exc:  # tf2onnx raises anything from ValueError to its own errors
        raise ConversionError(f"tf2onnx failed: {_first_line(exc)}") from exc
    return path


@CONVERTERS.register("onnx")
class ONNXConverter(Converter):
    """ONNX models for onnxruntime (and TensorRT's parser)."""

    name = "onnx"
    suffix = ".onnx"
    precisions = ("fp32", "int8")
    extra = "onnx"
    requires = (
        ("tensorflow", "train"),
        ("tf2onnx", "onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnx"),
    )
    runtime = "onnxruntime"

    def convert(self, job: ConversionJob, precision: str, variant: Variant, dest: Path) -> None:
        fp32 = job.onnx_model(variant)
        if precision == "fp32":
            dest.write_bytes(Path(fp32).read_bytes())
            return
        quantize_onnx_int8(job, fp32, dest)

    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        embed_onnx_metadata(path, meta)


def quantize_onnx_int8(job: ConversionJob, fp32: Path, dest: Path) -> None:
    """Static QDQ quantisation of `fp32` into `dest` with the job's calibration images."""
    deps.onnxruntime("ONNX int8 quantization")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = job.calibration()
    tick = job.progress.count("calibrating (onnxruntime)", len(batches))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.index = 0

        def get_next(self):
            if self.index >= len(batches):
                return None
            self.index += 1
            tick(self.index)
            return {INPUT_NAME: batches[self.index - 1 : self.index]}

        def rewind(self):
            self.index = 0

    prepared = dest.with_name(dest.stem + ".prep.onnx")
    try:
        # Symbolic shape inference needs sympy, which onnxruntime does not depend on; the
        # shapes here are static, so ONNX's own inference is enough.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=not deps.available("sympy"))
        quantize_static(
            str(prepared),
            str(dest),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=_needs_reduce_range(),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"onnxruntime quantization failed: {_first_line(exc)}") from exc
    finally:
        if prepared.exists():
            os.unlink(prepared)


def _needs_reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI, where u8s8 products can saturate."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "vnni" not in flags


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["ONNXConverter", "export_onnx", "quantize_onnx_int8", "OPSET"]

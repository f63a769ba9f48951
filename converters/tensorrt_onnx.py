"""The ONNX a strongly typed TensorRT build takes: the precision is in the graph itself.

TensorRT 11 removed the FP16/INT8 builder flags: a network runs in the types its ONNX
declares. INT8 therefore comes from a Q/DQ ONNX quantised with our calibration images
(onnxruntime's static quantizer, symmetric S8 with zero point 0 and per-channel weights,
float biases: what TensorRT's explicit quantization accepts), and FP16 from the fp32
export with its weights and compute in float16 but its input and output kept float32, so
the Segmenter feeds and reads the engine exactly as the fp32 one.
"""

from __future__ import annotations

from pathlib import Path

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line

from .job import ConversionJob, HeadPlacement
from .onnx import quantize_onnx_int8


def strongly_typed_onnx(job: ConversionJob, placement: HeadPlacement, precision: str) -> Path:
    """The fp16 or Q/DQ int8 ONNX of `placement` for a strongly typed TensorRT build."""
    fp32 = Path(job.onnx_model(placement))
    dest = job.workdir / f"tensorrt_{precision}_{placement.head}_{placement.resolution}.onnx"
    if precision == "fp16":
        job.progress("  TensorRT: fp16 ONNX (float32 input and output)")
        fp16_onnx(fp32, dest)
    else:
        job.progress("  TensorRT: symmetric int8 Q/DQ ONNX")
        quantize_onnx_int8(job, fp32, dest, symmetric=True)
    return dest


def fp16_onnx(fp32: Path, dest: Path) -> Path:
    """`fp32` with float16 weights and compute, float32 input and output, at `dest`."""
    onnx = deps.optional("onnx", "onnx", "the fp16 ONNX for TensorRT")
    deps.onnxruntime("the fp16 ONNX for TensorRT")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"fp16 ONNX conversion failed: {first_line(exc)}") from exc
    onnx.save(model, str(dest))
    return dest

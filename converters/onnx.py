"""ONNX: fp32 through tf2onnx, int8 (QDQ, per-channel) through onnxruntime static quantization.

The fp32 model is the job's ONNX export (`job.py`); the int8 model is quantised
from it with the same calibration images as every other target: U8 activations, S8
per-channel weights, QDQ format (onnxruntime's advice for CPUs; VNNI CPUs need no
reduce_range). int8-mixed: the same int8 with the fewest layers left in float that hold the
mIoU budget (`onnx_mixed.py`); int8-mixed16: the same search, the chosen layers in 16 bits
(U16 activations, S16 weights) instead of float. With io_dtype "pixels" (the default) the int8 model takes
uint8 RGB pixels: Cast, Sub(mean) and Mul(1 / std) go in front of the fp32 graph before it
is quantised, and stay float, so the graph normalises as the host would before the first
quantisation.

int16x8: the same QDQ quantisation with 16-bit activations (U16, asymmetric like the U8 of
int8) and S8 per-channel weights, from the float-input export (float32 in and out).
onnxruntime's quantizer moves such a model to opset 21, the first whose QuantizeLinear /
DequantizeLinear take 16-bit types (no com.microsoft contrib ops needed). Its CPU provider
has no 16-bit integer kernels: the Q/DQ pairs run around float operators, so it is about as
slow as fp32 or slower (the report's latency column shows it); it measures what 16-bit
activations keep, and feeds engines that have such kernels.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import List, Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runtimes import model_api_info, onnx_metadata

from .base import CONVERTERS, Converter
from .job import ConversionJob, HeadPlacement
from .quant_settings import CALIBRATED
from .savedmodel import INPUT_NAME


@CONVERTERS.register
class ONNXConverter(Converter):
    """ONNX models for onnxruntime (and TensorRT's parser)."""

    name = "onnx"
    suffix = ".onnx"
    precisions = ("fp32", "int8", "int16x8", "int8-mixed", "int8-mixed16")
    extra = "onnx"
    requires = (
        ("tensorflow", "train"),
        ("tf2onnx", "onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnx"),
    )
    runtime = "onnxruntime"
    client = "OpenVINO model_api"
    libraries = ("onnx", "tf2onnx")
    quickstart = ("fp32",)
    pixel_input = True
    order = 30
    # min/max the default by measurement (CamVid val): percentile lost 0.91 points, entropy 0.79
    # with fence 8 points down, min/max 0.81 with fence 4.25 (benchmarks/results/quant_recovery.json)
    calib_methods = ("minmax", "percentile", "entropy")
    notes = {
        "int16x8": "no 16-bit kernels in onnxruntime's CPU provider: Q/DQ around float operators",
        "int8-mixed16": "int8 with the fewest layers in 16 bits (activations and weights) that hold the "
                        "budget; those run as Q/DQ around float operators",
    }

    def convert(
        self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path
    ) -> Optional[dict]:
        fp32 = job.onnx_model(placement)
        record = None  # int8-mixed's search record
        if precision == "fp32":
            dest.write_bytes(Path(fp32).read_bytes())
        elif precision == "int8-mixed":
            from .onnx_mixed import convert_mixed

            def quantize(out: Path, exclude) -> None:
                quantize_onnx_int8(job, fp32, out, exclude=exclude)

            record = convert_mixed(job, placement, fp32, dest, quantize)
        elif precision == "int8-mixed16":
            from .onnx_mixed import convert_mixed

            def quantize16(out: Path, tensors) -> None:
                quantize_onnx_int8(job, fp32, out, sixteen_bit=tensors)

            record = convert_mixed(job, placement, fp32, dest, quantize16, sixteen_bit=True)
        elif precision == "int16x8":
            quantize_onnx_int8(job, fp32, dest, int16_activations=True)
        elif self.takes_pixels(job, precision, placement):
            # model_api feeds ONNX float32 only: logits artifacts take the pixels as floats.
            quantize_pixel_int8(job, fp32, dest, np.float32 if placement.head == "logits" else np.uint8)
        else:
            quantize_onnx_int8(job, fp32, dest)
        if placement.head == "logits":  # what model_api_info.client_ready reads right
            with_planar_io(dest)
        return record

    def layer_sqnr(self, path: Path, precision: str, inputs):
        """onnxruntime's qdq_loss_debug on the QDQ artifact (every calibrated precision: int8,
        int16x8 and the mixed ones)."""
        if precision not in CALIBRATED:
            return None
        from edge_deeplab.converters.quant_debug import onnx_layer_sqnr

        return "onnxruntime qdq_loss_debug (qdq_err)", onnx_layer_sqnr(path, inputs.artifact_batches)

    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        """Ours and model_api's `metadata_props` (`onnx_metadata`, which the runtime reads)."""
        onnx_metadata.embed(path, meta)

    def client_ready(self, meta: ArtifactMetadata) -> bool:
        return model_api_info.client_ready(meta)


def with_planar_io(path: Path) -> None:
    """model_api's layout: NCHW input transposed to the graph's NHWC, and the NHWC scores
    transposed to NCHW (in place, after any quantisation: both Transposes stay float)."""
    onnx = deps.optional("onnx", "onnx", "ONNX input and output layout")
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    image, scores = graph.input[0], graph.output[0]
    for node in graph.node:
        node.input[:] = [image.name + "_nhwc" if name == image.name else name for name in node.input]
        node.output[:] = [scores.name + "_nhwc" if name == scores.name else name for name in node.output]
    graph.node.insert(0, helper.make_node("Transpose", [image.name], [image.name + "_nhwc"], perm=[0, 2, 3, 1],
                                          name="image_nhwc"))
    graph.node.append(helper.make_node("Transpose", [scores.name + "_nhwc"], [scores.name], perm=[0, 3, 1, 2],
                                       name="scores_nchw"))
    for value, order in ((image, (0, 3, 1, 2)), (scores, (0, 3, 1, 2))):
        dims = value.type.tensor_type.shape.dim
        planar = [onnx.TensorShapeProto.Dimension() for _ in order]
        for new, old in zip(planar, order):
            new.CopyFrom(dims[old])
        del dims[:]
        dims.extend(planar)
    onnx.save(model, str(path))


# The normalisation nodes stay float: quantising the centred pixels too would round twice.
PIXEL_NODES = ("pixel_cast", "pixel_sub", "pixel_mul")


def with_pixel_input(fp32: Path, meta: ArtifactMetadata, dest: Path, dtype=np.uint8) -> Path:
    """`fp32` with a pixel input (values 0..255 in `dtype`) normalised in the graph
    ((p - mean) / std), at `dest`."""
    onnx = deps.optional("onnx", "onnx", "ONNX pixel input")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    image = graph.input[0]
    normalised = INPUT_NAME + "_normalised"
    for node in graph.node:
        node.input[:] = [normalised if name == image.name else name for name in node.input]
    mean = numpy_helper.from_array(np.asarray(meta.mean, np.float32).reshape(1, 1, 1, 3), "pixel_mean")
    inv_std = numpy_helper.from_array(
        (np.float32(1.0) / np.asarray(meta.std, np.float32)).reshape(1, 1, 1, 3), "pixel_inv_std"
    )
    graph.initializer.extend([mean, inv_std])
    nodes = [
        helper.make_node("Cast", [image.name], [image.name + "_float"], to=TensorProto.FLOAT),
        helper.make_node("Sub", [image.name + "_float", "pixel_mean"], [image.name + "_centred"]),
        helper.make_node("Mul", [image.name + "_centred", "pixel_inv_std"], [normalised]),
    ]
    for index, (node, name) in enumerate(zip(nodes, PIXEL_NODES)):
        node.name = name
        graph.node.insert(index, node)
    image.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    onnx.save(model, str(dest))
    return dest


def quantize_pixel_int8(job: ConversionJob, fp32: Path, dest: Path, dtype=np.uint8) -> None:
    """int8 of `fp32` with a pixel input in `dtype` (normalisation in the graph, kept float)."""
    pixels = with_pixel_input(fp32, job.source.metadata, dest.with_name(dest.stem + ".pixels.onnx"), dtype)
    try:
        batches = job.pixel_calibration().astype(dtype)
        quantize_onnx_int8(job, pixels, dest, exclude=PIXEL_NODES, batches=batches)
    finally:
        pixels.unlink(missing_ok=True)


# TensorRT's explicit quantization: symmetric S8 everywhere, and float biases (its parser
# has no int32 DequantizeLinear; it fuses the bias into the int8 convolution itself).
TENSORRT_QDQ = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}


def quantize_onnx_int8(
    job: ConversionJob, fp32: Path, dest: Path, exclude=(), batches=None, symmetric: bool = False,
    int16_activations: bool = False, sixteen_bit=(),
) -> None:
    """Static QDQ quantisation of `fp32` into `dest` with the job's calibration images (or
    `batches`, in the model's input dtype); the nodes named in `exclude` stay float.

    symmetric: S8 activations and weights, every zero point 0 (what TensorRT's explicit
    quantization accepts), instead of the U8 activations CPUs run fastest.
    int16_activations: U16 activations (int16x8; the quantizer moves the model to opset 21).
    sixteen_bit: activation tensors quantized to U16 while the rest stay U8 (int8-mixed16:
    onnxruntime's TensorQuantOverrides; opset 21 too)."""
    deps.onnxruntime("ONNX int8 quantization")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = job.calibration() if batches is None else batches
    prepared = dest.with_name(dest.stem + ".prep.onnx")
    ranges = dest.with_name(dest.stem + ".ranges.json")
    method = _CALIBRATION[job.quant.method_for(ONNXConverter)](CalibrationMethod)
    try:
        # Symbolic shape inference needs sympy, which onnxruntime does not depend on; the
        # shapes here are static, so ONNX's own inference is enough.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=not deps.available("sympy"))
        _calibrate(prepared, batches, method, ranges, job.progress.count("calibrating (onnxruntime)", len(batches)))
        quantize_static(
            str(prepared),
            str(dest),
            None,  # the ranges come from the calibration cache `_calibrate` wrote
            quant_format=QuantFormat.QDQ,
            per_channel=job.quant.per_channel,
            calibrate_method=method,
            calibration_cache_path=str(ranges),
            # 7-bit weights only guard u8s8 integer kernels, which 16-bit activations never reach.
            reduce_range=not symmetric and not int16_activations and _needs_reduce_range(),
            activation_type=_activation_type(QuantType, symmetric, int16_activations),
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            extra_options=_extra_options(QuantType, symmetric, sixteen_bit, prepared),
        )
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"onnxruntime quantization failed: {first_line(exc)}") from exc
    finally:
        for path in (prepared, ranges):
            if path.exists():
                os.unlink(path)


# Images per `collect_data` call. onnxruntime's calibrators keep every intermediate output of
# the images of one call (all ~120 activations of each): 200 CamVid images at 360x480 in one
# call took the percentile calibrator past 24 GB and the kernel killed the conversion. Each call
# merges its images into the running min/max or histograms and frees them.
CALIB_CHUNK = 8
# onnxruntime's entropy calibrator with more histogram bins than quantized ones: quantize_static
# makes it with 128 of each, where the only threshold it can choose is the whole histogram
# (its int8 came out identical to min/max's, every scale of the tiny model). 2048 bins, as
# TensorRT's entropy calibrator and onnxruntime's own percentile one use.
ENTROPY_BINS = 2048


def _calibrate(prepared: Path, batches: np.ndarray, method, dest: Path, tick) -> None:
    """The activation ranges of `prepared` on `batches` by `method`, saved at `dest` (the
    calibration cache quantize_static reads), CALIB_CHUNK images at a time."""
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    class Chunk(CalibrationDataReader):
        def __init__(self, start: int):
            self.index, self.end = start, min(start + CALIB_CHUNK, len(batches))

        def get_next(self):
            if self.index >= self.end:
                return None
            self.index += 1
            tick(self.index)
            return {INPUT_NAME: batches[self.index - 1 : self.index]}

    options = {"num_bins": ENTROPY_BINS, "num_quantized_bins": 128} if method == CalibrationMethod.Entropy else {}
    with tempfile.TemporaryDirectory(prefix="calibrate-", dir=dest.parent) as work:
        calibrator = create_calibrator(prepared, None, augmented_model_path=str(Path(work) / "augmented.onnx"),
                                       calibrate_method=method, extra_options=options)
        for start in range(0, len(batches), CALIB_CHUNK):
            calibrator.collect_data(Chunk(start))
        save_tensors_data(calibrator.compute_data(), dest)


# Our method names (`quant_settings`) as onnxruntime's CalibrationMethod.
_CALIBRATION = {
    "minmax": lambda methods: methods.MinMax,
    "percentile": lambda methods: methods.Percentile,  # 99.999% of the values by default
    "entropy": lambda methods: methods.Entropy,
}


def _extra_options(types, symmetric: bool, sixteen_bit, prepared: Path) -> Optional[dict]:
    """TensorRT's symmetric Q/DQ, or int8-mixed16's overrides: U16 for the activations named
    and S16 for the weights of the layers that make them (what int8 loses in a layer can sit in
    its weights: 16-bit activations alone kept the CamVid model's loss)."""
    if symmetric:
        return TENSORRT_QDQ
    if sixteen_bit:
        overrides = {name: [{"quant_type": types.QUInt16}] for name in sixteen_bit}
        overrides.update({name: [{"quant_type": types.QInt16}] for name in _weights_of(prepared, sixteen_bit)})
        return {"TensorQuantOverrides": overrides}
    return None


def _weights_of(path: Path, tensors) -> List[str]:
    """The convolution weights (4-D initializers) that make `tensors` in the model at `path`:
    of each tensor's producer, or through the activation (Relu, Clip) that follows a convolution."""
    import onnx

    model = onnx.load(str(path))
    weights = {init.name for init in model.graph.initializer if len(init.dims) == 4}
    producer = {out: node for node in model.graph.node for out in node.output}
    found: List[str] = []
    for tensor in tensors:
        node = producer.get(tensor)
        while node is not None and node.op_type in ("Relu", "Clip", "LeakyRelu"):
            node = producer.get(node.input[0])
        found += [name for name in (node.input if node is not None else ()) if name in weights]
    return found


def _activation_type(types, symmetric: bool, int16_activations: bool):
    """onnxruntime's QuantType of the activations: U16 for int16x8, S8 symmetric, else U8."""
    if int16_activations:
        return types.QUInt16
    return types.QInt8 if symmetric else types.QUInt8


def _needs_reduce_range() -> bool:
    """7-bit weights on x86 CPUs without VNNI, where u8s8 products can saturate."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "vnni" not in flags


__all__ = ["ONNXConverter", "quantize_onnx_int8"]

"""TFLite (LiteRT) through the TensorFlow Lite converter, from the SavedModel export.

- fp32: plain conversion.
- fp16: weights stored as float16 (the CPU computes in float32; GPU delegates in fp16).
- dynamic: int8 weights, float activations (dynamic-range quantization).
- int8-mixed: int8 with the fewest layers kept in float that hold the mIoU budget on the
  validation images (`tflite_mixed.py`); float32 input/output.
- int8: full integer with per-channel weights, calibrated on the shared calibration
  images; by default uint8 RGB pixels in (scale 1, zero point 0) with the normalisation
  in the graph (`io_dtype` "pixels"), else input/output int8, uint8 or float32. Every op of this network
  (MEAN, RESIZE_BILINEAR, SPACE/BATCH_TO_SPACE_ND, ARG_MAX) has an int8 kernel, so the
  converter is told to allow builtin int8 ops only and fails loudly otherwise.
- int16x8: 16-bit activations, 8-bit per-channel weights (LiteRT's 16x8 mode,
  `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`), calibrated on the same
  images as int8; float32 input/output (its int16 tensors are symmetric, zero point 0, so raw
  pixels cannot go in with scale 1). An op without a 16x8 kernel (ARG_MAX, the argmax
  head) stays float behind a DEQUANTIZE, and the artifact is checked for int16 activations
  (a 16x8 setting silently ignored gives a float model). XNNPACK has no 16x8 kernels: it runs
  on LiteRT's reference kernels, ~50x slower than int8 or fp32 on the tiny model (the report's
  latency column shows it); use it where int8 loses too much and the latency allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runtimes import tflite_metadata

from .base import CONVERTERS, Converter
from .job import ConversionJob, HeadPlacement


@CONVERTERS.register
class TFLiteConverter(Converter):
    """.tflite flatbuffers for LiteRT (ai-edge-litert), with metadata as an associated file."""

    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "dynamic", "int8", "int16x8", "int8-mixed")
    extra = "train"  # the converter lives in TensorFlow
    requires = (("tensorflow", "train"),)
    runtime = "tflite"
    libraries = ("tensorflow",)
    quickstart = ("int8",)
    pixel_input = True
    client = "MediaPipe ImageSegmenter"
    order = 10
    calib_methods = ("minmax",)  # the converter's calibrator has no other
    notes = {
        "int16x8": "LiteRT reference kernels (XNNPACK has no 16x8): ~50x slower than int8 (tiny model)",
        "int8-mixed16": "not made: the LiteRT converter's 16x8 mode is whole-model (no per-layer 16 bits)",
    }

    def convert(
        self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path
    ) -> Optional[dict]:
        if precision == "int8-mixed":
            from .tflite_mixed import convert_mixed

            return convert_mixed(job, placement, dest)
        tf = deps.tensorflow()
        pixels = self.takes_pixels(job, precision, placement)
        saved = job.saved_model(placement, pixels, label_dtype=tflite_metadata.CLASS_MAP_DTYPE)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            _full_integer(converter, job, placement, pixels)
        elif precision == "int16x8":
            _int16_activations(converter, job)
        job.progress(f"  TFLite converter: {precision}")
        try:
            content = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError
            raise ConversionError(
                f"TFLite converter ({precision}) failed: {first_line(exc, prefer='error')}"
            ) from exc
        if pixels:
            check_pixel_input(content)
        if precision == "int16x8":
            check_int16_activations(content)
        dest.write_bytes(content)
        return None

    def layer_sqnr(self, path: Path, precision: str, inputs):
        """LiteRT's quantization debugger, on the SavedModel this int8 artifact is made from
        (int8 only: int8-mixed keeps layers in float the debugger would quantize, and the
        debugger quantizes in int8 only, so it cannot see an int16x8 artifact's error)."""
        if precision != "int8":
            return None
        from edge_deeplab.converters.quant_debug import tflite_layer_sqnr

        tf = deps.tensorflow("the TFLite quantization debugger")
        saved = inputs.saved_model()

        def factory(dataset):
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            return converter

        return "LiteRT QuantizationDebugger (layer_direct_compare_metrics)", tflite_layer_sqnr(
            factory, inputs.float_batches
        )

    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        """TFLite Metadata for MediaPipe / LiteRT, and our JSON and the labels appended."""
        path = Path(path)
        path.write_bytes(tflite_metadata.embed(path.read_bytes(), meta))

    def client_ready(self, meta: ArtifactMetadata) -> bool:
        return tflite_metadata.client_ready(meta)


def _full_integer(converter, job: ConversionJob, placement: HeadPlacement, pixels: bool) -> None:
    """Configure full-integer quantization with the job's calibration images; `pixels`: the
    model takes uint8 pixels (`Converter.takes_pixels`, the one test of it)."""
    tf = deps.tensorflow()
    batches = job.pixel_calibration() if pixels else job.calibration()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(job, batches, "calibrating (TFLite)")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_disable_per_channel = not job.quant.per_channel  # the converter's own switch
    io = {"pixels": tf.uint8, "int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[job.io_dtype]
    converter.inference_input_type = io
    if placement.head == "logits":  # an argmax head already returns an int64 class map
        converter.inference_output_type = tf.int8 if pixels else io


def _int16_activations(converter, job: ConversionJob) -> None:
    """Configure LiteRT's 16x8 mode (int16 activations, int8 weights) with the job's
    calibration images; input and output stay float32."""
    tf = deps.tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(job, job.calibration(), "calibrating (TFLite 16x8)")
    converter._experimental_disable_per_channel = not job.quant.per_channel
    # LiteRT has no 16x8 ARG_MAX (the argmax head): with the float builtins allowed, an op
    # without a 16x8 kernel runs in float behind a DEQUANTIZE (LiteRT's documented fallback);
    # `check_int16_activations` proves the rest went to 16 bits.
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]


def _representative_dataset(job: ConversionJob, batches: np.ndarray, what: str):
    """The converter's representative dataset: `batches` one image at a time, as float32."""
    tick = job.progress.count(what, len(batches))

    def representative_dataset():
        for index in range(len(batches)):
            tick(index + 1)
            yield [batches[index : index + 1].astype(np.float32, copy=False)]  # the SavedModel's input

    return representative_dataset


def int16_activation_tensors(content: bytes) -> int:
    """How many int16 tensors the TFLite model in `content` holds (its activations in 16x8 mode)."""
    from edge_deeplab.runtimes.tflite_runtime import interpreter_module

    details = interpreter_module().Interpreter(model_content=content).get_tensor_details()
    return sum(1 for tensor in details if tensor["dtype"] == np.int16)


def check_int16_activations(content: bytes) -> None:
    """A 16x8 model must compute in int16: a converter that ignored the setting (LiteRT
    converters have) returns a float model, which would pass parity under the wrong name."""
    if int16_activation_tensors(content) == 0:
        raise ConversionError("TFLite int16x8: the converted model holds no int16 tensor (16x8 mode not applied)")


def check_pixel_input(content: bytes) -> None:
    """A pixel-input model must take uint8 with scale 1, zero point 0 (raw pixels)."""
    from edge_deeplab.runtimes.tflite_runtime import interpreter_module

    details = interpreter_module().Interpreter(model_content=content).get_input_details()[0]
    scale, zero_point = details["quantization"]
    if details["dtype"] != np.uint8 or scale != 1.0 or zero_point != 0:
        raise ConversionError(
            f"pixel-input TFLite model takes {np.dtype(details['dtype'])} with scale {scale}, "
            f"zero point {zero_point}; expected uint8 with scale 1, zero point 0"
        )

"""OpenVINO IR through `openvino.convert_model` from the ONNX export.

The ONNX export, not the SavedModel, is the source: NNCF int8 made from the IR that
OpenVINO converts from the SavedModel agreed with Keras on 84% of pixels (tiny model,
64x64), the one made from the IR converted from the ONNX export on 96.7% (float: both exact).

- FP32: weights kept in float32 (`compress_to_fp16=False`; OpenVINO compresses by default).
- FP16: weights compressed to float16 (the CPU plugin still computes in fp32 or bf16).
- INT8: `nncf.quantize` on the float OpenVINO model with the shared calibration images;
  with io_dtype "pixels" (the default) the quantized model then gets OpenVINO's own
  preprocessing (`PrePostProcessor`): u8 NHWC pixels in, converted to f32, mean
  subtracted and divided by std in the graph, where the CPU plugin fuses it with the
  first quantization; the host only resizes.
- INT8-MIXED: NNCF's accuracy control keeps the mIoU drop within the budget (`nncf_budget.py`).
  Never from an int8 .tflite: OpenVINO reads those but its int8 dilated convolutions come
  out 123-160 quantization steps off (15% agreement, ../shared/PITFALLS.md).
- No int16x8: NNCF's quantization of OpenVINO models for the CPU has 8-bit (and FP8)
  modes only, no 16-bit activations; the other targets make it.

The IR is a pair: `model_<p>.xml` (graph, metadata in rt_info) and `model_<p>.bin`
(weights); the .bin is renamed into place first so a visible .xml always has its weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line
from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.runtimes import openvino_metadata

from .base import CONVERTERS, Converter
from .job import ConversionJob, HeadPlacement
from .nncf_budget import DEFAULT_RANGE_METHOD, RANGE_ESTIMATORS, nncf_settings, quantize_within_budget


@CONVERTERS.register
class OpenVINOConverter(Converter):
    """OpenVINO IR (.xml + .bin) for the OpenVINO runtime."""

    name = "openvino"
    suffix = ".xml"
    precisions = ("fp32", "fp16", "int8", "int8-mixed")
    extra = "openvino"
    requires = (
        ("tensorflow", "train"),
        ("tf2onnx", "onnx"),
        ("onnx", "onnx"),
        ("openvino", "openvino"),
        ("nncf", "openvino"),
    )
    runtime = "openvino"
    libraries = ("openvino", "nncf")
    quickstart = ("fp32", "int8")
    pixel_input = True
    client = "OpenVINO model_api"
    # int8-mixed too: NNCF searches the normalised model and the PrePostProcessor goes on
    # afterwards, float arithmetic in front of the first FakeQuantize: the same maps.
    pixel_precisions = ("int8", "int8-mixed")
    order = 40
    calib_methods = tuple(RANGE_ESTIMATORS)
    default_calib_method = DEFAULT_RANGE_METHOD
    bias_correction = True
    # INT8 hands float logits at the feature resolution to the host, which upsamples them and
    # takes the argmax (model_api's SegmentationModel reads them too). On the CamVid recipe's
    # model (val, 360x480; benchmarks/results/openvino_placement_noise.json) the in-graph
    # argmax lost signsymbol by 0.85/1.02/1.10 IoU points on 100/200/367 calibration images,
    # this placement 0.24/0.26/0.28, its mIoU 0.3 points higher; ~3 ms a frame more (the
    # host's upsample + argmax, 2 threads) against the argmax IR's 14 ms.
    default_placements = {"int8": ("logits", "feature")}
    notes = {"int16x8": "not made: NNCF's CPU quantization has no 16-bit activation mode",
             "int8-mixed16": "not made: no 16-bit activations (int8-mixed keeps layers in float instead)"}

    def files(self, path: Path) -> List[Path]:
        return [Path(path).with_suffix(".bin"), Path(path)]

    def layer_sqnr(self, path: Path, precision: str, inputs):
        """Each activation FakeQuantize of the int8 IR, its input against its output (int8 and int8-mixed)."""
        if not precision.startswith("int8"):
            return None
        from .quant_debug import openvino_layer_sqnr

        return "OpenVINO FakeQuantize in/out (f32 CPU)", openvino_layer_sqnr(path, inputs.artifact_batches)

    def convert(
        self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path
    ) -> Optional[dict]:
        ov = deps.openvino("OpenVINO conversion")
        job.progress(f"  openvino.convert_model: {precision}")
        try:
            model = ov.convert_model(str(job.onnx_model(placement)))
        except Exception as exc:  # OpenVINO raises OpConversionFailure, RuntimeError...
            raise ConversionError(f"openvino.convert_model failed: {first_line(exc)}") from exc
        record = None  # int8-mixed's search record
        if precision == "int8":
            model = _quantize(job, model)
        elif precision == "int8-mixed":
            model, record = quantize_within_budget(job, model, placement)
        _planar_argmax(model)
        if self.takes_pixels(job, precision, placement):
            model = _pixel_input(ov, model, job.source.metadata)
        if placement.head == "logits":
            model = _planar_scores(ov, model)
        # In rt_info (saved into the .xml); `embed_metadata` replaces it with the final one.
        model.set_rt_info(job.source.metadata.to_json(), METADATA_KEY)
        ov.save_model(model, str(dest), compress_to_fp16=(precision == "fp16"))
        return record

    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        """rt_info: our metadata and model_api's model_info (the .bin is left untouched)."""
        openvino_metadata.embed(path, meta)

    def client_ready(self, meta: ArtifactMetadata) -> bool:
        return openvino_metadata.client_ready(meta)


def _planar_argmax(model) -> int:
    """Run the in-graph ArgMax (a TopK over channels) on (N, C, H*W); returns how many.

    The CPU plugin keeps the full-resolution logits from the Interpolate before it in a
    channels-last layout, where TopK over C is 3x slower: on the 513x513 default model the
    TopK took 4.0 of 13.7 ms. A reshape to 3-D makes it planar: 20 -> 15.5 ms end to end,
    the class map bit-identical.
    """
    import openvino.opset13 as ops

    rewritten = 0
    for node in model.get_ordered_ops():
        shape = node.input(0).get_partial_shape() if node.get_type_name() == "TopK" else None
        if shape is None or shape.is_dynamic or len(shape) != 4 or node.get_attributes()["axis"] not in (1, -3):
            continue
        n, c, h, w = shape.to_shape()
        attrs = node.get_attributes()
        flat = ops.reshape(node.input_value(0), ops.constant(np.array([n, c, h * w], np.int64)), False)
        topk = ops.topk(flat, node.input_value(1), axis=1, mode=attrs["mode"], sort=attrs["sort"],
                        index_element_type=attrs["index_element_type"])
        for i in range(2):
            back = ops.reshape(topk.output(i), ops.constant(np.array(node.output(i).get_shape(), np.int64)), False)
            for target in list(node.output(i).get_target_inputs()):
                target.replace_source_output(back.output(0))
        rewritten += 1
    model.validate_nodes_and_infer_types()
    return rewritten


def _pixel_input(ov, model, meta: ArtifactMetadata):
    """The model with u8 RGB pixels in and its normalisation ((p - mean) / std) in the graph."""
    ppp = ov.preprocess.PrePostProcessor(model)
    layout = ov.Layout("NHWC")
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(layout)
    ppp.input().model().set_layout(layout)
    steps = ppp.input().preprocess().convert_element_type(ov.Type.f32)
    steps.mean(list(meta.mean)).scale(list(meta.std))
    return ppp.build()


def _planar_scores(ov, model):
    """Scores out in NCHW, the layout model_api's SegmentationModel reads (a Transpose the
    CPU plugin folds into the layout it computes in)."""
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.output().model().set_layout(ov.Layout("NHWC"))
    ppp.output().tensor().set_layout(ov.Layout(openvino_metadata.SCORES_LAYOUT))
    return ppp.build()


def _quantize(job: ConversionJob, model):
    """INT8 with NNCF post-training quantization, with the job's QuantSettings
    (`nncf_budget.nncf_settings`: per-channel weights and full bias correction by default)."""
    nncf = deps.optional("nncf", "openvino", "OpenVINO int8 quantization")

    batches = job.calibration()
    job.progress(f"  nncf.quantize: calibrating on {len(batches)} images")
    dataset = nncf.Dataset([batches[i : i + 1] for i in range(len(batches))])
    try:
        return nncf.quantize(
            model,
            dataset,
            subset_size=len(batches),
            **nncf_settings(job.quant),
        )
    except Exception as exc:  # nncf raises its own errors and RuntimeError
        raise ConversionError(f"nncf.quantize failed: {first_line(exc)}") from exc

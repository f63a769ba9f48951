"""Per-layer quantization error of an int8 artifact: SQNR in dB, from the engines' own debuggers.

Each layer's own quantization noise, not what it inherits from the layers before it:
- ONNX (QDQ): onnxruntime's `qdq_loss_debug`, every activation against its own float value
  before its QuantizeLinear/DequantizeLinear pair ("qdq_err"), on the artifact itself
  (clipped to the pair's range: see `_qdq_sqnr`).
- TFLite: LiteRT's `QuantizationDebugger` on the SavedModel and calibration images the
  converter quantizes from: each quantized op's output against the float op run on the same
  (dequantized) inputs (`layer_direct_compare_metrics`).
- OpenVINO: neither OpenVINO nor NNCF has a per-layer debugger, so the IR is its own: every
  activation FakeQuantize of the int8 IR gets its input and output as extra model outputs,
  and the CPU plugin runs it in f32 (`INFERENCE_PRECISION_HINT`), so each pair is the
  activation before and after its own quantization, as onnxruntime's "qdq_err" is. Layers
  are named by the source layer that feeds the FakeQuantize (the ONNX export's names).

SQNR = 10 log10(sum(float^2) / sum((float - quantized)^2)); higher is better, and a layer at
~20 dB or less is where int8 loses accuracy.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from edge_deeplab import deps
from edge_deeplab.data.host_input import dequantize
from edge_deeplab.errors import InvalidInputError

WORST = 10  # layers the HTML chart shows per variant


CAP_DB = 200.0  # what an exact layer (no noise at all) scores, so every layer has a finite figure


def sqnr_db(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Signal to quantization noise ratio of `quantized` against `reference`, in dB."""
    reference = np.asarray(reference, np.float64)
    noise = float(np.sum((reference - np.asarray(quantized, np.float64)) ** 2))
    return _ratio_db(float(np.sum(reference**2)), noise)


def ranked(sqnr: Dict[str, float]) -> List[dict]:
    """[{"layer", "sqnr_db"}], worst (lowest) first; non-finite values dropped."""
    finite = [(name, value) for name, value in sqnr.items() if math.isfinite(value)]
    return [{"layer": name, "sqnr_db": round(value, 3)} for name, value in sorted(finite, key=lambda kv: kv[1])]


def onnx_layer_sqnr(path: Path, batches: Sequence[np.ndarray]) -> Dict[str, float]:
    """Activation name -> SQNR (dB) of its own QDQ noise in the QDQ model at `path`."""
    matching = _onnx_matching(path, batches)
    return {name: _qdq_sqnr(np.concatenate(m["pre_qdq"]), np.concatenate(m["post_qdq"])) for name, m in
            matching.items()}


def onnx_error_entry(fp32: Path, path: Path, batches: Sequence[np.ndarray]) -> Dict[str, float]:
    """Activation name -> dB of accuracy lost where it is made: how far the QDQ model's value
    falls below the float model's (SQNR) at this activation, against the worst of the
    activations it is computed from.

    An activation's own QDQ noise (`onnx_layer_sqnr`) misses what its weights do: on the CamVid
    model the int8 loss sat in the first two depthwise convolutions (their per-channel int8
    weights shift every output the same way, which int16 activations keep and NNCF's bias
    correction removes), while their activations' noise ranked them nowhere near the top and
    the int8-mixed search kept 16 layers in float without holding the budget."""
    import onnx

    quantized = _onnx_matching(path, batches, _onnx_activations(fp32, batches))
    signal = {name: sqnr_db(np.concatenate(m["float"]), np.concatenate(m["post_qdq"]))
              for name, m in quantized.items() if "float" in m}
    producer = {out: node for node in onnx.load(str(fp32)).graph.node for out in node.output}

    def sources(tensor: str, seen: set) -> List[float]:
        """The SQNR of the nearest measured activations `tensor` is computed from (a graph
        input or weight: exact)."""
        node = producer.get(tensor)
        if node is None:
            return [math.inf]
        found: List[float] = []
        for name in node.input:
            if name in signal:
                found.append(signal[name])
            elif name and name not in seen:
                seen.add(name)
                found += sources(name, seen)
        return found or [math.inf]

    # An exact source (the image, a constant) counts as the best activation measured: the first
    # layer is charged with what it loses below that, not with the gap to infinity.
    best = max(signal.values(), default=0.0)
    return {name: min(min(sources(name, {name})), best) - value for name, value in signal.items()}


def _onnx_activations(path: Path, batches: Sequence[np.ndarray]) -> dict:
    """Every intermediate tensor of the model at `path` on `batches` (qdq_loss_debug's collection)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    from edge_deeplab.runtimes import model_api_info

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    if model_api_info.planar_in_props(session.get_modelmeta().custom_metadata_map):  # model_api's layout
        batches = [model_api_info.to_nchw(batch).astype(np.float32) for batch in batches]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: batch} for batch in batches])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="edge-deeplab-qdq-") as work:
        augmented = Path(work) / "augmented.onnx"
        modify_model_output_intermediate_tensors(str(path), str(augmented))
        return collect_activations(str(augmented), Reader())


def _onnx_matching(path: Path, batches: Sequence[np.ndarray], float_activations=None) -> dict:
    """qdq_loss_debug's matching of the QDQ model at `path`: per activation its values before
    and after its QDQ pair (and the float model's, given its activations)."""
    deps.onnxruntime("the ONNX quantization debugger")
    from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

    matching = create_activation_matching(_onnx_activations(path, batches), float_activations)
    if not matching:
        raise InvalidInputError(f"{path}: no QuantizeLinear/DequantizeLinear pairs: not a QDQ int8 model")
    return matching


def _qdq_sqnr(pre: np.ndarray, post: np.ndarray) -> float:
    """SQNR of one QDQ pair. onnxruntime folds a Relu/Relu6 into the quantization range of
    the conv before it, so `pre` is the conv's raw output: clip it to the range the pair
    reached, or the ReLU itself would count as noise (saturation at the calibrated range is
    then not counted either)."""
    return sqnr_db(np.clip(pre, post.min(), post.max()), post)


def openvino_layer_sqnr(path: Path, batches: Sequence[np.ndarray]) -> Dict[str, float]:
    """Source layer -> SQNR (dB) of the activation FakeQuantize it feeds in the int8 IR at `path`."""
    ov = deps.openvino("the OpenVINO quantization debugger")
    core = ov.Core()
    model = core.read_model(str(path))
    pairs = {_source_name(fq): fq for fq in model.get_ordered_ops() if _is_activation_quantizer(fq)}
    if not pairs:
        raise InvalidInputError(f"{path}: no activation FakeQuantize: not an int8 OpenVINO IR")
    first = len(model.outputs)
    model.add_outputs([port for fq in pairs.values() for port in (fq.input_value(0), fq.output(0))])
    if len(model.outputs) != first + 2 * len(pairs):  # a tensor already an output is not added twice
        raise InvalidInputError(f"{path}: a FakeQuantize's tensors are already model outputs")
    request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    signal, noise = np.zeros(len(pairs)), np.zeros(len(pairs))
    for batch in batches:
        found = request.infer({0: batch})
        for index in range(len(pairs)):
            pre = np.asarray(found[first + 2 * index], np.float64)
            post = np.asarray(found[first + 2 * index + 1], np.float64)
            signal[index] += float(np.sum(pre**2))
            noise[index] += float(np.sum((pre - post) ** 2))
    return {name: _ratio_db(s, n) for name, s, n in zip(pairs, signal, noise)}


def _is_activation_quantizer(op) -> bool:
    """A FakeQuantize whose input is computed (weights are Constants, or decompressed from one)."""
    if op.get_type_name() != "FakeQuantize":
        return False
    source = op.input_value(0).get_node()
    # A weight decompression chain: Constant -> Convert -> Subtract/Multiply by constants.
    while source.get_type_name() in ("Convert", "Multiply", "Subtract") and all(
            v.get_node().get_type_name() == "Constant" for v in source.input_values()[1:]):
        source = source.input_value(0).get_node()
    return source.get_type_name() != "Constant"


def _source_name(fq) -> str:
    """The layer feeding the FakeQuantize, by its source name (one FakeQuantize per tensor)."""
    return fq.input_value(0).get_node().get_friendly_name()


def _ratio_db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return CAP_DB
    return float(np.clip(10 * math.log10(max(signal, 1e-300) / noise), -CAP_DB, CAP_DB))


def tflite_layer_sqnr(converter_factory: Callable, batches: Sequence[np.ndarray]) -> Dict[str, float]:
    """Quantized op output tensor -> SQNR (dB) against float on the same inputs, averaged
    over the images."""
    tf = deps.tensorflow("the TFLite quantization debugger")

    def dataset():
        for batch in batches:
            yield [batch]

    def direct(float_values, quantized_values, scale, zero_point) -> float:
        return sqnr_db(float_values, dequantize(np.asarray(quantized_values), scale, zero_point))

    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"sqnr_db": direct})
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter_factory(dataset), debug_dataset=dataset, debug_options=options
    )
    debugger.run()
    return {name: float(stats["sqnr_db"]) for name, stats in debugger.layer_statistics.items()}


class DebugInputs:
    """What a converter's `layer_sqnr` may use: the artifact's own input batches, float
    batches of the same images, and the float model's SavedModel (exported on demand)."""

    def __init__(self, segmenter, images: Sequence[np.ndarray], model_path: Path, work: Path):
        from edge_deeplab.data.preprocessing import preprocess

        self.artifact_batches = [segmenter.preprocess([image])[0] for image in images]
        meta = segmenter.metadata
        self.float_batches = [preprocess(image, meta)[0][None].astype(np.float32) for image in images]
        self.head = meta.head
        self._model_path, self._work = Path(model_path), Path(work)

    def saved_model(self) -> Path:
        """The float model's SavedModel with the artifact's head (what the converter quantizes)."""
        from .savedmodel import export_saved_model, load_source

        folder = self._work / f"saved_model_{self.head}"
        if not folder.exists():
            export_saved_model(load_source(self._model_path).model, self.head, folder)
        return folder


def debug_variant(converter, path: Path, segmenter, images, model_path: Path) -> dict:
    """{"method", "layers": [{"layer", "sqnr_db"}] worst first} for one artifact, or
    {"method": None, "reason"} when its format has no per-layer debugger here."""
    with tempfile.TemporaryDirectory(prefix="edge-deeplab-debug-") as work:
        inputs = DebugInputs(segmenter, images, model_path, Path(work))
        found = converter.layer_sqnr(Path(path), segmenter.metadata.precision, inputs)
    if found is None:
        return {"method": None, "reason": f"no per-layer debugger for {converter.name} "
                f"{segmenter.metadata.precision} (neither the engine nor its quantizer has one)"}
    method, sqnr = found
    return {"method": method, "layers": ranked(sqnr)}


DEBUG_IMAGES = 4  # images the debuggers run: enough to rank layers, cheap at full resolution


def layer_errors(variant, path: Path, segmenter, dataset, model_path: Path) -> dict:
    """The report's per-layer SQNR of one int8 variant; a debugger that fails says why in
    the row's `quant_debug` instead of failing the row."""
    from . import CONVERTERS

    images = [dataset[i][0] for i in range(min(DEBUG_IMAGES, len(dataset)))]
    try:
        return debug_variant(CONVERTERS.get(variant.format)(), path, segmenter, images, model_path)
    except Exception as exc:  # noqa: BLE001 - engines and TF raise their own types; the row still counts
        return {"method": None, "reason": f"the debugger failed: {type(exc).__name__}: {exc}"[:300]}

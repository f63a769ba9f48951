"""Read the convolution weights of a DeepLab .tflite file, float or quantised.

Only the TFLite interpreter is used (LiteRT, tflite_runtime or tf.lite, whichever is
installed): its tensor table gives every constant tensor with its quantisation, its op
table which tensors feed which CONV_2D / DEPTHWISE_CONV_2D. Each convolution is named by
the layer of our Keras model it corresponds to, from the scope names the file carries:

- TF-slim / TF DeepLab (the published models): `MobilenetV2/Conv`,
  `MobilenetV2/expanded_conv_N/{expand,depthwise,project}`, `aspp0`, `asppN_{depthwise,
  pointwise}`, `image_pooling`, `concat_projection`, `decoder/...`, `logits/semantic`;
- ours (Keras layer names): `Conv1`, `block_N_expand`, `aspp0`, `aspp_projection`, ...

Weights come back dequantised (per-channel scales and zero points) in Keras' layout, with
BatchNorm still folded into kernel + bias as the file stores it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.host_input import dequantize
from ..errors import InvalidInputError, ModelLoadError, first_line

CONV_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise"}

# (pattern on a tensor name, Keras layer name template) for TF-slim / TF DeepLab scopes.
_SLIM_NAMES: Tuple[Tuple[str, str], ...] = (
    (r"MobilenetV2/Conv/", "Conv1"),
    (r"MobilenetV2/expanded_conv/(depthwise|project)/", "expanded_conv_{0}"),
    (r"MobilenetV2/expanded_conv_(\d+)/(expand|depthwise|project)/", "block_{0}_{1}"),
    (r"(?:^|/)aspp0/", "aspp0"),
    (r"(?:^|/)aspp(\d)_depthwise/", "aspp{0}_depthwise"),
    (r"(?:^|/)aspp(\d)_pointwise/", "aspp{0}"),
    (r"(?:^|/)image_pooling/", "aspp_pool_conv"),
    (r"(?:^|/)concat_projection/", "aspp_projection"),
    (r"decoder/feature_projection0/", "decoder_low_level"),
    (r"decoder/decoder_conv(\d)_depthwise/", "decoder_conv{0}_depthwise"),
    (r"decoder/decoder_conv(\d)_pointwise/", "decoder_conv{0}"),
    (r"(?:^|/)logits/semantic/", "logits"),
)
# Our own Keras layer names, as they appear inside converted tensor names.
_OUR_NAMES = re.compile(
    r"(?:^|[/;])(Conv1|expanded_conv_(?:depthwise|project)|block_\d+_(?:expand|depthwise|project)"
    r"|aspp\d(?:_depthwise)?|aspp_pool_conv|aspp_projection|decoder_low_level"
    r"|decoder_conv\d(?:_depthwise)?|logits)(?:[/;_]|$)"
)


@dataclass(frozen=True)
class ConvWeights:
    """One convolution of the file.

    layer: the Keras layer it maps onto ("block_3_project").
    kind: "conv" or "depthwise".
    kernel: float32 in Keras layout: (kh, kw, in, out), or (kh, kw, channels, 1) depthwise.
    bias: float32 (out,).
    input_shape, output_shape: NHWC activation shapes around the op.
    tensor: the weight tensor's name in the file.
    quantized: the file stores the weights as int8/uint8.
    """

    layer: str
    kind: str
    kernel: np.ndarray
    bias: np.ndarray
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    tensor: str
    quantized: bool


@dataclass(frozen=True)
class TFLiteWeights:
    """The convolutions of a .tflite file by Keras layer name, and its input shape.

    family: "slim" (TF-slim / TF DeepLab scope names) or "ours" (Keras layer names).
    unnamed: weight tensors of convolutions no layer name could be found for.
    """

    path: Path
    convs: Dict[str, ConvWeights]
    input_shape: Tuple[int, ...]
    family: str
    unnamed: Tuple[str, ...] = ()


def read_tflite_weights(path) -> TFLiteWeights:
    """Every convolution's weights in a .tflite file, named by our Keras layers.

    Raises:
        ModelLoadError: the file is not a TFLite model the interpreter can open.
        InvalidInputError: it holds no convolution that any layer name matches.
    """
    path = Path(path)
    interpreter = _open(path)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    convs: Dict[str, ConvWeights] = {}
    unnamed: List[str] = []
    families = set()
    ops = interpreter._get_ops_details()  # the public API lists tensors, not which op uses them
    # fp16 files feed convolutions through DEQUANTIZE ops: read the fp16 constant behind them.
    dequantized = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    for op in ops:
        kind = CONV_OPS.get(op["op_name"])
        if kind is None or len(op["inputs"]) < 2:
            continue
        inputs = [dequantized.get(i, i) for i in op["inputs"]]
        weight = tensors[inputs[1]]
        bias = tensors[inputs[2]] if len(inputs) > 2 and inputs[2] >= 0 else None
        layer, family = _layer_name(weight["name"], bias["name"] if bias else "")
        if layer is None:
            unnamed.append(weight["name"])
            continue
        families.add(family)
        convs[layer] = _conv(interpreter, kind, layer, weight, bias, tensors, op)
    if not convs:
        raise InvalidInputError(
            f"{path}: no convolution in this .tflite file carries a MobileNetV2 DeepLab layer name "
            "(MobilenetV2/Conv, expanded_conv_N, aspp0, logits/semantic or our Keras names); "
            "it is not a DeepLab model this toolkit can import"
        )
    input_shape = tuple(int(v) for v in interpreter.get_input_details()[0]["shape"])
    family = "slim" if "slim" in families else "ours"
    return TFLiteWeights(path, convs, input_shape, family, tuple(unnamed))


def _open(path: Path):
    from ..runtimes.tflite_runtime import interpreter_module

    if not path.is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    module = interpreter_module()
    try:
        # No delegate: the op table must show the model's own ops, not XNNPACK's partition.
        resolver = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = module.Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: not a TFLite model the interpreter can open ({first_line(exc)})") from None
    return interpreter


def _layer_name(weight_name: str, bias_name: str) -> Tuple[Optional[str], str]:
    """(Keras layer name, "slim" | "ours") from the names of an op's weight and bias."""
    for name in (weight_name, bias_name):
        first = name.split(";")[0]
        for pattern, template in _SLIM_NAMES:
            found = re.search(pattern, first)
            if found:
                return template.format(*found.groups()), "slim"
    for name in (weight_name, bias_name):
        found = _OUR_NAMES.search(name)
        if found:
            return found.group(1), "ours"
    return None, ""


def _conv(interpreter, kind: str, layer: str, weight: dict, bias: Optional[dict], tensors, op) -> ConvWeights:
    kernel = _dequantize(interpreter, weight)
    # TFLite stores conv kernels as (out, kh, kw, in), depthwise as (1, kh, kw, channels).
    kernel = kernel[0][..., None] if kind == "depthwise" else kernel.transpose(1, 2, 3, 0)
    out_channels = kernel.shape[2] if kind == "depthwise" else kernel.shape[3]
    values = _dequantize(interpreter, bias) if bias is not None else np.zeros(out_channels, np.float32)
    return ConvWeights(
        layer=layer,
        kind=kind,
        kernel=np.ascontiguousarray(kernel, np.float32),
        bias=values.astype(np.float32),
        input_shape=tuple(int(v) for v in tensors[op["inputs"][0]]["shape"]),
        output_shape=tuple(int(v) for v in tensors[op["outputs"][0]]["shape"]),
        tensor=weight["name"],
        quantized=weight["dtype"] in (np.int8, np.uint8),
    )


def _dequantize(interpreter, detail: dict) -> np.ndarray:
    """A constant tensor as float32: (q - zero_point) * scale, per channel where it is."""
    values = interpreter.get_tensor(detail["index"])
    quant = detail.get("quantization_parameters") or {}
    scales = np.asarray(quant.get("scales", ()), np.float32)
    if values.dtype == np.float32 or scales.size == 0:
        return values.astype(np.float32)
    zero_points = np.asarray(quant.get("zero_points", ()), np.float32)
    if zero_points.size == 0:
        zero_points = np.zeros_like(scales)
    shape = [1] * values.ndim
    if scales.size > 1:  # per-channel along the quantised dimension
        shape[int(quant.get("quantized_dimension", 0))] = scales.size
    return dequantize(values, scales.reshape(shape), zero_points.reshape(shape))

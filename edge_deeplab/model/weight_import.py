"""Start training from a DeepLab .tflite file: published (TF-slim) or our own, float or quantised.

`resolve_model_config` reads the architecture the file was built with (width multiplier,
output stride, head and its width, TF-slim channel counts and corner alignment) into the
ModelConfig; `import_tflite_weights` copies every convolution into the Keras model.

BatchNorm is folded into the file's kernels and biases. A folded conv becomes our conv
kernel plus a BatchNormalization that adds the bias and nothing else: gamma 1, beta = bias,
moving mean 0, moving variance 1 - epsilon (so the normalisation divides by exactly 1).
TF DeepLab concatenates the head's branches as [image pooling, aspp0, ...]; ours puts the
pooling branch last, so the projection's input channels are permuted to match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Tuple

import numpy as np

from ..config import ALPHAS, ModelConfig
from ..errors import InvalidInputError
from .tflite_weights import ConvWeights, TFLiteWeights, read_tflite_weights

REQUIRED = ("Conv1", "block_16_project", "aspp0", "logits")
# Architecture fields read from the file; a value given explicitly that differs is an error.
INFERRED = ("alpha", "output_stride", "head", "head_filters", "channel_divisor", "align_corners")
FROM_DECODER = ("decoder", "decoder_filters")  # decoder_filters only where the file has a decoder
# Additions on top of imported weights (new layers, trained from scratch) are not contradictions.
ADDITIONS = {"head": ("lite", "aspp"), "decoder": (False, True)}


@dataclass
class ImportSummary:
    """What an import did: tensors matched, layers re-initialised (and why), file tensors unused."""

    path: str
    family: str
    quantized: bool
    matched: List[str] = field(default_factory=list)
    reinitialised: List[Tuple[str, str]] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)

    def describe(self) -> str:
        kind = "uint8/int8, dequantised" if self.quantized else "float"
        names = "TF-slim" if self.family == "slim" else "edge-deeplab"
        lines = [
            f"imported {len(self.matched)} convolutions ({2 * len(self.matched)} tensors) from "
            f"{self.path} ({names} names, {kind})"
        ]
        for layer, why in self.reinitialised:
            lines.append(f"  re-initialised {layer}: {why}")
        if self.unused:
            lines.append(f"  not used from the file: {', '.join(self.unused)}")
        return "\n".join(lines)


def describe_file(weights: TFLiteWeights) -> dict:
    """The architecture fields of ModelConfig that the file's tensors determine."""
    missing = [name for name in REQUIRED if name not in weights.convs]
    if missing:
        found = ", ".join(sorted(weights.convs)[:8]) or "none"
        raise InvalidInputError(
            f"{weights.path} is not a MobileNetV2 DeepLab: no tensors for {', '.join(missing)} "
            f"(convolutions found: {found})"
        )
    convs = weights.convs
    alpha = _alpha(convs["block_16_project"].kernel.shape[3], weights.path)
    keras_24 = _make_divisible(24 * alpha, 8)
    found = {
        "alpha": alpha,
        "output_stride": _output_stride(weights),
        "head": "aspp" if "aspp1" in convs else "lite",
        "head_filters": int(convs["aspp0"].kernel.shape[3]),
        "decoder": "decoder_conv0" in convs,
        "channel_divisor": 8 if convs["block_1_project"].kernel.shape[3] == keras_24 else 1,
        "align_corners": weights.family == "slim",
        "num_classes": int(convs["logits"].kernel.shape[3]),
    }
    if found["decoder"]:  # a file without one leaves a decoder added on top to the config
        found["decoder_filters"] = int(convs["decoder_conv0"].kernel.shape[3])
    return found


def resolve_model_config(config: ModelConfig, explicit: Optional[Iterable[str]] = None) -> ModelConfig:
    """`config` with the architecture of its .tflite `weights` filled in.

    Args:
        config: a ModelConfig whose `weights` is a .tflite file.
        explicit: the fields the user set explicitly (the CLI knows); None treats every
            field that differs from ModelConfig's default as explicit (the Python API).

    Raises:
        InvalidInputError: an explicit value contradicts the file (naming both values).
    """
    weights = read_tflite_weights(config.weights)
    found = describe_file(weights)
    if weights.family == "ours":
        found.update(_own_config(config.weights))
    if all(getattr(config, name) == found[name] for name in (*INFERRED, "decoder_filters") if name in found):
        return config  # resolved already (or spelled out): an addition on top, a decoder, stays
    defaults = ModelConfig()
    given = set(explicit) if explicit is not None else {
        name for name in (*INFERRED, *FROM_DECODER) if getattr(config, name) != getattr(defaults, name)
    }
    if config.decoder and config.decoder_filters is not None:
        given.add("decoder")  # a decoder width asks for a decoder, though decoder=True is the default
    changes = {}
    for name in (*INFERRED, *FROM_DECODER):
        if name not in found:
            continue
        value, file_value = getattr(config, name), found[name]
        if name not in given or value == file_value:
            changes[name] = file_value
        elif ADDITIONS.get(name) != (file_value, value):
            raise InvalidInputError(
                f"{name.replace('_', '-')} {value} contradicts the weights file {config.weights} "
                f"({name.replace('_', ' ')} {file_value}); leave it out to use the file's"
            )
    return config.replace(**changes)


def _own_config(path) -> dict:
    """Corner alignment and channel rounding of our own artifacts, from their metadata.

    Read from the appended metadata alone (no second interpreter).
    """
    from ..runtimes.tflite_runtime import TFLiteRuntime

    meta = TFLiteRuntime.read_metadata(path)
    model = (meta.source or {}).get("model", {}) if meta is not None else {}
    return {k: model[k] for k in ("align_corners", "channel_divisor") if k in model}


def import_tflite_weights(model, config: ModelConfig) -> ImportSummary:
    """Copy the convolutions of `config.weights` (.tflite) into `model` (built from `config`)."""
    keras = _keras()
    weights = read_tflite_weights(config.weights)
    summary = ImportSummary(
        str(config.weights), weights.family, any(c.quantized for c in weights.convs.values())
    )
    used = set()
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            continue
        conv = weights.convs.get(layer.name)
        if conv is None:
            summary.reinitialised.append((layer.name, "new layer (not in the file)"))
            continue
        used.add(layer.name)
        kernel = _kernel_for(conv, weights.family, config)
        problem = _shape_problem(layer, kernel, conv)
        if problem:
            summary.reinitialised.append((layer.name, problem))
            continue
        _assign(model, layer, kernel, conv.bias)
        summary.matched.append(layer.name)
    summary.unused = sorted(set(weights.convs) - used)
    return summary


def _kernel_for(conv: ConvWeights, family: str, config: ModelConfig) -> np.ndarray:
    if conv.layer == "aspp_projection" and family == "slim":
        # TF DeepLab: [image pooling, aspp0, aspp1..3]; ours: [aspp0, aspp1..3, image pooling].
        pool = config.head_filters
        return np.concatenate([conv.kernel[:, :, pool:], conv.kernel[:, :, :pool]], axis=2)
    return conv.kernel


def _shape_problem(layer, kernel: np.ndarray, conv: ConvWeights) -> Optional[str]:
    want = tuple(layer.kernel.shape)
    if want == kernel.shape:
        return None
    if layer.name == "logits":
        return f"{want[3]} classes here, {kernel.shape[3]} in the file"
    return f"kernel {want} here, {kernel.shape} in the file"


def _assign(model, layer, kernel: np.ndarray, bias: np.ndarray) -> None:
    layer.kernel.assign(kernel)
    if layer.use_bias:
        layer.bias.assign(bias)
        return
    bn = model.get_layer("bn_Conv1" if layer.name == "Conv1" else f"{layer.name}_BN")
    bn.gamma.assign(np.ones_like(bias))
    bn.beta.assign(bias)
    bn.moving_mean.assign(np.zeros_like(bias))
    bn.moving_variance.assign(np.full_like(bias, 1.0 - bn.epsilon))


def _alpha(channels: int, path) -> float:
    for alpha in ALPHAS:
        if channels == _make_divisible(320 * alpha, 8) or channels == round(320 * alpha):
            return alpha
    raise InvalidInputError(f"{path}: {channels} channels at the end of MobileNetV2 match no width in {ALPHAS}")


def _output_stride(weights: TFLiteWeights) -> int:
    height = weights.input_shape[1]
    feature = weights.convs["block_16_project"].output_shape[1]
    for stride in (8, 16):
        if math.ceil(height / stride) == feature:
            return stride
    raise InvalidInputError(
        f"{weights.path}: a {height}-pixel input gives {feature}-pixel features: output stride is neither 8 nor 16"
    )


def _make_divisible(value: float, divisor: int) -> int:
    """Keras' MobileNetV2 channel rounding."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _keras():
    from .. import deps

    return deps.keras()

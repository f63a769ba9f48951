"""MobileNetV2 DeepLab v3 / v3+ built from `keras.applications.MobileNetV2` layers.

The backbone graph is replayed layer by layer so that, once the output stride is reached,
strided depthwise convolutions become stride 1 and the following ones atrous (dilated),
as in tensorflow/models DeepLab. Layer names stay those of Keras' MobileNetV2, so a
local ImageNet backbone file loads into it.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Dict, List

from .. import deps
from ..config import ModelConfig
from ..errors import InvalidInputError, first_line
from ..keras_layers import ResizeBilinear
from ..trust import load_keras_model

keras = deps.keras()
layers = keras.layers
_log = logging.getLogger(__name__)

BACKBONE_OUTPUT = "block_16_project_BN"  # last stride-32 (OS-adjusted) feature, 320*alpha ch
LOW_LEVEL_FEATURE = "block_3_expand_relu"  # stride 4, for the v3+ decoder
LOGITS = "logits"  # classifier output at feature resolution
UPSAMPLED = "upsample_logits"  # logits at the input size: the model's output
# MobileNetV2's output channels at depth multiplier 1.0, per Keras layer (the paper's table).
_BASE_CHANNELS = {"Conv1": 32, "expanded_conv_project": 16, **{
    f"block_{i}_project": c for c, blocks in ((24, (1, 2)), (32, (3, 4, 5)), (64, (6, 7, 8, 9)),
                                               (96, (10, 11, 12)), (160, (13, 14, 15)), (320, (16,)))
    for i in blocks
}}


def build_deeplab_v3(config: ModelConfig, verbose: bool = False) -> keras.Model:
    """Build the network described by `config` (and load `config.weights` into it).

    `verbose` logs the import summary of .tflite weights (tensors matched / re-initialised).

    Returns:
        A functional keras.Model: float32 NHWC input (pixels normalised by the shared
        preprocessing, about -1..1) -> float32 logits (N, H, W, num_classes) at the input
        size. The feature-resolution logits are the layer named "logits".
    """
    height, width = config.input_size
    backbone = _mobilenet_v2(config)
    inputs = keras.Input((height, width, 3), name="image")
    features = _replay_backbone(backbone, inputs, config)
    x = _aspp(features[BACKBONE_OUTPUT], config)
    if config.decoder:
        x = _decoder(x, features[LOW_LEVEL_FEATURE], config)
    if config.dropout:
        x = layers.Dropout(config.dropout, name="classifier_dropout")(x)
    logits = layers.Conv2D(config.num_classes, 1, name=LOGITS)(x)
    outputs = ResizeBilinear((height, width), config.align_corners, name=UPSAMPLED)(logits)
    model = keras.Model(inputs, outputs, name=_model_name(config))
    if config.weights and _is_tflite(config.weights):
        from .weight_import import import_tflite_weights

        summary = import_tflite_weights(model, config)
        (_log.info if verbose else _log.debug)(summary.describe())
    elif config.weights and not _is_backbone_file(config.weights):
        load_full_weights(model, config.weights)
    return model


def _is_tflite(path: str) -> bool:
    return str(path).lower().endswith(".tflite")


def _model_name(config: ModelConfig) -> str:
    head = "v3plus" if config.decoder else "v3"
    return f"deeplab_{head}_mnv2_{config.alpha}_os{config.output_stride}_{config.head}"


def _mobilenet_v2(config: ModelConfig):
    if config.weights == "imagenet":
        raise InvalidInputError(
            "weights='imagenet' needs a download, which this toolkit never does at run time; "
            "download mobilenet_v2_weights_tf_dim_ordering_tf_kernels_<alpha>_224_no_top.h5 "
            "once and pass its path with --weights PATH"
        )
    base = keras.applications.MobileNetV2(
        input_shape=(*config.input_size, 3), alpha=config.alpha, include_top=False, weights=None
    )
    if config.weights and _is_backbone_file(config.weights):
        if config.channel_divisor != 8:
            raise InvalidInputError(
                f"{config.weights}: a Keras MobileNetV2 backbone has Keras' channel counts; "
                f"it cannot load into channel_divisor={config.channel_divisor}"
            )
        _load(base, config.weights, "MobileNetV2 backbone")
    return base


def _is_backbone_file(path: str) -> bool:
    return "mobilenet_v2" in Path(path).name.lower()


def _load(model, path: str, what: str) -> None:
    if not Path(path).is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise InvalidInputError(f"{path} does not hold {what} weights for this config: {exc}") from None


def load_full_weights(model, path: str) -> None:
    """Load a full DeepLab weights file (`.weights.h5` or a `.keras` model) into `model`."""
    if str(path).endswith(".keras"):
        try:
            source = load_keras_model(keras, path)
        except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise InvalidInputError(f"{path}: not a Keras model this toolkit can load ({first_line(exc)})") from None
        try:
            model.set_weights(source.get_weights())
        except ValueError as exc:
            raise InvalidInputError(f"{path} was trained with another config: {exc}") from None
        return
    _load(model, path, "DeepLab")


def _inbound_names(layer_config: dict) -> List[str]:
    """Names of the layers feeding a layer, from its serialized functional config."""
    names: List[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            history = obj.get("config", {}).get("keras_history") if "config" in obj else None
            if history:
                names.append(history[0])
                return
            for value in obj.values():
                walk(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                walk(value)

    walk(layer_config.get("inbound_nodes", []))
    return names


def _replay_backbone(base, inputs, config: ModelConfig) -> Dict[str, object]:
    """Rebuild MobileNetV2 on `inputs` with atrous convolutions past the output stride."""
    graph = {spec["name"]: spec for spec in base.get_config()["layers"]}
    tensors: Dict[str, object] = {}
    stride, rate = 1, 1
    for layer in base.layers:
        if isinstance(layer, layers.InputLayer):
            tensors[layer.name] = inputs
            continue
        args = [tensors[name] for name in _inbound_names(graph[layer.name])]
        x = args if len(args) > 1 else args[0]
        layer_config = layer.get_config()
        if isinstance(layer, layers.ZeroPadding2D) and stride * 2 > config.output_stride:
            tensors[layer.name] = x  # no padding: the strided conv it served runs at stride 1
            continue
        new_rate = rate
        if _strides(layer_config) == 2:
            if stride * 2 > config.output_stride:
                layer_config.update(strides=(1, 1), padding="same")
                new_rate = rate * 2  # layers after this one see a dilated grid
            else:
                stride *= 2
        if isinstance(layer, layers.DepthwiseConv2D) and rate > 1:
            layer_config.update(dilation_rate=(rate, rate), padding="same")
        if isinstance(layer, layers.BatchNormalization):
            layer_config["momentum"] = config.bn_momentum
        if isinstance(layer, layers.Conv2D) and config.channel_divisor != 8:
            layer_config["filters"] = _slim_filters(layer.name, x.shape[-1], config)
        rate = new_rate
        clone = layer.__class__.from_config(layer_config)
        tensors[layer.name] = clone(x)
        if all(a.shape == b.shape for a, b in zip(clone.weights, layer.weights)):
            clone.set_weights(layer.get_weights())  # else: other channel counts, fresh init
        if layer.name == BACKBONE_OUTPUT:
            break
    return tensors


def _slim_filters(name: str, in_channels: int, config: ModelConfig) -> int:
    """Output channels of a backbone conv with TF-slim's rounding (divisible_by=1, min 8)."""
    if name.endswith("_expand"):
        return int(in_channels) * 6  # expansion factor 6 of the block's actual input
    base = _BASE_CHANNELS[name]
    return max(8, int(base * config.alpha + config.channel_divisor / 2) // config.channel_divisor
               * config.channel_divisor)


def _strides(layer_config: dict) -> int:
    strides = layer_config.get("strides", 1)
    return strides[0] if isinstance(strides, (list, tuple)) else strides


def _conv_bn_relu(x, filters: int, name: str, config: ModelConfig, kernel=1, rate=1, separable=False):
    if separable:
        x = layers.DepthwiseConv2D(
            kernel, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_depthwise"
        )(x)
        x = layers.BatchNormalization(momentum=config.bn_momentum, epsilon=1e-5, name=f"{name}_depthwise_BN")(x)
        x = layers.ReLU(name=f"{name}_depthwise_relu")(x)
    x = layers.Conv2D(filters, 1 if separable else kernel, padding="same", dilation_rate=1 if separable else rate,
                      use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=config.bn_momentum, epsilon=1e-5, name=f"{name}_BN")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _aspp(x, config: ModelConfig):
    """ASPP (1x1 + three separable atrous 3x3 + image pooling) or the lite head."""
    filters = config.head_filters
    feature_size = (x.shape[1], x.shape[2])
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = _conv_bn_relu(pooled, filters, "aspp_pool_conv", config)
    pooled = ResizeBilinear(feature_size, config.align_corners, name="aspp_pool_upsample")(pooled)
    branches = [_conv_bn_relu(x, filters, "aspp0", config), pooled]
    if config.head == "aspp":
        scale = 16 // config.output_stride
        for i, rate in enumerate((6, 12, 18), start=1):
            branches.insert(i, _conv_bn_relu(x, filters, f"aspp{i}", config, kernel=3,
                                             rate=rate * scale, separable=True))
    x = layers.Concatenate(name="aspp_concat")(branches)
    return _conv_bn_relu(x, filters, "aspp_projection", config)


def _decoder(x, low_level, config: ModelConfig):
    """DeepLab v3+ decoder: upsample to stride 4, concat the projected low-level feature."""
    size = (low_level.shape[1], low_level.shape[2])
    width = config.decoder_filters or config.head_filters
    x = ResizeBilinear(size, config.align_corners, name="decoder_upsample")(x)
    low = _conv_bn_relu(low_level, max(16, width // 4), "decoder_low_level", config)
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn_relu(x, width, "decoder_conv0", config, kernel=3, separable=True)
    return _conv_bn_relu(x, width, "decoder_conv1", config, kernel=3, separable=True)

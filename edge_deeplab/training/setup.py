"""The model a run trains: built (at the crop size), weights imported, BN frozen, compiled."""

from __future__ import annotations

from pathlib import Path

from .. import deps, runs
from ..config import ModelConfig, TrainConfig


def resolve_weights(model_cfg: ModelConfig, out: Path, resume: bool) -> ModelConfig:
    """The config with the architecture of a .tflite `weights` file filled in.

    A resumed run keeps the config it saved (resolved when it started).
    """
    if not model_cfg.weights or not str(model_cfg.weights).lower().endswith(".tflite"):
        return model_cfg
    if resume and (Path(out) / runs.CONFIG).is_file():
        return model_cfg
    from ..model.weight_import import resolve_model_config

    return resolve_model_config(model_cfg)


def compile_model(model_cfg: ModelConfig, train_cfg: TrainConfig, steps: int, ignore_label: int, verbose: int = 0,
                  class_weights=None):
    """The compiled model to fit: built at the crop size (if any), weights loaded."""
    from ..model import build_deeplab_v3
    from .losses import MaskedSparseCrossEntropy
    from .optimizers import make_optimizer

    train_size = train_cfg.crop_size or model_cfg.input_size
    model = build_deeplab_v3(model_cfg.replace(input_size=train_size), verbose=bool(verbose))
    if train_cfg.freeze_bn:
        freeze_batch_norm(model)
    model.compile(
        optimizer=make_optimizer(train_cfg, steps),
        loss=MaskedSparseCrossEntropy(ignore_label, class_weights),
        jit_compile=train_cfg.jit_compile,
    )
    return model


def freeze_batch_norm(model) -> int:
    """Put the BatchNormalization layers in inference mode, parameters fixed; returns how many.

    The decoder's are left to learn: on imported weights it is a new part (initial
    statistics 0 / 1, no bias), and at stride 4 a batch of crops gives it steady statistics.

    A Keras 3 BatchNormalization with trainable=False normalises with its moving statistics
    even when the model is called with training=True, and neither its statistics nor its
    gamma / beta change.
    """
    keras = deps.keras()
    frozen = 0
    from .optimizers import layer_group

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer_group(layer.name) != "decoder":
            layer.trainable = False
            frozen += 1
    return frozen


def resize_model(model, config: ModelConfig):
    """A copy of `model` built for `config.input_size`, with the same weights.

    Every weight of the network is independent of the input size (only the resize layers'
    target sizes change), so the copy computes the same function at another size.
    """
    from ..model import build_deeplab_v3

    copy = build_deeplab_v3(config.replace(weights=None))
    copy.set_weights(model.get_weights())
    return copy

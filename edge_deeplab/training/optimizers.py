"""Optimizers with per-group learning-rate multipliers, and the warm-up + poly schedule.

Scaling gradients does not scale Adam's steps (Adam divides by the gradient's own
magnitude), so the multiplier scales the learning rate inside `update_step`, per variable.
The classes are registered Keras objects: checkpoints (model + optimizer) reload with them.
"""

from __future__ import annotations

import re

from .. import deps
from ..config import TrainConfig

keras = deps.keras()

# Layer groups by the first segment of a variable's path (the layer name).
_BACKBONE = re.compile(r"^(Conv1|bn_Conv1|expanded_conv_|block_\d+_)")
_DECODER = re.compile(r"^decoder_")
_CLASSIFIER = re.compile(r"^logits$")


def layer_group(variable_path: str) -> str:
    """The LR group ("backbone", "head", "decoder", "classifier") of a path like "block_3_expand/kernel"."""
    layer = variable_path.split("/")[0]
    for group, pattern in (("backbone", _BACKBONE), ("decoder", _DECODER), ("classifier", _CLASSIFIER)):
        if pattern.match(layer):
            return group
    return "head"


class _LRMultipliers:
    """Mixin: scale the learning rate of each variable by its group's multiplier."""

    def __init__(self, *args, lr_multipliers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in dict(lr_multipliers).items()}
        self._factors = []

    def build(self, variables):
        super().build(variables)
        self._factors = [self.lr_multipliers.get(layer_group(v.path), 1.0) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)] if self._factors else 1.0
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}


@keras.saving.register_keras_serializable(package="edge_deeplab")
class GroupAdam(_LRMultipliers, keras.optimizers.Adam):
    """Adam with per-group learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="edge_deeplab")
class GroupAdamW(_LRMultipliers, keras.optimizers.AdamW):
    """AdamW with per-group learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="edge_deeplab")
class GroupSGD(_LRMultipliers, keras.optimizers.SGD):
    """SGD (momentum) with per-group learning-rate multipliers."""


@keras.saving.register_keras_serializable(package="edge_deeplab")
class WarmupPoly(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over `warmup_steps`, then lr * (1 - t / decay_steps) ** power."""

    def __init__(self, learning_rate: float, decay_steps: int, warmup_steps: int = 0, power: float = 0.9):
        self.learning_rate = float(learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        decay = max(1, self.decay_steps - self.warmup_steps)
        t = ops.clip((step - self.warmup_steps) / decay, 0.0, 1.0)
        poly = self.learning_rate * ops.power(1.0 - t, self.power)
        if not self.warmup_steps:
            return poly
        ramp = self.learning_rate * ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return ops.where(step < self.warmup_steps, ramp, poly)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_steps": self.decay_steps,
                "warmup_steps": self.warmup_steps, "power": self.power}


def make_schedule(train_cfg: TrainConfig, steps_per_epoch: int) -> WarmupPoly:
    """The run's schedule: warm-up epochs, then poly decay to 0 at the last step."""
    return WarmupPoly(
        train_cfg.learning_rate,
        decay_steps=steps_per_epoch * train_cfg.epochs,
        warmup_steps=round(train_cfg.warmup_epochs * steps_per_epoch),
        power=train_cfg.poly_power,
    )


def make_optimizer(train_cfg: TrainConfig, steps_per_epoch: int):
    """Adam / AdamW / SGD (momentum 0.9) on the run's schedule, with its multipliers."""
    schedule = make_schedule(train_cfg, steps_per_epoch)
    groups = dict(train_cfg.lr_multipliers)
    decay = train_cfg.weight_decay or None
    if train_cfg.optimizer == "sgd":
        return GroupSGD(schedule, momentum=0.9, weight_decay=decay, lr_multipliers=groups)
    if decay:
        return GroupAdamW(schedule, weight_decay=decay, lr_multipliers=groups)
    return GroupAdam(schedule, lr_multipliers=groups)

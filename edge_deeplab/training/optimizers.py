"""Optimizers with per-group learning-rate multipliers, and the warm-up + poly schedule.

Scaling gradients does not scale Adam's steps (Adam divides by the gradient's own
magnitude), so the multiplier scales the learning rate inside `update_step`, per variable.
The classes are registered Keras objects: checkpoints (model + optimizer) reload with them.
"""

from __future__ import annotations

import math
import re

from .. import deps
from ..config import DEFAULT_EPOCHS, SCHEDULES, TrainConfig

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


# Saved under its first name, so checkpoints written before cosine existed still load.
@keras.saving.register_keras_serializable(package="edge_deeplab", name="WarmupPoly")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 over `warmup_steps`, then poly or cosine decay to 0 at `decay_steps`.

    poly: lr * (1 - t) ** power; cosine: lr * (1 + cos(pi t)) / 2, t going 0 -> 1 from the end
    of the warm-up to `decay_steps`. Both lengths are variables read at every step, so a
    time budget can stretch or shrink the schedule while training runs (`set_steps`).
    """

    floor = 0.0  # the rate both shapes reach at decay_steps

    def __init__(self, learning_rate: float, decay_steps: int, warmup_steps: int = 0, power: float = 0.9,
                 shape: str = "poly"):
        if shape not in SCHEDULES:
            raise ValueError(f"schedule shape must be one of {SCHEDULES}, got {shape!r}")
        tf = deps.tensorflow()
        self.learning_rate, self.power, self.shape = float(learning_rate), float(power), shape
        self._decay = tf.Variable(float(decay_steps), trainable=False, dtype="float32", name="decay_steps")
        self._warmup = tf.Variable(float(warmup_steps), trainable=False, dtype="float32", name="warmup_steps")

    def set_steps(self, decay_steps: int, warmup_steps: int) -> None:
        self._decay.assign(float(decay_steps))
        self._warmup.assign(float(warmup_steps))

    def steps(self):
        """(decay_steps, warmup_steps) as they stand."""
        return int(self._decay.numpy()), int(self._warmup.numpy())

    def describe(self) -> str:
        decay, warm = self.steps()
        shape = f"poly {self.power:g}" if self.shape == "poly" else "cosine"
        return f"warm-up {warm} steps, then {shape} from {self.learning_rate:g} to {self.floor:g} at step {decay}"

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = ops.convert_to_tensor(self._warmup)
        t = ops.clip((step - warm) / ops.maximum(1.0, self._decay - warm), 0.0, 1.0)
        if self.shape == "poly":
            decayed = self.learning_rate * ops.power(1.0 - t, self.power)
        else:
            decayed = self.learning_rate * 0.5 * (1.0 + ops.cos(math.pi * t))
        ramp = self.learning_rate * ops.minimum(1.0, (step + 1.0) / ops.maximum(1.0, warm))
        return ops.where(step < warm, ramp, decayed)

    def get_config(self):
        decay, warm = self.steps()
        return {"learning_rate": self.learning_rate, "decay_steps": decay, "warmup_steps": warm,
                "power": self.power, "shape": self.shape}


def make_schedule(train_cfg: TrainConfig, steps_per_epoch: int) -> WarmupDecay:
    """The run's schedule: warm-up epochs, then decay to the floor at the last step.

    Under a time budget these lengths are a first guess the `BudgetPlanner` replaces once
    it has timed the first batches.
    """
    epochs = train_cfg.epoch_limit if train_cfg.time_budget_s is None else min(train_cfg.epoch_limit, DEFAULT_EPOCHS)
    return WarmupDecay(
        train_cfg.learning_rate,
        decay_steps=steps_per_epoch * epochs,
        warmup_steps=round(train_cfg.warmup_epochs * steps_per_epoch),
        power=train_cfg.poly_power,
        shape=train_cfg.lr_schedule,
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

"""Frozen dataclass configs, validated on construction.

Past the CLI boundary nothing travels as a free-form dict: each part of the toolkit takes
one of these. `to_dict`/`from_dict` give the JSON written beside every training run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from .errors import InvalidInputError

ALPHAS = (0.35, 0.5, 0.75, 1.0)
MODEL_HEADS = ("aspp", "lite")  # the network's segmentation head (metadata.OUTPUT_HEADS: what an artifact outputs)
OPTIMIZERS = ("adam", "sgd")
STRATEGIES = ("default", "mirrored", "multiworker")
SCHEDULES = ("poly", "cosine")  # learning-rate decay shapes after the warm-up
DEFAULT_EPOCHS = 20  # without a time budget, when no epoch count is given
MAX_BUDGET_EPOCHS = 1000  # with a time budget and no epoch count: the budget decides


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)


def _size(value: Any, what: str) -> Tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be (height, width), got {value!r}") from None
    _check(h >= 32 and w >= 32, f"{what} must be at least 32x32, got {h}x{w}")
    return h, w


def _pair(value: Any, what: str) -> Tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be two numbers (low, high), got {value!r}") from None
    return low, high


LR_GROUPS = ("backbone", "head", "decoder", "classifier")


def _multipliers(pairs) -> Tuple[Tuple[str, float], ...]:
    """Validated ((group, factor), ...) from pairs or a {group: factor} dict."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    out = []
    for group, factor in items:
        _check(group in LR_GROUPS, f"learning-rate group must be one of {LR_GROUPS}, got {group!r}")
        factor = float(factor)
        _check(0.0 <= factor <= 100.0, f"learning-rate multiplier of {group} must be in [0, 100], got {factor}")
        out.append((str(group), factor))
    return tuple(out)


class _Config:
    """Shared JSON round-trip for the config dataclasses."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        _check(not unknown, f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_Config):
    """What network to build.

    Attributes:
        num_classes: number of output classes (the ignore label is not one of them).
        input_size: (height, width) the model is built and trained at.
        alpha: MobileNetV2 width multiplier.
        output_stride: 16 or 8; the last strides become atrous convolutions.
        head: "aspp" (1x1 + three atrous 3x3 + image pooling) or "lite" (1x1 + pooling).
        decoder: add the DeepLab v3+ decoder on the stride-4 feature.
        head_filters: channels of the ASPP branches.
        decoder_filters: channels of the v3+ decoder's convolutions (its low-level
            projection gets a quarter, at least 16); None: as wide as the head. A narrow
            decoder (64-96) keeps the stride-4 path cheap on a CPU.
        bn_momentum: BatchNormalization momentum; lower it for short runs (Keras' 0.999
            leaves the moving statistics behind after a few hundred steps).
        dropout: dropout before the classifier.
        weights: optional local weights file: a full model (.keras, .weights.h5), a
            MobileNetV2 backbone (.h5), or a DeepLab .tflite (published or ours, float or
            quantised) whose constant tensors are imported (see `model.weight_import`).
        align_corners: bilinear upsampling with aligned corners (TF-slim DeepLab's
            convention, used by the published models) instead of half-pixel centres.
        channel_divisor: MobileNetV2 channel counts are rounded to multiples of this: 8 is
            Keras' rule; TF-slim DeepLab uses 1 below depth multiplier 1.0 (12 channels,
            not 16, in the 24x0.5 stage of the published dm 0.5 models).
    """

    num_classes: int = 4
    input_size: Tuple[int, int] = (128, 128)
    alpha: float = 0.35
    output_stride: int = 16
    head: str = "aspp"
    decoder: bool = True
    head_filters: int = 96
    decoder_filters: Optional[int] = None
    bn_momentum: float = 0.9
    dropout: float = 0.1
    weights: Optional[str] = None
    align_corners: bool = False
    channel_divisor: int = 8

    def __post_init__(self):
        object.__setattr__(self, "input_size", _size(self.input_size, "input_size"))
        _check(self.channel_divisor in (1, 8), f"channel_divisor must be 1 or 8, got {self.channel_divisor}")
        _check(self.num_classes >= 2, f"num_classes must be >= 2, got {self.num_classes}")
        _check(self.alpha in ALPHAS, f"alpha must be one of {ALPHAS}, got {self.alpha}")
        _check(self.output_stride in (8, 16), f"output_stride must be 8 or 16, got {self.output_stride}")
        _check(self.head in MODEL_HEADS, f"head must be one of {MODEL_HEADS}, got {self.head!r}")
        _check(self.head_filters >= 8, f"head_filters must be >= 8, got {self.head_filters}")
        _check(self.decoder_filters is None or self.decoder_filters >= 8,
               f"decoder_filters must be >= 8, got {self.decoder_filters}")
        _check(0.0 < self.bn_momentum < 1.0, f"bn_momentum must be in (0, 1), got {self.bn_momentum}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class DataConfig(_Config):
    """Where the images come from.

    Attributes:
        format: a name from the dataset registry ("synthetic", "folder", "voc").
        path: dataset root (unused for synthetic).
        ignore_label: label value excluded from loss and metrics (255; 11 for CamVid).
        num_classes: classes in the masks; None lets the format say (synthetic, voc).
        labels: class names; None lets the format say, else "class_0"...
        train_split, val_split: split names the format understands; `train_split` may name
            several, comma-separated ("train,val": the final model of a recipe chosen on
            val, trained on both; its val scores are then in-sample).
        synthetic_train, synthetic_val: images per split of the synthetic dataset.
        seed: seed of the synthetic dataset.
    """

    format: str = "synthetic"
    path: Optional[str] = None
    ignore_label: int = 255
    num_classes: Optional[int] = None
    labels: Optional[Tuple[str, ...]] = None
    train_split: str = "train"
    val_split: str = "val"
    synthetic_train: int = 512
    synthetic_val: int = 96
    synthetic_size: Tuple[int, int] = (128, 128)
    seed: int = 0

    @property
    def train_splits(self) -> Tuple[str, ...]:
        """The splits trained on, in order."""
        return tuple(s.strip() for s in self.train_split.split(",") if s.strip())

    def __post_init__(self):
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "synthetic_size", _size(self.synthetic_size, "synthetic_size"))
        _check(0 <= self.ignore_label <= 255, f"ignore_label must be in 0..255, got {self.ignore_label}")
        _check(self.format == "synthetic" or bool(self.path), f"--data PATH is needed for format {self.format!r}")
        _check(bool(self.train_splits), f"train_split must name a split, got {self.train_split!r}")
        _check(len(set(self.train_splits)) == len(self.train_splits),
               f"train_split repeats a split: {self.train_split!r}")


# Largest blur sigma: the kernel has 2 * 3 * sigma + 1 taps, and more than 19 cost more than the
# rest of the augmentation.
MAX_BLUR_SIGMA = 3.0


@dataclass(frozen=True)
class AugmentConfig(_Config):
    """Training-time augmentation of the tf.data pipeline."""

    scale_range: Tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.02
    # Probability of a Gaussian blur of the crop, sigma uniform in blur_sigma (pixels of the
    # crop): defocus and motion soften the edges a camera sees at test time.
    blur: float = 0.0
    blur_sigma: Tuple[float, float] = (0.5, 1.5)

    def __post_init__(self):
        for name in ("scale_range", "blur_sigma"):  # a JSON list back to the tuple it was saved from
            object.__setattr__(self, name, _pair(getattr(self, name), name))
        lo, hi = self.scale_range
        _check(0 < lo <= hi, f"scale_range must be 0 < low <= high, got {self.scale_range}")
        _check(0 <= self.blur <= 1, f"blur is a probability from 0 to 1, got {self.blur}")
        lo, hi = self.blur_sigma
        _check(0 < lo <= hi <= MAX_BLUR_SIGMA,
               f"blur_sigma must be 0 < low <= high <= {MAX_BLUR_SIGMA}, got {self.blur_sigma}")


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How to train.

    Attributes:
        epochs: epochs to run in total (a resumed run continues up to this number); None
            means DEFAULT_EPOCHS, or with `time_budget_s` as many as the budget fits.
        time_budget_s: train to this wall-clock budget (seconds, from the start of `train`,
            resumed sessions counted together): the schedule spans the epochs that fit,
            re-planned as epochs and validations are timed, and validations are spaced to
            cost at most a tenth of it (`val_every` is then the closest spacing allowed).
            With `epochs` too, the run fits as many epochs as the budget allows, up to
            `epochs`, and its schedule ends at the last of them.
        lr_schedule: the decay after the warm-up: "poly" (lr * (1 - t) ** poly_power) or
            "cosine"; both reach 0 at the last step.
        batch_size: images per step (global, across replicas).
        optimizer: "adam" or "sgd" (momentum 0.9).
        learning_rate: initial rate of the poly schedule lr * (1 - step/total) ** poly_power.
        weight_decay: decoupled weight decay (AdamW / SGDW), 0 disables it.
        steps_per_epoch: None means one pass over the training split.
        strategy: "default", "mirrored" or "multiworker" (tf.distribute).
        seed: seed of shuffling and augmentation.
        jit_compile: XLA; off by default (7-10x slower per step on this kind of CPU).
        crop_size: (height, width) of the random training crops; None trains at the model's
            input size. With a crop size the model is still validated and saved at its
            input size (e.g. CamVid's full 360x480), the weights being size-independent.
        lr_multipliers: (group, factor) pairs scaling the learning rate of a layer group:
            "backbone" (MobileNetV2), "head" (ASPP / lite head), "decoder" (the v3+ decoder)
            or "classifier" (the last 1x1 conv). Fine-tuning imported weights typically
            slows the backbone and head, and leaves new layers (a decoder added on top) at 1.
        freeze_bn: keep the BatchNormalization layers of backbone and head in inference
            mode with their parameters fixed (torchvision's FrozenBatchNorm): batch
            statistics of small batches are noisy, and imported models carry good ones.
            The v3+ decoder's stay trainable (new on imported weights, stride-4 statistics).
        warmup_epochs: linear learning-rate warm-up from 0 before the poly decay.
        val_every: validate every N epochs (and after the last one).
        class_balance: weight each class's loss by (median frequency / its frequency) **
            class_balance, counted on the training masks: 0 off, 1 SegNet's median-frequency
            balancing, 0.5 a milder lift for thin, rare classes.
    """

    epochs: Optional[int] = None
    batch_size: int = 8
    optimizer: str = "adam"
    learning_rate: float = 3e-3
    poly_power: float = 0.9
    weight_decay: float = 0.0
    steps_per_epoch: Optional[int] = None
    strategy: str = "default"
    seed: int = 0
    jit_compile: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    crop_size: Optional[Tuple[int, int]] = None
    lr_multipliers: Tuple[Tuple[str, float], ...] = ()
    freeze_bn: bool = False
    warmup_epochs: float = 0.0
    val_every: int = 1
    class_balance: float = 0.0
    time_budget_s: Optional[float] = None
    lr_schedule: str = "poly"

    @property
    def epoch_limit(self) -> int:
        """Epochs the run may reach: `epochs`, or its default with or without a budget."""
        if self.epochs is not None:
            return self.epochs
        return DEFAULT_EPOCHS if self.time_budget_s is None else MAX_BUDGET_EPOCHS

    def __post_init__(self):
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", _size(self.crop_size, "crop_size"))
        object.__setattr__(self, "lr_multipliers", _multipliers(self.lr_multipliers))
        _check(self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(0 <= self.warmup_epochs < self.epoch_limit,
               f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        _check(self.time_budget_s is None or self.time_budget_s > 0,
               f"time_budget_s must be > 0, got {self.time_budget_s}")
        _check(self.time_budget_s is None or self.strategy != "multiworker",
               "a time budget is planned on one machine's clock; multiworker training takes --epochs")
        _check(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        _check(self.val_every >= 1, f"val_every must be >= 1, got {self.val_every}")
        _check(0.0 <= self.class_balance <= 2.0, f"class_balance must be in [0, 2], got {self.class_balance}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        _check(self.steps_per_epoch is None or self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1")

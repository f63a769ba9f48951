"""The flags of `edge-deeplab train`, declared as option fields, one class per help group.

A default is the config's (ModelConfig, DataConfig, TrainConfig, AugmentConfig), read here
and shown in --help from the field. The config flags are added `unset`: one left out parses
as None, so a resumed run keeps its saved value (`train_cmd.build_configs`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional, Tuple

from ..config import (
    ALPHAS,
    DEFAULT_EPOCHS,
    MODEL_HEADS,
    OPTIMIZERS,
    SCHEDULES,
    STRATEGIES,
    AugmentConfig,
    DataConfig,
    ModelConfig,
    TrainConfig,
)
from ..options import finite_float, option, parse_size
from ..presets import PRESETS
from .option_flags import add_option_flags

_M, _D, _T, _A = ModelConfig(), DataConfig(), TrainConfig(), AugmentConfig()
FORMATS = ("synthetic", "folder", "voc")


def lr_mults(text: str):
    """"backbone=0.2,classifier=5" -> (("backbone", 0.2), ("classifier", 5.0))."""
    pairs = []
    for item in text.split(","):
        group, sep, value = item.partition("=")
        try:
            pairs.append((group.strip(), float(value)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected GROUP=NUMBER, got {item!r}") from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected GROUP=NUMBER, got {item!r}")
    return tuple(pairs)


def float_pair(text: str):
    try:
        low, high = (finite_float(v) for v in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected LO,HI, got {text!r}") from None
    return low, high


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """"30m" / "1.5h" / "900s" / "30" (minutes) -> seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "m"
    try:
        seconds = float(value.rstrip("smh")) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 1.5h or 900s, got {text!r}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a time budget must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class RunFlags:
    """What to train on, where the run goes, and how the command behaves."""

    data: str = option("synthetic", "'synthetic' or a dataset root")
    format: Optional[str] = option(None, "dataset format (default: synthetic, or guessed from PATH)",
                                   choices=FORMATS)
    out: Optional[str] = option(None, "run folder (default runs/<data name>)")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    quiet: bool = option(False, "no progress bar")
    memory_limit: Optional[float] = option(
        None, "refuse runs whose memory estimate exceeds this (default: 90% of this machine's RAM)",
        parse=finite_float, metavar="GB")


@dataclass(frozen=True)
class ModelFlags:
    """ModelConfig's flags."""

    alpha: float = option(_M.alpha, "MobileNetV2 width", choices=ALPHAS)
    output_stride: int = option(_M.output_stride, "output stride of the backbone", choices=(8, 16))
    head: str = option(_M.head, "segmentation head: ASPP or the lite head", choices=MODEL_HEADS)
    decoder: bool = option(_M.decoder, "the DeepLab v3+ decoder (--no-decoder: plain v3; --decoder also adds one "
                           "on top of imported .tflite weights that have none)", negatable=True)
    decoder_filters: Optional[int] = option(
        None, "channels of the v3+ decoder (default: the head's width); 64-96 keeps it cheap on a CPU", parse=int)
    input_size: Tuple[int, int] = option(_M.input_size, "HxW the model is trained at", parse=parse_size,
                                            metavar="HxW")
    bn_momentum: float = option(_M.bn_momentum, "BatchNormalization momentum")
    weights: Optional[str] = option(
        None, "local weights: a MobileNetV2 backbone .h5, a DeepLab .keras/.weights.h5, or a DeepLab "
        ".tflite (published or ours, float or quantised): its architecture is read from the file")


@dataclass(frozen=True)
class DataFlags:
    """DataConfig's flags, and --labels (a file or a preset, read in `train_cmd`)."""

    num_classes: Optional[int] = option(None, "classes in the masks (ignore label excluded)", parse=int)
    ignore_label: int = option(_D.ignore_label, "mask value left out of loss and metrics")
    labels: Optional[str] = option(
        None, f"labels file (one name per line) or a preset: {', '.join(PRESETS.names())}")
    train_split: str = option(_D.train_split, "splits to train on; train,val for a final model chosen on val",
                              flag="--train-splits", metavar="SPLIT[,SPLIT]")


@dataclass(frozen=True)
class TrainingFlags:
    """TrainConfig's flags of any run (--seed also seeds the synthetic data)."""

    epochs: int = option(DEFAULT_EPOCHS, "epochs in total; with --time-budget the most it may fit")
    batch_size: int = option(_T.batch_size, "images per step")
    learning_rate: float = option(_T.learning_rate, "initial learning rate of the poly schedule", flag="--lr",
                                      metavar="LR")
    optimizer: str = option(_T.optimizer, "adam, or sgd with momentum 0.9", choices=OPTIMIZERS)
    steps_per_epoch: Optional[int] = option(None, "steps per epoch (default: one pass over the training split)",
                                            parse=int)
    strategy: str = option(_T.strategy, "tf.distribute strategy (multiworker reads TF_CONFIG)", choices=STRATEGIES)
    seed: int = option(_T.seed, "seed of the synthetic data, shuffling and augmentation")
    time_budget: Optional[float] = option(
        None, "train to this wall time (30m, 1.5h, 900s; a bare number is minutes): the schedule spans the "
        "epochs that fit, re-planned as they are timed, validation spaced to cost <= 10%",
        parse=duration, metavar="TIME")
    lr_schedule: str = option(_T.lr_schedule, "decay after the warm-up", choices=SCHEDULES)


@dataclass(frozen=True)
class FinetuneFlags:
    """TrainConfig's flags for fine-tuning imported weights on a small CPU."""

    crop_size: Optional[Tuple[int, int]] = option(
        None, "train on random HxW crops; validate and save at --input-size (e.g. CamVid's 360x480)",
        parse=parse_size, metavar="HxW")
    lr_multipliers: Optional[tuple] = option(
        None, "learning-rate multipliers of backbone, head, decoder, classifier (e.g. backbone=0.2)",
        flag="--lr-mult", parse=lr_mults, metavar="GROUP=X[,GROUP=X]")
    freeze_bn: bool = option(
        _T.freeze_bn, "BatchNorm in inference mode with fixed parameters (small batches, imported weights)")
    warmup_epochs: float = option(_T.warmup_epochs, "linear learning-rate warm-up before the poly decay")
    val_every: int = option(_T.val_every, "validate every N epochs (always after the last)")
    class_balance: float = option(
        _T.class_balance, "weight classes by (median frequency / frequency) ** P (0 off, 1 SegNet's, 0.5 milder)",
        metavar="P")


@dataclass(frozen=True)
class AugmentFlags:
    """AugmentConfig's flags (--jitter sets brightness, contrast and saturation alike)."""

    scale_range: Tuple[float, float] = option(
        _A.scale_range, "random image scale of the augmentation", parse=float_pair, metavar="LO,HI")
    jitter: float = option(_A.brightness, "colour jitter strength: brightness, contrast, saturation")
    blur: float = option(_A.blur, "probability of a Gaussian blur of each crop (0: off)", metavar="P")
    blur_sigma: Tuple[float, float] = option(
        _A.blur_sigma, "its random sigma in pixels", parse=float_pair, metavar="LO,HI")


GROUPS = ((None, RunFlags), ("model", ModelFlags), ("data", DataFlags), ("training", TrainingFlags),
          ("fine-tuning", FinetuneFlags), ("augmentation", AugmentFlags))


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of `train`, by group; the config flags unset when left out."""
    for title, flags in GROUPS:
        add_option_flags(parser if title is None else parser.add_argument_group(title), flags, unset=title is not None)

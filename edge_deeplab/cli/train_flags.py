"""The flags of `edge-deeplab train`, by group (the configs are built in `train_cmd`)."""

from __future__ import annotations

import argparse

from ..config import ALPHAS, DEFAULT_EPOCHS, MODEL_HEADS, OPTIMIZERS, SCHEDULES, STRATEGIES, ModelConfig, TrainConfig
from ..presets import PRESETS
from .common import finite_float, parse_size

_M, _T = ModelConfig(), TrainConfig()  # defaults shown in --help


def add_model_flags(g) -> None:
    g.add_argument(
        "--alpha", type=finite_float, choices=ALPHAS, help=f"MobileNetV2 width (default {_M.alpha})"
    )
    g.add_argument("--output-stride", type=int, choices=(8, 16), help="default 16")
    g.add_argument("--head", choices=MODEL_HEADS, help="aspp (default) or lite")
    g.add_argument("--no-decoder", action="store_true", help="DeepLab v3 without the v3+ decoder")
    g.add_argument("--decoder", action="store_true",
                   help="add the v3+ decoder (also on top of imported .tflite weights that have none)")
    g.add_argument("--decoder-filters", type=int,
                   help="channels of the v3+ decoder (default: the head's width); 64-96 keeps it cheap on a CPU")
    g.add_argument(
        "--input-size",
        type=parse_size,
        help=f"HxW the model is trained at (default {_M.input_size[0]}x{_M.input_size[1]})",
    )
    g.add_argument(
        "--bn-momentum", type=finite_float, help=f"BatchNormalization momentum (default {_M.bn_momentum})"
    )
    g.add_argument(
        "--weights",
        help="local weights: a MobileNetV2 backbone .h5, a DeepLab .keras/.weights.h5, or a DeepLab "
        ".tflite (published or ours, float or quantised): its architecture is read from the file",
    )


def add_data_flags(g) -> None:
    g.add_argument("--num-classes", type=int, help="classes in the masks (ignore label excluded)")
    g.add_argument(
        "--ignore-label", type=int, help="mask value left out of loss and metrics (default 255)"
    )
    g.add_argument(
        "--labels",
        help=f"labels file (one name per line) or a preset: {', '.join(PRESETS.names())}",
    )


def add_training_flags(g) -> None:
    g.add_argument("--epochs", type=int,
                   help=f"epochs in total (default {DEFAULT_EPOCHS}); with --time-budget the most it may fit")
    g.add_argument("--batch-size", type=int, help=f"default {_T.batch_size}")
    g.add_argument(
        "--lr",
        type=finite_float,
        help=f"initial learning rate of the poly schedule (default {_T.learning_rate:g})",
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS, help="adam (default) or sgd (momentum 0.9)")
    g.add_argument("--steps-per-epoch", type=int, help="default: one pass over the training split")
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy (multiworker reads TF_CONFIG)",
    )
    g.add_argument(
        "--seed", type=int, help="seed of the synthetic data, shuffling and augmentation"
    )
    g.add_argument("--time-budget", type=duration, metavar="TIME",
                   help="train to this wall time (30m, 1.5h, 900s; a bare number is minutes): the schedule "
                   "spans the epochs that fit, re-planned as they are timed, validation spaced to cost <= 10%%")
    g.add_argument("--lr-schedule", choices=SCHEDULES, help="decay after the warm-up: poly (default) or cosine")
    g.add_argument("--train-splits", metavar="SPLIT[,SPLIT]",
                   help="splits to train on (default train); train,val for a final model chosen on val")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--memory-limit", type=finite_float, metavar="GB",
                   help="refuse runs whose memory estimate exceeds this (default: 90%% of this machine's RAM)")


def add_finetune_flags(g) -> None:
    """Fine-tuning imported weights on a small CPU: crops, LR groups, frozen BN, warm-up."""
    g.add_argument("--crop-size", type=parse_size,
                   help="train on random HxW crops; validate and save at --input-size (e.g. CamVid's 360x480)")
    g.add_argument("--lr-mult", type=lr_mults, metavar="GROUP=X[,GROUP=X]",
                   help="learning-rate multipliers of backbone, head, decoder, classifier (e.g. backbone=0.2)")
    g.add_argument("--freeze-bn", action="store_true",
                   help="BatchNorm in inference mode with fixed parameters (small batches, imported weights)")
    g.add_argument("--warmup-epochs", type=finite_float, help="linear learning-rate warm-up before the poly decay")
    g.add_argument("--val-every", type=int, help="validate every N epochs (default 1; always after the last)")
    g.add_argument("--class-balance", type=finite_float, metavar="P",
                   help="weight classes by (median frequency / frequency) ** P (0 off, 1 SegNet's, 0.5 milder)")
    g.add_argument("--scale-range", type=float_pair, metavar="LO,HI",
                   help="random image scale of the augmentation (default 0.75,1.25)")
    g.add_argument("--jitter", type=finite_float,
                   help="colour jitter strength: brightness, contrast, saturation (default 0.15)")
    g.add_argument("--blur", type=finite_float, metavar="P",
                   help="probability of a Gaussian blur of each crop (default 0: off)")
    g.add_argument("--blur-sigma", type=float_pair, metavar="LO,HI",
                   help="its random sigma in pixels (default 0.5,1.5)")


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

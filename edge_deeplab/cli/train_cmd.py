"""`edge-deeplab train`: train a DeepLab on synthetic, folder or VOC data into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import ALPHAS, HEADS, OPTIMIZERS, STRATEGIES, DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError
from ..metadata import read_labels_file
from ..presets import PRESETS
from .common import parse_size

FORMATS = ("synthetic", "folder", "voc")
DEFAULT_CLASSES = {"synthetic": 4, "voc": 21}
_M, _T = ModelConfig(), TrainConfig()  # defaults shown in --help


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a MobileNetV2 DeepLab v3 into a run folder", description=__doc__
    )
    p.add_argument(
        "--data", default="synthetic", help="'synthetic' or a dataset root (default synthetic)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="dataset format (default: synthetic, or guessed from PATH)",
    )
    p.add_argument("--out", help="run folder (default runs/<data name>)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--alpha", type=float, choices=ALPHAS, help=f"MobileNetV2 width (default {_M.alpha})"
    )
    g.add_argument("--output-stride", type=int, choices=(8, 16), help="default 16")
    g.add_argument("--head", choices=HEADS, help="aspp (default) or lite")
    g.add_argument("--no-decoder", action="store_true", help="DeepLab v3 without the v3+ decoder")
    g.add_argument(
        "--input-size",
        type=parse_size,
        help=f"HxW the model is trained at (default {_M.input_size[0]}x{_M.input_size[1]})",
    )
    g.add_argument(
        "--bn-momentum", type=float, help=f"BatchNormalization momentum (default {_M.bn_momentum})"
    )
    g.add_argument(
        "--weights", help="local weights: a MobileNetV2 backbone .h5 or a full DeepLab file"
    )
    g = p.add_argument_group("data")
    g.add_argument("--num-classes", type=int, help="classes in the masks (ignore label excluded)")
    g.add_argument(
        "--ignore-label", type=int, help="mask value left out of loss and metrics (default 255)"
    )
    g.add_argument(
        "--labels",
        help=f"labels file (one name per line) or a preset: {', '.join(PRESETS.names())}",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, help=f"default {_T.epochs}")
    g.add_argument("--batch-size", type=int, help=f"default {_T.batch_size}")
    g.add_argument(
        "--lr",
        type=float,
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
    g.add_argument("--time-budget", type=float, help="stop between epochs after this many minutes")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _labels(args, data_cfg: dict) -> None:
    """--labels FILE or preset name -> labels (and the preset's ignore label)."""
    if args.labels is None:
        return
    if args.labels in PRESETS:
        preset = PRESETS.get(args.labels)
        data_cfg["labels"] = tuple(preset["labels"])
        if args.ignore_label is None:
            data_cfg["ignore_label"] = preset["ignore_label"]
    else:
        data_cfg["labels"] = read_labels_file(args.labels)


def build_configs(args):
    """(ModelConfig, DataConfig, TrainConfig, out) from flags, or from the run being resumed."""
    fmt = args.format or (
        "synthetic" if args.data == "synthetic" else _guess_format(Path(args.data))
    )
    out = Path(args.out or Path("runs") / (Path(args.data).name or "run"))
    model, data, train = ModelConfig().to_dict(), DataConfig().to_dict(), TrainConfig().to_dict()
    if args.resume and (out / "config.json").is_file():
        saved = json.loads((out / "config.json").read_text())
        model, data, train = saved["model"], saved["data"], saved["train"]
    else:
        data.update(format=fmt, path=None if fmt == "synthetic" else str(args.data))
    flags = {
        "model": {
            "alpha": args.alpha,
            "output_stride": args.output_stride,
            "head": args.head,
            "input_size": args.input_size,
            "bn_momentum": args.bn_momentum,
            "weights": args.weights,
            "decoder": False if args.no_decoder else None,
        },
        "data": {
            "num_classes": args.num_classes,
            "ignore_label": args.ignore_label,
            "seed": args.seed,
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "optimizer": args.optimizer,
            "steps_per_epoch": args.steps_per_epoch,
            "strategy": args.strategy,
            "seed": args.seed,
        },
    }
    for target, values in ((model, flags["model"]), (data, flags["data"]), (train, flags["train"])):
        target.update({k: v for k, v in values.items() if v is not None})
    _labels(args, data)
    if data["format"] == "synthetic":
        data["synthetic_size"] = model["input_size"]
    num = data.get("num_classes") or (len(data["labels"]) if data.get("labels") else None)
    num = num or DEFAULT_CLASSES.get(data["format"])
    if num is None:
        raise InvalidInputError(
            f"{args.data}: give --num-classes N or --labels FILE|PRESET for a folder dataset"
        )
    model["num_classes"] = num
    return (
        ModelConfig.from_dict(model),
        DataConfig.from_dict(data),
        TrainConfig.from_dict(train),
        out,
    )


def _guess_format(path: Path) -> str:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such dataset folder")
    return "voc" if (path / "JPEGImages").is_dir() else "folder"


def run(args) -> int:
    from ..training import train

    model_cfg, data_cfg, train_cfg, out = build_configs(args)
    budget = args.time_budget * 60 if args.time_budget else None
    run_dir = train(
        model_cfg,
        data_cfg,
        train_cfg,
        out,
        resume=args.resume,
        verbose=0 if args.quiet else 1,
        time_budget_s=budget,
    )
    if not (run_dir / "history.json").is_file():  # a non-chief worker writes no run folder
        print("worker done; the chief worker wrote the run folder")
        return 0
    history = json.loads((run_dir / "history.json").read_text())
    final = history["history"][-1]["val_miou"] if history["history"] else float("nan")
    print(
        f"run folder: {run_dir}  "
        f"(final val mIoU {final:.4f}, {history['train_seconds'] / 60:.1f} min)"
    )
    return 0

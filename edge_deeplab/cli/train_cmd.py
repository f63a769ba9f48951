"""`edge-deeplab train`: train a DeepLab on synthetic, folder or VOC data into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError
from ..metadata import read_labels_file
from ..presets import PRESETS
from .option_flags import given_options
from .train_flags import AugmentFlags, DataFlags, FinetuneFlags, ModelFlags, TrainingFlags, add_train_flags

ORDER = 20  # its place in `edge-deeplab --help`
DEFAULT_CLASSES = {"synthetic": 4, "voc": 21}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a MobileNetV2 DeepLab v3 into a run folder", description=__doc__
    )
    add_train_flags(p)  # every flag declared in train_flags, its default the config's
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
    flags = _flag_values(args)
    for target, values in ((model, flags["model"]), (data, flags["data"]), (train, flags["train"])):
        target.update(values)
    _labels(args, data)
    _augment(args, train)
    if data["format"] == "synthetic":
        data["synthetic_size"] = model["input_size"]
    num = data.get("num_classes") or (len(data["labels"]) if data.get("labels") else None)
    num = num or DEFAULT_CLASSES.get(data["format"])
    if num is None:
        raise InvalidInputError(
            f"{args.data}: give --num-classes N or --labels FILE|PRESET for a folder dataset"
        )
    model["num_classes"] = num
    model_cfg = ModelConfig.from_dict(model)
    if _is_tflite(model_cfg.weights) and not (args.resume and (out / "config.json").is_file()):
        model_cfg = _resolve_tflite(model_cfg, flags["model"], data, args)
    return model_cfg, DataConfig.from_dict(data), TrainConfig.from_dict(train), out


def _flag_values(args) -> dict:
    """The config flags given, by config ("model", "data", "train"); left-out ones are absent."""
    data = given_options(DataFlags, args)
    data.pop("labels", None)  # a file or a preset: `_labels`
    train = {**given_options(TrainingFlags, args), **given_options(FinetuneFlags, args)}
    if "time_budget" in train:
        train["time_budget_s"] = train.pop("time_budget")
    if "seed" in train:
        data["seed"] = train["seed"]
    return {"model": given_options(ModelFlags, args), "data": data, "train": train}


def _augment(args, train: dict) -> None:
    augment = dict(train.get("augment") or {})
    given = given_options(AugmentFlags, args)
    jitter = given.pop("jitter", None)
    if jitter is not None:
        augment.update(brightness=jitter, contrast=jitter, saturation=jitter)
    augment.update(given)
    train["augment"] = augment


def _is_tflite(path) -> bool:
    return bool(path) and str(path).lower().endswith(".tflite")


def _resolve_tflite(model_cfg: ModelConfig, model_flags: dict, data: dict, args) -> ModelConfig:
    """Architecture from the .tflite file; flags given explicitly must agree with it.

    A classifier kept from a PASCAL VOC file (21 classes) takes the VOC labels when the
    user named none.
    """
    from ..model.weight_import import resolve_model_config

    explicit = set(model_flags)
    resolved = resolve_model_config(model_cfg, explicit=explicit)
    if args.labels is None and data.get("labels") is None and resolved.num_classes == 21:
        data["labels"] = tuple(PRESETS.get("pascal-voc")["labels"])
    return resolved


def _guess_format(path: Path) -> str:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such dataset folder")
    return "voc" if (path / "JPEGImages").is_dir() else "folder"


def run(args) -> int:
    from ..training import train

    model_cfg, data_cfg, train_cfg, out = build_configs(args)
    run_dir = train(
        model_cfg,
        data_cfg,
        train_cfg,
        out,
        resume=args.resume,
        verbose=0 if args.quiet else 1,
        memory_limit_gb=args.memory_limit,
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

"""`edge-deeplab eval`: mIoU, per-class IoU and pixel accuracy of any model on a dataset.

With `--target TARGET` the device scores the artifact with its own edge install (the model
and the dataset folder copied through its content cache) and its result is printed here.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..config import DataConfig
from ..imageio import atomic_write_text
from ..options import parse_floats
from ..targets.cli import Uploads, add_target_arg, flag_words, model_source_words, run_on_target
from ..targets.remote import JSON_OUT
from .common import add_model_source_args, add_runtime_args, open_segmenter
from .train_cmd import _guess_format
from .train_flags import FORMATS

ORDER = 30  # its place in `edge-deeplab --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval", help="score a model (run folder or artifact) on a dataset", description=__doc__
    )
    p.add_argument("model", metavar="MODEL", help="a training run folder or a model file")
    p.add_argument(
        "--data", default="synthetic", help="'synthetic' or a dataset root (default synthetic)"
    )
    p.add_argument("--format", choices=FORMATS, help="dataset format (default: guessed)")
    p.add_argument("--split", default="val", help="split to score (default val)")
    p.add_argument("--ignore-label", type=int, help="mask value excluded (default: the model's)")
    p.add_argument(
        "--seed", type=int, help="seed of the synthetic dataset (default: the run's, or 0)"
    )
    p.add_argument(
        "--scales",
        type=parse_floats,
        default=(1.0,),
        help="multi-scale inference, e.g. 0.75,1,1.25",
    )
    p.add_argument("--flip", action="store_true", help="also average the mirrored image")
    p.add_argument("--limit", type=int, help="score only the first N images")
    p.add_argument("--json", help="write the result as JSON here")
    add_target_arg(p)
    add_model_source_args(p)
    add_runtime_args(p)
    return p


def run(args) -> int:
    from ..data.datasets import load_dataset
    from ..evaluation import evaluate

    if args.target:
        record = _on_target(args)
        print(format_table(_as_result(record)))
    else:
        with open_segmenter(args) as segmenter:
            dataset = load_dataset(_data_config(args, segmenter.metadata), args.split)
            result = evaluate(segmenter, dataset, scales=args.scales, flip=args.flip, limit=args.limit)
        print(format_table(result))
        record = {"model": args.model, "data": args.data, "split": args.split, **result.to_dict()}
    if args.json:
        atomic_write_text(args.json, json.dumps(record, indent=2))
        print(f"wrote {args.json}")
    return 0


def _on_target(args) -> dict:
    """The device's `eval --json` of the artifact (a dataset folder is uploaded as one bundle)."""
    uploads = Uploads()
    data = args.data if args.data == "synthetic" else uploads.folder(args.data)
    words = [uploads.artifact(args.model), "--data", data, "--json", JSON_OUT, *model_source_words(args, uploads)]
    words += flag_words(args, ("format", "split", "ignore_label", "seed", "scales", "flip", "limit"))
    record, machine = run_on_target(args.target, "eval", words, uploads)
    return {**record, "model": args.model, "data": args.data, "target": machine["target"], "machine": machine}


def _as_result(record: dict):
    """A JSON record in the shape `format_table` reads (None IoU -> NaN, as measured)."""
    from types import SimpleNamespace

    per_class = {k: math.nan if v is None else v for k, v in record["per_class_iou"].items()}
    return SimpleNamespace(**{**record, "per_class_iou": per_class})


def _data_config(args, meta) -> DataConfig:
    """The dataset to score on; the model's labels and ignore label unless told otherwise.

    For the synthetic dataset of a training run folder, the run's own synthetic settings
    (seed, split sizes) are used, so `eval RUN` scores the run's own val split.
    """
    fmt = args.format or (
        "synthetic" if args.data == "synthetic" else _guess_format(Path(args.data))
    )
    fields = {}
    saved = Path(args.model) / "config.json"
    if fmt == "synthetic" and saved.is_file():
        data = json.loads(saved.read_text()).get("data", {})
        fields = {k: data[k] for k in ("synthetic_train", "synthetic_val", "seed") if k in data}
    if args.seed is not None:
        fields["seed"] = args.seed
    ignore = meta.ignore_label if args.ignore_label is None else args.ignore_label
    path = None if fmt == "synthetic" else args.data
    return DataConfig(
        format=fmt,
        path=path,
        labels=meta.labels,
        ignore_label=ignore,
        synthetic_size=meta.input_size,
        **fields,
    )


def format_table(result) -> str:
    """Per-class IoU then mIoU and pixel accuracy, as aligned text."""
    width = max([len("pixel accuracy")] + [len(n) for n in result.per_class_iou])
    lines = [f"{'class':<{width}}  IoU", f"{'-' * width}  ------"]
    for name, iou in result.per_class_iou.items():
        lines.append(f"{name:<{width}}  {'  n/a' if math.isnan(iou) else f'{iou:.4f}'}")
    lines.append(f"{'-' * width}  ------")
    lines.append(f"{'mIoU':<{width}}  {result.miou:.4f}")
    lines.append(f"{'pixel accuracy':<{width}}  {result.pixel_accuracy:.4f}")
    lines.append(
        f"({result.num_images} images, scales {','.join(f'{s:g}' for s in result.scales)}"
        f"{', flip' if result.flip else ''})"
    )
    return "\n".join(lines)

"""Convert a CamVid-trained DeepLab to every CPU target and precision; score each artifact.

Per artifact: file size, conversion time, argmax agreement with the Keras model (the
conversion's parity check, on images of the calibration source), mIoU on the CamVid val
split (`edge_deeplab.evaluation.evaluate` through `Segmenter` and the artifact's own
engine), and the change in mIoU points from the Keras model and, for int8, from the same
target's float artifact. The bar: an int8 drop of at most 0.5 point.

Calibration uses real training images (`<data>/train`), never val images.

Example:
    python benchmarks/convert_camvid.py --model /work/runs/camvid --out /tmp/camvid_artifacts \
        --json convert_camvid.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def shared_dir() -> Path:
    env = os.environ.get("EDGE_DEEPLAB_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="/work/runs/camvid", help="CamVid training run folder")
    p.add_argument("--data", default=str(shared_dir() / "data" / "camvid"))
    p.add_argument("--out", default="camvid_artifacts", help="folder for the artifacts")
    p.add_argument("--json", default="convert_camvid.json")
    p.add_argument("--targets", default="all")
    p.add_argument("--precisions", default="all")
    p.add_argument("--calib-size", type=int, default=200)
    p.add_argument("--parity-images", type=int, default=32)
    p.add_argument("--head", default=None, choices=["logits", "argmax"])
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N val images")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def val_dataset(model: Path, data: Path):
    """The run's own data config, pointed at `data`, val split."""
    from edge_deeplab.config import DataConfig
    from edge_deeplab.data.datasets import load_dataset

    config = json.loads((model / "config.json").read_text())["data"]
    config.update(path=str(data))
    return load_dataset(DataConfig.from_dict(config), "val")


def score(path, dataset, limit, threads) -> dict:
    """mIoU and pixel accuracy of one model file through its engine and the Segmenter."""
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    start = time.perf_counter()
    with load_runtime(path, threads=threads) as runtime:
        result = evaluate(Segmenter(runtime), dataset, limit=limit)
    return {
        "miou": result.miou,
        "pixel_accuracy": result.pixel_accuracy,
        "images": result.num_images,
        "eval_s": round(time.perf_counter() - start, 1),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from edge_deeplab.converters import convert

    model, data = Path(args.model), Path(args.data)
    dataset = val_dataset(model, data)
    reference = score(model, dataset, args.limit, args.threads)
    print(
        f"keras reference: val mIoU {reference['miou']:.4f} on {reference['images']} images",
        flush=True,
    )
    results = convert(
        model,
        args.targets,
        args.precisions,
        args.out,
        calib_data=data / "train",
        calib_size=args.calib_size,
        parity_images=args.parity_images,
        head=args.head,
    )
    rows = []
    for r in results:
        row = {
            "target": r.target,
            "precision": r.precision,
            "status": r.status,
            "size_mb": r.size_mb,
            "convert_s": r.seconds,
            "head": r.head,
            "resolution": r.resolution,
            "agreement": r.parity.get("agreement"),
            "parity_miou": r.parity.get("miou"),
        }
        if r.path is not None:
            row.update(score(r.path, dataset, args.limit, args.threads))
            row["drop_vs_keras"] = round(100 * (reference["miou"] - row["miou"]), 3)
        rows.append(row)
    for row in rows:  # int8 drop against the same target's best float artifact
        floats = [
            o["miou"]
            for o in rows
            if o["target"] == row["target"] and o["precision"] in ("fp32", "fp16") and "miou" in o
        ]
        if row["precision"] == "int8" and floats and "miou" in row:
            row["int8_drop_points"] = round(100 * (max(floats) - row["miou"]), 3)
    print_table(rows, reference)
    report = {
        "model": str(model),
        "reference": reference,
        "calib_size": args.calib_size,
        "calib_data": str(data / "train"),
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


def print_table(rows, reference) -> None:
    print(
        f"\n{'target':<9}{'prec':<8}{'MB':>7}{'conv s':>8}{'agree':>8}{'val mIoU':>10}"
        f"{'vs keras':>10}{'int8 drop':>11}"
    )
    print(f"{'keras':<9}{'fp32':<8}{'':>7}{'':>8}{'':>8}{reference['miou']:>10.4f}")
    for row in rows:
        if row["status"] == "not available":
            print(f"{row['target']:<9}{row['precision']:<8}  not available here")
            continue
        agree = f"{row['agreement']:.2%}" if row.get("agreement") is not None else "-"
        miou = f"{row['miou']:.4f}" if "miou" in row else row["status"]
        vs = f"{-row['drop_vs_keras']:+.2f}" if "drop_vs_keras" in row else ""
        drop = f"{-row['int8_drop_points']:+.2f}" if "int8_drop_points" in row else ""
        print(
            f"{row['target']:<9}{row['precision']:<8}{row['size_mb']:>7.2f}{row['convert_s']:>8.1f}"
            f"{agree:>8}{miou:>10}{vs:>10}{drop:>11}"
        )


if __name__ == "__main__":
    sys.exit(main())

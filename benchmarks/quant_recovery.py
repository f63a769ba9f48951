"""What recovers the int8 loss without QAT, per engine, on the CamVid recipe's model (val split).

Each experiment is one `convert` of one target with one QuantSettings (calibration method,
per-channel or per-tensor weights, OpenVINO's bias correction) or one precision that puts
layers in 16 bits (int16x8, int8-mixed16), calibrated on the same train images. Each artifact
is scored on CamVid val through its own engine and the Segmenter; the table gives its mIoU
drop against the Keras model and its worst class drop (IoU points), and the argmax agreement
of the conversion's parity check. Tune on val only: the held-back split stays unseen.

Example (after benchmarks/train_camvid.py --out /work/runs/base):
    python benchmarks/quant_recovery.py --model /work/runs/base --out /work/runs/recovery \\
        --json benchmarks/results/quant_recovery.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from convert_camvid import shared_dir, val_dataset  # noqa: E402  (this folder: the run's val split)

# (engine, label, precision, ConvertOptions overrides): the first of each engine is its default.
EXPERIMENTS = (
    ("tflite", "default", "int8", {}),
    ("tflite", "per-tensor", "int8", {"per_tensor": True}),
    ("tflite", "logits out", "int8", {"head": "logits"}),
    ("tflite", "feature-res logits", "int8", {"head": "logits", "resolution": "feature"}),
    ("tflite", "367 calib images", "int8", {"calib_size": 367}),
    ("tflite", "int16x8", "int16x8", {}),
    ("tflite", "8-bit weights only", "dynamic", {}),
    ("onnx", "default", "int8", {}),
    ("onnx", "minmax", "int8", {"calib_method": "minmax"}),
    ("onnx", "percentile", "int8", {"calib_method": "percentile"}),
    ("onnx", "entropy", "int8", {"calib_method": "entropy"}),
    ("onnx", "per-tensor", "int8", {"per_tensor": True}),
    ("onnx", "feature-res logits", "int8", {"head": "logits", "resolution": "feature"}),
    ("onnx", "int16x8", "int16x8", {}),
    ("openvino", "default", "int8", {}),
    ("openvino", "minmax", "int8", {"calib_method": "minmax"}),
    ("openvino", "percentile", "int8", {"calib_method": "percentile"}),
    ("openvino", "mse", "int8", {"calib_method": "mse"}),
    ("openvino", "mean-minmax", "int8", {"calib_method": "mean-minmax"}),
    ("openvino", "fast bias correction", "int8", {"bias_correction": "fast"}),
    ("openvino", "no bias correction", "int8", {"bias_correction": "none"}),
    ("openvino", "per-tensor", "int8", {"per_tensor": True}),
    ("openvino", "feature-res logits", "int8", {"head": "logits", "resolution": "feature"}),
    # How much of a worst-class figure is the calibration set: the same settings on nested sets.
    ("openvino", "100 calib images", "int8", {"calib_size": 100}),
    ("openvino", "367 calib images", "int8", {"calib_size": 367}),
    ("openvino", "feature-res 100 images", "int8", {"head": "logits", "resolution": "feature", "calib_size": 100}),
    ("openvino", "feature-res 367 images", "int8", {"head": "logits", "resolution": "feature", "calib_size": 367}),
    # The float model at each placement: what the placement itself adds, before any int8.
    ("openvino", "fp32", "fp32", {}),
    ("openvino", "fp32 feature-res", "fp32", {"head": "logits", "resolution": "feature"}),
)
# Budgeted rows (--budgeted): the search's own budgets, the default-int8 targets.
BUDGETED = (
    ("tflite", "int8-mixed", "int8-mixed", {}),
    ("onnx", "int8-mixed", "int8-mixed", {}),
    ("onnx", "int8-mixed16", "int8-mixed16", {}),
    ("openvino", "int8-mixed", "int8-mixed", {}),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="/work/runs/base", help="CamVid training run folder")
    p.add_argument("--data", default=str(shared_dir() / "data" / "camvid"))
    p.add_argument("--out", default="/work/runs/recovery", help="folder for the artifacts")
    p.add_argument("--json", default="quant_recovery.json")
    p.add_argument("--engines", default="tflite,onnx,openvino")
    p.add_argument("--only", default=None, help="labels to run, comma-separated (default: all)")
    p.add_argument("--budgeted", action="store_true", help="add the int8-mixed / int8-mixed16 rows")
    p.add_argument("--max-miou-drop", type=float, default=0.3)
    p.add_argument("--max-class-drop", type=float, default=1.0)
    p.add_argument("--calib-size", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def score(path, dataset, threads: int):
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(path, threads=threads) as runtime:
        return evaluate(Segmenter(runtime), dataset)


def drops(result, reference) -> dict:
    """mIoU drop and the worst class drop against the Keras reference, in points."""
    per_class = {name: 100 * (reference.per_class_iou[name] - iou) for name, iou in result.per_class_iou.items()
                 if iou == iou and reference.per_class_iou.get(name) == reference.per_class_iou.get(name)}
    worst = max(per_class, key=per_class.get)
    return {"miou": round(result.miou, 5), "miou_drop": round(100 * (reference.miou - result.miou), 3),
            "worst_class": worst, "worst_class_drop": round(per_class[worst], 3)}


def run_one(args, experiment, dataset, reference) -> dict:
    from edge_deeplab.converters import convert

    engine, label, precision, overrides = experiment
    out = Path(args.out) / f"{engine}-{label.replace(' ', '-')}"
    data = Path(args.data)
    budget = {"max_miou_drop": args.max_miou_drop, "max_class_drop": args.max_class_drop, "val_data": data}
    start = time.perf_counter()
    options = {"calib_data": data / "train", "calib_size": args.calib_size, "progress": False,
               **(budget if precision.startswith("int8-mixed") else {}), **overrides}
    (result,) = convert(args.model, engine, precision, out, **options)
    row = {"engine": engine, "label": label, "precision": precision, "settings": overrides,
           "status": str(result.status), "convert_s": round(time.perf_counter() - start, 1),
           "agreement": result.parity.get("agreement"), "size_mb": result.size_mb}
    if result.path is not None:
        row.update(drops(score(result.path, dataset, args.threads), reference))
    if result.accuracy:
        row["lifted_layers"] = len(result.accuracy.get("float_layers", ()))
        row["lifted_to"] = result.accuracy.get("lifted_to", "float")
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    model = Path(args.model)
    dataset = val_dataset(model, Path(args.data))
    reference = score(model, dataset, args.threads)
    print(f"keras: val mIoU {100 * reference.miou:.2f} on {len(dataset)} images", flush=True)
    engines = args.engines.split(",")
    only = set(args.only.split(",")) if args.only else None
    chosen = [e for e in EXPERIMENTS + (BUDGETED if args.budgeted else ())
              if e[0] in engines and (only is None or e[1] in only)]
    rows = []
    for experiment in chosen:
        rows.append(run_one(args, experiment, dataset, reference))
        print(line(rows[-1]), flush=True)
        Path(args.json).write_text(json.dumps({"model": str(model), "keras_miou": reference.miou,
                                               "calib_size": args.calib_size, "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    return 0


def line(row: dict) -> str:
    if "miou" not in row:
        return f"{row['engine']:<9}{row['label']:<22}{row['status']}"
    agreement = f"{100 * row['agreement']:.2f}%" if row.get("agreement") is not None else "-"
    lifted = f"  {row['lifted_layers']} layers in {row['lifted_to']}" if "lifted_layers" in row else ""
    return (f"{row['engine']:<9}{row['label']:<22}mIoU {100 * row['miou']:.2f}  drop {row['miou_drop']:+.2f}  "
            f"worst {row['worst_class']} {row['worst_class_drop']:+.2f}  agree {agreement}  "
            f"{row['convert_s']:.0f} s{lifted}")


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy-vs-latency report of a CamVid-trained model on the CamVid val split.

Runs `edge_deeplab.bench.report.report` (what `edge-deeplab report` runs) over every
variant, prints the Markdown table and where report.json / .md / .html went, and the wall
time of the whole run. Int8 is calibrated on the train split's images, never on val.

Example (after benchmarks/train_camvid.py):
    python benchmarks/report_camvid.py --model /work/runs/camvid --out /work/runs/camvid_report
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_deeplab.bench.render_md import markdown_table, picks_text  # noqa: E402
from edge_deeplab.bench.report import BenchOptions, report  # noqa: E402
from edge_deeplab.config import DataConfig  # noqa: E402
from edge_deeplab.errors import EdgeDeeplabError  # noqa: E402

CAMVID_IGNORE = 11


def shared_dir() -> Path:
    env = os.environ.get("EDGE_DEEPLAB_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/camvid", help="CamVid training run folder")
    p.add_argument("--data", default=str(shared_dir() / "data" / "camvid"))
    p.add_argument("--out", default="runs/camvid_report")
    p.add_argument("--variants", default=None, help="e.g. tflite:int8,openvino (default: all)")
    p.add_argument("--limit", type=int, default=None, help="first N val images (default: all 101)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per variant")
    p.add_argument("--max-miou-drop", type=float, default=None)
    p.add_argument("--reconvert", action="store_true")
    p.add_argument(
        "--mixed-precision",
        action="store_true",
        help="add the int8-mixed rows, TFLite, OpenVINO, ONNX (budget: --max-miou-drop, default 0.5 point)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"CamVid not found at {args.data} (set EDGE_DEEPLAB_SHARED)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        labels = _model_labels(args.model)
        data = DataConfig(
            format="folder", path=args.data, ignore_label=CAMVID_IGNORE, labels=labels
        )
        result = report(
            args.model,
            data,
            args.out,
            variants=args.variants,
            threads=args.threads,
            limit=args.limit,
            max_miou_drop=args.max_miou_drop,
            reconvert=args.reconvert,
            mixed_precision=args.mixed_precision,
            bench=BenchOptions(min_time_s=args.min_time),
        )
    except EdgeDeeplabError as exc:
        print(f"report_camvid: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    print(markdown_table(result.data))
    print()
    for line in picks_text(result.data):
        print(f"- {line}")
    print(
        f"\n{len(result.rows)} variants, {result.data['protocol']['num_images']} val images, "
        f"{wall / 60:.1f} min wall time"
    )
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    return 0 if result.passed else 3


def _model_labels(model):
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.runs import resolve_model_path, sidecar_metadata_path

    meta_path = sidecar_metadata_path(resolve_model_path(model))
    return ArtifactMetadata.from_json(meta_path.read_text(encoding="utf-8")).labels


if __name__ == "__main__":
    sys.exit(main())

"""`edge-deeplab quickstart`: train, convert, report and demo on the synthetic dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 10  # its place in `edge-deeplab --help`


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "quickstart",
        help="the whole chain on the built-in synthetic dataset (about 10 minutes on 2 cores)",
        description="Train a small MobileNetV2 DeepLab v3 on the synthetic dataset, convert it to "
        "int8 TFLite, ONNX and OpenVINO (FP32, INT8), write the accuracy-vs-latency report "
        "and render a demo video. Steps already done in --out are reused.",
    )
    parser.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    parser.add_argument("--plan", default="default", choices=("default", "smoke"),
                        help="'smoke' is a reduced budget for tests")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the engines")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_deeplab.quickstart import quickstart

    made = quickstart(args.out, plan=args.plan, threads=args.threads)
    print()
    markdown = made.get("report_md")
    if markdown and Path(markdown).is_file():
        print(Path(markdown).read_text(encoding="utf-8"))
    print("What quickstart made:")
    for name, path in made.items():
        print(f"  {name:<14} {path}")
    return 0

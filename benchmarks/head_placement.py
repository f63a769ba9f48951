"""Where should the segmentation head sit on each target? Time every placement end to end.

Builds an untrained DeepLab (11 classes, like CamVid) at 128x128, converts it to each CPU
target with logits at full size, logits at the feature resolution (upsampled on the host)
and an in-graph argmax, and times `Segmenter.predict` on a 360x480 frame (infer plus the
host's dequantise / upsample / argmax) through the bench harness. The fastest placement
per target is what `Converter.default_head/default_resolution` should say.

Example:
    python benchmarks/head_placement.py --json head_placement.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PLACEMENTS = (("logits", "full"), ("logits", "feature"), ("argmax", "full"))
CASES = (
    ("tflite", "fp32"),
    ("tflite", "int8"),
    ("onnx", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
)


def make_run(folder: Path, size, alpha: float, classes: int) -> Path:
    """A run folder with an untrained model (timing does not need trained weights)."""
    from edge_deeplab.config import DataConfig, ModelConfig
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.model import build_deeplab_v3

    config = ModelConfig(num_classes=classes, input_size=size, alpha=alpha)
    folder.mkdir(parents=True, exist_ok=True)
    build_deeplab_v3(config).save(folder / "model.keras")
    meta = ArtifactMetadata(labels=tuple(f"class_{i}" for i in range(classes)), input_size=size)
    (folder / "metadata.json").write_text(meta.to_json())
    config_json = {"model": config.to_dict(), "data": DataConfig().to_dict()}
    (folder / "config.json").write_text(json.dumps(config_json))
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--min-time", type=float, default=2.0, help="seconds of timed runs per artifact"
    )
    parser.add_argument("--json", default="head_placement.json")
    args = parser.parse_args(argv)

    import numpy as np

    from edge_deeplab.bench.harness import benchmark
    from edge_deeplab.converters import convert
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    frame = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run", (args.size, args.size), args.alpha, 11)
        for head, resolution in PLACEMENTS:
            for target, precision in CASES:
                out = Path(tmp) / f"{head}_{resolution}"
                result = convert(
                    run,
                    target,
                    precision,
                    out,
                    head=head,
                    resolution=resolution,
                    calib_size=8,
                    parity_images=2,
                    progress=False,
                )[0]
                with load_runtime(result.path, threads=args.threads) as runtime:
                    row = benchmark(Segmenter(runtime), frame, min_time_s=args.min_time)
                rows.append(
                    {
                        "target": target,
                        "precision": precision,
                        "head": head,
                        "resolution": resolution,
                        "p50_ms": round(row["latency_p50_ms"], 2),
                        "stages": row["stages"],
                    }
                )
                print(
                    f"{target:<9}{precision:<6}{head:<7}{resolution:<8} "
                    f"p50 {row['latency_p50_ms']:7.2f} ms  "
                    + "  ".join(f"{k} {v:.2f}" for k, v in row["stages"].items()),
                    flush=True,
                )
    best = {}
    for row in rows:
        key = f"{row['target']} {row['precision']}"
        if key not in best or row["p50_ms"] < best[key]["p50_ms"]:
            best[key] = row
    print(
        "fastest:", {k: f"{v['head']}/{v['resolution']} {v['p50_ms']} ms" for k, v in best.items()}
    )
    Path(args.json).write_text(
        json.dumps({"rows": rows, "size": args.size, "alpha": args.alpha}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

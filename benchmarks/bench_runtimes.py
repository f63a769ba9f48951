"""Our models and the published DeepLab v3 models side by side, per runtime, at equal input
size and threads; the MAC rate each achieves; and our harness checked against the engines'
own benchmark tools (OpenVINO's benchmark_app, LiteRT's litert-benchmark).

Every latency is measured by `edge_deeplab.bench.harness.benchmark` (image in -> class map
out); "infer" is the engine alone, and the MAC rate is the model's MACs / median infer time.
MACs are counted on the graph OpenVINO reads from the artifact (convolutions and matmuls),
and, for our models, also analytically from the Keras layers as a cross-check.

"ours" models at 257/513 are our architecture (MobileNetV2 alpha 1.0, OS16, ASPP, no
decoder, 21 classes) with untrained weights: latency does not depend on the weights. A
trained run (e.g. the CamVid one) is added with --run and converted at each size.

    python benchmarks/bench_runtimes.py --threads 2 --sizes 257 513 [--run /work/runs/camvid]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_deeplab.bench.harness import benchmark  # noqa: E402
from edge_deeplab.imageio import atomic_write_text  # noqa: E402
from edge_deeplab.runtimes import load_runtime, runtime_for_path  # noqa: E402
from edge_deeplab.segmenter import Segmenter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PUBLISHED = [  # file, precision, input size
    ("deeplabv3_257_mv_gpu.tflite", "fp32", 257),
    ("deeplabv3_mnv2_pascal_quant.tflite", "int8", 513),
    ("deeplabv3_mnv2_dm05_pascal_quant.tflite", "int8", 513),
]


def count_macs(path, size) -> int:
    """Multiply-accumulates of one inference, from the graph OpenVINO reads (any format)."""
    import numpy as np
    import openvino as ov

    model = ov.Core().read_model(str(path))
    model.reshape({model.inputs[0]: [1, size, size, 3]})
    total = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        out = int(np.prod(list(op.get_output_shape(0))))
        weights = list(op.input(1).get_shape())
        per_output = {"Convolution": weights[1:], "GroupConvolution": weights[2:]}.get(
            kind, weights[-2:-1]
        )
        total += out * int(np.prod(per_output))
    return total


def keras_macs(model) -> int:
    """The same count, analytically from the Keras layers (Conv2D, depthwise, separable)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            continue
        out = layer.output.shape
        positions = int(out[1]) * int(out[2])
        kh, kw = layer.kernel_size
        cin = int(layer.input.shape[-1])
        if kind == "Conv2D":
            total += positions * int(out[3]) * kh * kw * cin
        elif kind == "DepthwiseConv2D":
            total += positions * int(out[3]) * kh * kw
        else:
            total += positions * (cin * kh * kw + cin * int(out[3]))
    return total


def make_ours(work: Path, size: int) -> Path:
    """A run folder with our architecture at size x size (untrained), once per work dir."""
    run = work / f"ours_{size}"
    if (run / "model.keras").is_file():
        return run
    from edge_deeplab.config import ModelConfig
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.model import build_deeplab_v3
    from edge_deeplab.presets import PASCAL_VOC_LABELS

    config = ModelConfig(
        num_classes=21,
        input_size=(size, size),
        alpha=1.0,
        output_stride=16,
        head="aspp",
        decoder=False,
        head_filters=256,
        dropout=0.0,
    )
    run.mkdir(parents=True, exist_ok=True)
    build_deeplab_v3(config).save(run / "model.keras")
    meta = ArtifactMetadata(
        labels=PASCAL_VOC_LABELS,
        input_size=(size, size),
        source={"note": "untrained weights: for latency only"},
    )
    atomic_write_text(run / "metadata.json", meta.to_json())
    atomic_write_text(run / "config.json", json.dumps({"model": config.to_dict()}))
    return run


def convert_run(run: Path, out: Path, size: int) -> dict:
    """{precision+suffix: artifact} for tflite/onnx/openvino fp32+int8 (cached in `out`)."""
    from edge_deeplab.converters import convert

    wanted = [
        "model_fp32.tflite",
        "model_int8.tflite",
        "model_fp32.onnx",
        "model_fp32.xml",
        "model_int8.xml",
    ]
    if not all((out / name).is_file() for name in wanted):
        shutil.rmtree(out, ignore_errors=True)
        for targets, precisions in (
            (["tflite", "openvino"], ["fp32", "int8"]),
            (["onnx"], ["fp32"]),
        ):
            convert(
                run,
                targets=targets,
                precisions=precisions,
                out_dir=out,
                calib_data="synthetic",
                calib_size=32,
                size=(size, size),
                parity_images=4,
                progress=False,
            )
    return {name: out / name for name in wanted if (out / name).is_file()}


def plan(args) -> list:
    """Every (label, path, backend, precision, size, macs, preset) to time, converting ours."""
    configs = []
    shared = (
        Path(os.environ.get("EDGE_DEEPLAB_SHARED", REPO.parent / "shared")) / "anchors" / "pascal"
    )
    for size in args.sizes:
        for name, precision, model_size in PUBLISHED:
            path = shared / name
            if model_size != size or not path.is_file():
                continue
            macs = count_macs(path, size)
            backends = (
                ["tflite", "openvino"] if precision == "fp32" else ["tflite"]
            )  # OV on int8 .tflite is wrong
            configs += [
                (f"published {path.stem}", path, b, precision, size, macs, "pascal-voc")
                for b in backends
            ]
        runs = [("ours (untrained)", make_ours(args.work, size))] + [
            (f"ours {r.name}", r) for r in args.run
        ]
        for tag, run in runs:
            artifacts = convert_run(run, args.work / f"{run.name}_art_{size}", size)
            macs = count_macs(artifacts["model_fp32.xml"], size)
            for name, path in artifacts.items():
                precision = name.split("_")[1].split(".")[0]
                configs.append(
                    (tag, path, runtime_for_path(path), precision, size, macs, None)
                )
            if args.keras and run.name.startswith("ours_"):
                configs.append((tag, run, "keras", "fp32", size, macs, None))
    return configs


def collect_rows(args) -> list:
    """Time every config in `args.rounds` interleaved rounds; keep each one's fastest round.

    The machine is shared: interleaving spreads other load over all configs alike, and the
    best round's median is the figure least disturbed by it (every round's p50 is kept).
    Only one engine is open at a time: idle thread pools of others (ONNX Runtime spins)
    would steal cores from the one being timed.
    """
    configs = plan(args)
    best = [None] * len(configs)
    for round_index in range(args.rounds):
        print(f"== round {round_index + 1}/{args.rounds}", flush=True)
        for i, (label, path, backend, precision, size, macs, preset) in enumerate(configs):
            with load_runtime(path, backend=backend, threads=args.threads) as runtime:
                segmenter = Segmenter(runtime, preset=preset)
                row = benchmark(
                    segmenter, min_time_s=args.min_time, max_runs=args.max_runs, name=label
                )
            row.update(precision=precision, size=size, macs=macs, path=str(path))
            row["gmacs_per_s"] = macs / (row["stages"]["infer"] * 1e-3) / 1e9 if macs else None
            p50s = (best[i] or {}).get("round_p50_ms", []) + [row["latency_p50_ms"]]
            if best[i] is None or row["latency_p50_ms"] < best[i]["latency_p50_ms"]:
                best[i] = row
            best[i]["round_p50_ms"] = p50s
            print(
                f"  {label:30s} {size} {backend:11s} {precision:5s} "
                f"p50 {row['latency_p50_ms']:7.2f} ms (infer {row['stages']['infer']:7.2f})",
                flush=True,
            )
    return best


def print_table(rows) -> None:
    print(
        f"\n{'model':52s} {'size':>4s} {'runtime':11s} {'prec':5s} {'p50':>7s} {'p90':>7s} "
        f"{'infer':>7s} {'fps':>6s} {'GMAC':>5s} {'GMAC/s':>6s}"
    )
    for r in sorted(rows, key=lambda r: (r["size"], r["runtime"], r["precision"], r["model"])):
        rate = f"{r['gmacs_per_s']:6.1f}" if r["gmacs_per_s"] else "     -"
        print(
            f"{r['model'][:52]:52s} {r['size']:4d} {r['runtime']:11s} {r['precision']:5s} "
            f"{r['latency_p50_ms']:7.2f} {r['latency_p90_ms']:7.2f} {r['stages']['infer']:7.2f} "
            f"{r['fps']:6.1f} {r['macs'] / 1e9:5.2f} {rate}"
        )


def benchmark_app(path, size, threads, precision="f32") -> float:
    """OpenVINO's own tool: sync, one stream, one request, -hint none -nthreads N; median ms.

    `precision` f32 matches our runtime, which compiles fp32 IRs in f32 on the CPU (the
    plugin's default on CPUs with bf16 units is bf16, about 2x faster and less exact).
    """
    cmd = f"-d CPU -hint none -nthreads {threads} -nstreams 1 -nireq 1 -api sync -t 5"
    cmd = [str(BIN / "benchmark_app"), "-m", str(path), *cmd.split()]
    cmd += ["-shape", f"[1,{size},{size},3]", "-infer_precision", f"CPU:{precision}"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    match = re.search(r"Median:\s+([\d.]+) ms", text)
    return float(match.group(1)) if match else None


def litert_benchmark(path, threads, work: Path) -> float:
    """LiteRT's own Python tool (CompiledModel API, XNNPACK); median ms."""
    result = work / "litert_benchmark.json"
    result.unlink(missing_ok=True)
    cmd = [
        str(BIN / "litert-benchmark"),
        "--model",
        str(path),
        "--num_threads",
        str(threads),
        "--num_runs",
        "100",
        "--warmup_runs",
        "5",
        "--result_json",
        str(result),
    ]
    subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return json.loads(result.read_text())["latency"]["median_ms"] if result.is_file() else None


def crosscheck(args) -> dict:
    """Our harness and the engine's own tool on the same model, alternated for `rounds`.

    OpenVINO: our 257 fp32 IR, our runtime with the tool's settings (-hint none, N threads,
    one stream, sync). LiteRT: the published 257 float model, XNNPACK, N threads.
    """
    size = min(args.sizes)
    shared = Path(os.environ.get("EDGE_DEEPLAB_SHARED", REPO.parent / "shared"))
    checks = {
        "openvino": (
            args.work / f"ours_{size}_art_{size}" / "model_fp32.xml",
            "benchmark_app",
            {"hint": "none"},
            None,
        ),
        "litert": (
            shared / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite",
            "litert-benchmark",
            {},
            "pascal-voc",
        ),
    }
    out = {}
    for engine, (path, tool, options, preset) in checks.items():
        if not path.is_file() or not (BIN / tool).is_file():
            out[engine] = {"note": f"{tool} not found in {BIN}" if path.is_file() else f"no {path}"}
            print(f"cross-check {engine}: {out[engine]['note']}")
            continue
        ours, e2e, theirs = [], [], []
        with load_runtime(path, threads=args.threads, **options) as runtime:
            segmenter = Segmenter(runtime, preset=preset)
            size = segmenter.metadata.input_size[0]
            for _ in range(args.rounds):
                mine = benchmark(segmenter, min_time_s=args.min_time, max_runs=args.max_runs)
                ours.append(mine["stages"]["infer"])
                e2e.append(mine["latency_p50_ms"])
                if engine == "openvino":
                    theirs.append(benchmark_app(path, size, args.threads))
                else:
                    theirs.append(litert_benchmark(path, args.threads, args.work))
        valid = [t for t in theirs if t]
        out[engine] = {
            "model": str(path),
            "tool": tool,
            "ours_infer_p50_ms": ours,
            "ours_end_to_end_p50_ms": e2e,
            "tool_median_ms": theirs,
        }
        if not valid:
            print(f"cross-check {engine}: {tool} gave no figure")
            continue
        print(
            f"cross-check {engine} on {path.name}: our infer p50 {min(ours):.2f} ms "
            f"(rounds {_fmt(ours)}), {tool} median {min(valid):.2f} ms (rounds {_fmt(valid)}); "
            f"our end-to-end p50 {min(e2e):.2f} ms"
        )
    return out


def analytic_macs(args) -> dict:
    """MACs of our models counted from their Keras layers (checks `count_macs`)."""
    import keras

    import edge_deeplab.keras_layers  # noqa: F401  registers the custom layer

    counts = {}
    for run in [make_ours(args.work, s) for s in args.sizes]:
        model = keras.saving.load_model(str(run / "model.keras"), compile=False)
        counts[run.name] = keras_macs(model)
        print(f"MACs of {run.name}: {counts[run.name] / 1e9:.3f} G analytic (Keras layers)")
    return counts


def _fmt(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[257, 513])
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; the fastest is kept"
    )
    parser.add_argument("--max-runs", type=int, default=200)
    parser.add_argument(
        "--run", type=Path, nargs="*", default=[], help="trained run folders to include"
    )
    parser.add_argument(
        "--keras", action="store_true", help="also time the Keras (TensorFlow) runtime"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/edge_deeplab_bench"),
        help="converted models (cached)",
    )
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "bench_runtimes.json"
    )
    parser.add_argument("--crosscheck-only", action="store_true", help="only the tool cross-check")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.run = [
        r
        for r in args.run
        if (r / "model.keras").is_file() or print(f"skipping {r}: no model.keras yet")
    ]
    report = json.loads(args.json.read_text()) if args.json.is_file() else {}
    if not args.crosscheck_only:
        rows = collect_rows(args)
        print_table(rows)
        report.update(rows=rows, keras_macs=analytic_macs(args), threads=args.threads)
    report.update(
        crosscheck=crosscheck(args), cpu_count=os.cpu_count(), load_average=list(os.getloadavg())
    )
    atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

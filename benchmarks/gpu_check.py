"""The GPU check: TensorRT engines and the TF-GPU reference on a machine with an NVIDIA GPU.

One prepared script, under 8 minutes, for a machine this project has never had in CI:

1. installs edge-deeplab with the `gpu`, `onnx` and `tensorrt` extras into a fresh venv
   (`--wheels DIR` for a machine without the package registry; `--no-install` to use the
   running interpreter as it is), then runs itself again inside it;
2. builds fp16 and int8 TensorRT engines of the tiny model (trained here for a few seconds)
   and of a CamVid-size model (360x480: `--camvid-run DIR` for a trained one, else the
   recipe's architecture, untrained, for parity and speed only), each with its parity check
   against Keras;
3. times TF-GPU Keras (fp32, and mixed precision), TensorRT fp16 and int8 end to end
   through the Segmenter (image in, class map out), and with a trained CamVid run and
   `--camvid-data`, scores val mIoU of Keras and both engines;
4. writes everything to `--out` (JSON) and prints the targets: TensorRT fp16 >= 3x the
   TF-GPU reference, int8 mIoU within 1 point of fp32 on CamVid val.

    python benchmarks/gpu_check.py --out gpu_check.json [--camvid-run runs/camvid --camvid-data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 7.5 * 60  # stages that would start after this are skipped (and say so)
EXTRAS = ".[gpu,onnx,tensorrt]"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    p.add_argument("--work", type=Path, default=Path("/tmp/edge_deeplab_gpu_check"))
    p.add_argument("--venv", type=Path, default=None, help="venv to make (default WORK/venv)")
    p.add_argument("--wheels", type=Path, default=None, help="install from this folder of wheels only")
    p.add_argument("--no-install", action="store_true", help="use this interpreter as it is")
    p.add_argument("--camvid-run", type=Path, default=None, help="a trained CamVid run folder")
    p.add_argument("--camvid-data", type=Path, default=None, help="CamVid folder (train/ val/) for mIoU")
    p.add_argument("--val-images", type=int, default=101, help="CamVid val images scored (all 101)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def install_and_rerun(args, argv) -> int:
    """Make the venv, install the extras into it, run this script again there."""
    venv = args.venv or args.work / "venv"
    python = venv / "bin" / "python"
    start = time.perf_counter()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    source = ["--no-index", "--find-links", str(args.wheels)] if args.wheels else []
    subprocess.run([str(python), "-m", "pip", "install", "-q", *source, "-e", EXTRAS], cwd=REPO, check=True)
    print(f"installed {EXTRAS} into {venv} in {time.perf_counter() - start:.0f} s", flush=True)
    return subprocess.run([str(python), __file__, *argv, "--inner"]).returncode


def environment() -> dict:
    import tensorflow as tf

    from edge_deeplab.nvidia import gpu_name

    try:
        import tensorrt

        trt = tensorrt.__version__
    except ImportError as exc:
        trt = f"missing: {exc}"
    return {"gpu": gpu_name(), "tensorflow": tf.__version__, "tensorrt": trt,
            "tf_gpus": [d.name for d in tf.config.list_logical_devices("GPU")]}


def tiny_run(work: Path) -> Path:
    from edge_deeplab.config import DataConfig, ModelConfig, TrainConfig
    from edge_deeplab.training import train

    if (work / "tiny" / "model.keras").is_file():  # trained by an earlier run of the check
        return work / "tiny"
    model = ModelConfig(num_classes=3, input_size=(64, 64), alpha=0.35, head_filters=32, decoder=False)
    data = DataConfig(format="synthetic", num_classes=3, synthetic_train=192, synthetic_val=16,
                      synthetic_size=(64, 64), seed=0)
    return Path(train(model, data, TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, seed=0),
                      work / "tiny", verbose=0))


def camvid_size_run(work: Path) -> Path:
    """The CamVid recipe's architecture at 360x480 with untrained weights (speed, parity)."""
    from edge_deeplab.config import ModelConfig
    from edge_deeplab.imageio import atomic_write_text
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.model import build_deeplab_v3
    from edge_deeplab.presets import CAMVID_LABELS

    run = work / "camvid_size"
    config = ModelConfig(num_classes=11, input_size=(360, 480), alpha=1.0, output_stride=16, head="lite",
                         decoder=True, decoder_filters=96, dropout=0.0)
    run.mkdir(parents=True, exist_ok=True)
    build_deeplab_v3(config).save(run / "model.keras")
    meta = ArtifactMetadata(labels=CAMVID_LABELS, input_size=(360, 480), source={"note": "untrained"})
    atomic_write_text(run / "metadata.json", meta.to_json())
    atomic_write_text(run / "config.json", json.dumps({"model": config.to_dict()}))
    return run


def engines(run: Path, out: Path, calib_data) -> dict:
    """{precision: {status, path, parity, seconds}} of TensorRT fp16 and int8 builds."""
    from edge_deeplab.converters import convert
    from edge_deeplab.errors import EdgeDeeplabError

    try:
        results = convert(run, "tensorrt", "fp16,int8", out, calib_data=calib_data, calib_size=64,
                          parity_images=16, progress=False)
    except EdgeDeeplabError as exc:  # no TensorRT or no GPU here: the check says so and goes on
        return {p: {"status": "not available", "reason": str(exc), "path": ""} for p in ("fp16", "int8")}
    return {r.precision: {"status": str(r.status), "reason": r.reason, "path": str(r.path or ""),
                          "parity": r.parity, "build_s": round(r.seconds, 1)} for r in results}


def timings(run: Path, built: dict) -> dict:
    """End-to-end latency rows: Keras on the GPU (fp32, mixed), TensorRT fp16 and int8."""
    from edge_deeplab.bench.harness import benchmark
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    models = {"keras-gpu-fp32": (run, {"device": "GPU"}),
              "keras-gpu-mixed": (run, {"device": "GPU", "mixed_precision": True})}
    models.update({f"tensorrt-{p}": (Path(b["path"]), {}) for p, b in built.items() if b["status"] == "ok"})
    rows = {}
    for name, (path, options) in models.items():
        try:
            with Segmenter(load_runtime(path, **options)) as segmenter:
                row = benchmark(segmenter, warmup=10, min_time_s=3.0, max_runs=500, name=name)
        except Exception as exc:  # noqa: BLE001 - a failed engine is a row of the check, not its end
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        rows[name] = {k: row[k] for k in ("latency_p50_ms", "latency_p90_ms", "fps", "stages", "device")}
    return rows


def camvid_miou(run: Path, built: dict, data: Path, limit: int) -> dict:
    """Val mIoU of the Keras model (GPU) and each engine, through the Segmenter."""
    from edge_deeplab.config import DataConfig
    from edge_deeplab.data.datasets import load_dataset
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    config = json.loads((run / "config.json").read_text())["data"]
    dataset = load_dataset(DataConfig.from_dict({**config, "path": str(data)}), "val")
    paths = {"keras-fp32": run, **{f"tensorrt-{p}": Path(b["path"]) for p, b in built.items() if b["status"] == "ok"}}
    scores = {}
    for name, path in paths.items():
        with Segmenter(load_runtime(path)) as segmenter:
            scores[name] = evaluate(segmenter, dataset, limit=limit).miou
    return scores


def verdicts(report: dict) -> dict:
    """The issue's two targets, where measured."""
    found = {}
    for model, part in report["models"].items():
        rows = part.get("timings", {})
        keras, fp16 = rows.get("keras-gpu-fp32", {}).get("fps"), rows.get("tensorrt-fp16", {}).get("fps")
        if keras and fp16:
            found[f"{model}: tensorrt fp16 / tf-gpu"] = {"ratio": round(fp16 / keras, 2), "target": 3.0,
                                                        "met": fp16 / keras >= 3.0}
        miou = part.get("miou", {})
        if "keras-fp32" in miou and "tensorrt-int8" in miou:
            drop = 100 * (miou["keras-fp32"] - miou["tensorrt-int8"])
            found[f"{model}: int8 mIoU drop (points)"] = {"drop": round(drop, 2), "target": 1.0, "met": drop <= 1.0}
    return found


def check(args) -> dict:
    start = time.perf_counter()
    report = {"environment": environment(), "models": {}, "skipped": []}
    print(json.dumps(report["environment"]), flush=True)
    camvid = args.camvid_run
    plans = [("tiny", lambda: tiny_run(args.work), "synthetic"),
             ("camvid-360x480", lambda: camvid or camvid_size_run(args.work),
              str(args.camvid_data / "train") if camvid and args.camvid_data else "synthetic")]
    for name, make, calib in plans:
        if time.perf_counter() - start > BUDGET_S:
            report["skipped"].append(f"{name}: over the {BUDGET_S / 60:.1f} min budget")
            continue
        run = make()
        part = report["models"][name] = {"run": str(run), "engines": engines(run, args.work / f"{name}_engines", calib)}
        part["timings"] = timings(run, part["engines"])
        if name.startswith("camvid") and camvid and args.camvid_data:
            part["miou"] = camvid_miou(run, part["engines"], args.camvid_data, args.val_images)
        print(name, json.dumps(part, default=str)[:2000], flush=True)
    report["targets"] = verdicts(report)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not (args.inner or args.no_install):
        return install_and_rerun(args, argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.work.mkdir(parents=True, exist_ok=True)
    report = check(args)
    from edge_deeplab.imageio import atomic_write_text

    atomic_write_text(args.out, json.dumps(report, indent=2, default=str))
    for target, verdict in report["targets"].items():
        print(f"{target}: {verdict}")
    print(f"wrote {args.out} ({report['wall_s']:.0f} s)")
    built = any(e["status"] == "ok" for m in report["models"].values() for e in m["engines"].values())
    missed = [t for t, v in report["targets"].items() if not v["met"]]
    if not built or missed:
        print("check FAILED: " + ("; ".join(missed) if missed else "no TensorRT engine was built"))
    return 0 if built and not missed else 1


if __name__ == "__main__":
    sys.exit(main())

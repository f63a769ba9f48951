"""Host pre/post-processing against the model: end-to-end p50 and the host's share of it.

One run measures, per model and scenario, through `Segmenter.predict` (what predict, bench,
eval, report and the demo use): end-to-end p50 (image in -> class map at the image's size
out), the engine's own `infer` p50, and the host share = (end-to-end - infer) / end-to-end,
i.e. everything that is not the engine (preprocess, postprocess, validation, Python).

Scenarios (issue 11):
- 513x513 models on the 513x513 bird photo (RGB, the image is the model's size);
- 257x257 models on a 768x432 video frame (BGR, as the demo hands frames over);
- Coral's official uint8 DeepLab (`deeplabv3_mnv2_pascal_quant.tflite`) through our
  Segmenter on the bird, and through the bare LiteRT interpreter (set_tensor, invoke,
  get_tensor on the raw pixels: the floor for any host code);
- the host path alone (257 on the frame, the engine replaced by its stored output), back to
  back and after a 3.5 ms busy wait: on this 2-core VM the host work costs 2-3x more after
  any pause than in a tight loop (its memory is cold again), which is what it pays in use.

"ours" is our architecture in the default ModelConfig (MobileNetV2 alpha 0.35, OS16, ASPP
with decoder, 4 classes: what `train` makes on the synthetic dataset) with untrained
weights, converted with this checkout's defaults to int8 TFLite and OpenVINO INT8 (cached
in --work: use one folder per checkout). Scenarios are timed in alternating rounds and the
medians of the rounds reported, so load from other jobs falls on all alike.

    python benchmarks/host_overhead.py --work /tmp/host_after --json host_after.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from edge_deeplab.bench.harness import timed_repeats  # noqa: E402
from edge_deeplab.imageio import atomic_write_text, read_image  # noqa: E402
from edge_deeplab.runtimes import load_runtime  # noqa: E402
from edge_deeplab.segmenter import Segmenter  # noqa: E402

SHARED = Path(os.environ.get("EDGE_DEEPLAB_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CORAL = SHARED / "anchors/pascal/deeplabv3_mnv2_pascal_quant.tflite"
BIRD = SHARED / "anchors/pascal/bird_segmentation.bmp"
VIDEO = SHARED / "media/one-by-one-person-detection.mp4"


def make_ours(work: Path, size: int) -> Path:
    """Our architecture at size x size (untrained), as a run folder, once per work dir."""
    from edge_deeplab.config import ModelConfig
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.model import build_deeplab_v3

    run = work / f"ours_{size}"
    if (run / "model.keras").is_file():
        return run
    config = ModelConfig(input_size=(size, size))
    run.mkdir(parents=True, exist_ok=True)
    build_deeplab_v3(config).save(run / "model.keras")
    labels = ("background",) + tuple(f"class{i}" for i in range(1, config.num_classes))
    meta = ArtifactMetadata(labels=labels, input_size=(size, size))
    atomic_write_text(run / "metadata.json", meta.to_json())
    atomic_write_text(run / "config.json", json.dumps({"model": config.to_dict()}))
    return run


def convert_ours(work: Path, size: int) -> dict:
    """{"tflite": .tflite, "openvino": .xml} int8 artifacts at `size` with default options."""
    from edge_deeplab.converters import convert

    out = work / f"artifacts_{size}"
    wanted = {"tflite": out / "model_int8.tflite", "openvino": out / "model_int8.xml"}
    if not all(p.is_file() for p in wanted.values()):
        convert(make_ours(work, size), targets=["tflite", "openvino"], precisions=["int8"],
                out_dir=out, calib_data="synthetic", calib_size=16, parity_images=2,
                progress=False)
    return wanted


def video_frame(index: int = 300) -> np.ndarray:
    """One BGR frame of the shared video (768x432)."""
    from edge_deeplab import deps

    cv2 = deps.cv2()
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read a frame of {VIDEO}")
    return frame


def segmenter_timer(segmenter, image, order):
    """A callable timing one predict; returns (e2e ms list, infer ms list) it fills."""
    e2e, infer = [], []

    def call():
        t0 = time.perf_counter()
        result = segmenter.predict(image, order=order)
        e2e.append((time.perf_counter() - t0) * 1e3)
        infer.append(result.timings["infer"])

    return call, e2e, infer


class StoredOutput:
    """The engine replaced by its stored answer, after a busy wait of `busy_ms` (the CPU
    stays ours, no memory traffic): what the host path costs on its own."""

    def __init__(self, runtime, output: np.ndarray, busy_ms: float):
        self._runtime, self._output, self._busy_s = runtime, output, busy_ms / 1e3

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def run(self, batch):
        end = time.perf_counter() + self._busy_s
        while time.perf_counter() < end:
            pass
        return self._output


def host_alone_timers(path: Path, frame: np.ndarray, threads: int) -> dict:
    """The 257 frame scenario with the engine replaced: back to back, and with a 3.5 ms
    busy wait where the model ran (host work after a pause, as in real use)."""
    timers = {}
    for label, busy_ms in (("back to back", 0.0), ("3.5 ms busy engine", 3.5)):
        segmenter = Segmenter(load_runtime(path, threads=threads), upsample="labels")
        output = segmenter.runtime.run(segmenter.preprocess([frame], order="BGR")[0])
        segmenter.runtime = StoredOutput(segmenter.runtime, output, busy_ms)
        timers[f"host alone 257 on frame, {label}"] = segmenter_timer(segmenter, frame, "BGR")
    return timers


def interpreter_timer(path: Path, image: np.ndarray, threads: int):
    """Coral's model on the bare LiteRT interpreter: raw pixels in, class map out."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    interp.allocate_tensors()
    index_in = interp.get_input_details()[0]["index"]
    index_out = interp.get_output_details()[0]["index"]
    batch = np.ascontiguousarray(image[None])
    e2e = []

    def call():
        t0 = time.perf_counter()
        interp.set_tensor(index_in, batch)
        interp.invoke()
        interp.get_tensor(index_out)
        e2e.append((time.perf_counter() - t0) * 1e3)

    return call, e2e, e2e


def scenarios(args) -> dict:
    """name -> (timed call, e2e list, infer list), every runtime opened once."""
    bird, frame = read_image(BIRD), video_frame()
    table = {}
    cases = [(513, bird, "RGB", "513 on bird 513x513", "reduce"),
             (257, frame, "BGR", "257 on frame 768x432", "reduce")]  # the Segmenter's default shrink
    if args.shrink:  # exact area averaging, and the demo's real-time bilinear
        cases += [(257, frame, "BGR", f"257 on frame, shrink {mode}", mode) for mode in ("area", "linear")]
    for size, image, order, where, shrink in cases:
        for engine, path in convert_ours(args.work, size).items():
            segmenter = Segmenter(load_runtime(path, threads=args.threads), upsample="labels",
                                  **({"shrink": shrink} if args.shrink else {}))
            table[f"ours {engine} int8 {where}"] = segmenter_timer(segmenter, image, order)
    coral = Segmenter(load_runtime(CORAL, threads=args.threads), preset="pascal-voc",
                      upsample="labels")
    table["coral via Segmenter 513 on bird"] = segmenter_timer(coral, bird, "RGB")
    table["coral raw interpreter 513 on bird"] = interpreter_timer(CORAL, bird, args.threads)
    table.update(host_alone_timers(convert_ours(args.work, 257)["tflite"], frame, args.threads))
    return table


def measure(args) -> dict:
    table = scenarios(args)
    rounds = {name: [] for name in table}
    for _ in range(args.rounds):
        for name, (call, e2e, infer) in table.items():
            e2e.clear()
            infer.clear()
            timed_repeats(call, warmup=3, min_time_s=args.min_time, max_runs=400)
            e2e_p50 = float(np.median(e2e))
            host = [t - i for t, i in zip(e2e, infer)]
            rounds[name].append((e2e_p50, float(np.median(infer)), float(np.median(host))))
    rows = {}
    for name, values in rounds.items():
        e2e_p50, infer_p50, host_p50 = (statistics.median(v[k] for v in values) for k in range(3))
        rows[name] = {"e2e_p50_ms": e2e_p50, "infer_p50_ms": infer_p50, "host_p50_ms": host_p50,
                      "host_share": host_p50 / e2e_p50}
    return rows


def ratios(rows: dict) -> dict:
    coral = rows["coral via Segmenter 513 on bird"]["e2e_p50_ms"]
    raw = rows["coral raw interpreter 513 on bird"]["e2e_p50_ms"]
    out = {"coral_segmenter_over_raw": coral / raw}
    for engine in ("tflite", "openvino"):
        ours = rows[f"ours {engine} int8 513 on bird 513x513"]["e2e_p50_ms"]
        out[f"ours_{engine}_over_coral"] = ours / coral
    return out


def report(rows: dict, figures: dict) -> str:
    lines = [f"{'model / scenario':<42} {'e2e p50':>9} {'infer':>8} {'host':>8} {'share':>7}"]
    for name, row in rows.items():
        lines.append(f"{name:<42} {row['e2e_p50_ms']:8.2f}ms {row['infer_p50_ms']:7.2f}ms "
                     f"{row['host_p50_ms']:7.2f}ms {row['host_share']:6.1%}")
    lines.append("")
    lines += [f"{key}: {value:.3f}" for key, value in figures.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("host_overhead_work"),
                        help="cache of the converted models (one folder per checkout)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per scenario and round")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--no-shrink", dest="shrink", action="store_false",
                        help="no shrink-mode rows (for checkouts whose Segmenter lacks `shrink`)")
    args = parser.parse_args(argv)
    if not CORAL.is_file() or not BIRD.is_file() or not VIDEO.is_file():
        print(f"shared data not found under {SHARED}; set EDGE_DEEPLAB_SHARED", file=sys.stderr)
        return 2
    rows = measure(args)
    figures = ratios(rows)
    print(report(rows, figures))
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "ratios": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

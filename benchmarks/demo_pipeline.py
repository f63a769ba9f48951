"""Demo pipeline vs the model alone: FPS and capture-to-display latency on this machine.

Three measurements with one model, on frames of a real video (768x432 by default):

Measured in alternating rounds (the medians are reported), so that load from other jobs on a
shared machine falls on all three alike:

1. model only: `edge_deeplab.bench.harness.benchmark` (Segmenter.predict, serial) on one
   video frame: the FPS and latency the model gives with nothing else to do;
2. pipeline, file mode: the video through capture -> inference -> render threads with no
   frame dropped, headless and unrecorded (nothing is drawn): end-to-end FPS, target >= 0.95x
   model FPS (issue 11);
3. pipeline, live mode: the same frames replayed as a camera at `--camera-fps` (frames
   arrive on their own clock and stale ones are dropped): capture-to-display latency p50,
   target <= 1.5x the model's latency.

Run it on an otherwise idle machine; on a shared one, repeat and compare medians.

Example:
    python benchmarks/demo_pipeline.py \
        --model ../shared/anchors/pascal/deeplabv3_257_mv_gpu.tflite --preset pascal-voc \
        --json demo_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edge_deeplab import deps
from edge_deeplab.bench.harness import benchmark
from edge_deeplab.demos.pipeline import DemoOptions, run_pipeline
from edge_deeplab.demos.sources import Source, parse_source
from edge_deeplab.imageio import atomic_write_text
from edge_deeplab.runtimes import load_runtime
from edge_deeplab.segmenter import Segmenter

SHARED = Path(os.environ.get("EDGE_DEEPLAB_SHARED", Path(__file__).resolve().parents[2] / "shared"))


class ReplayCamera(Source):
    """Decoded frames played back as a live camera at `fps` (a frame every 1/fps s)."""

    live = True

    def __init__(self, frames, fps: float):
        super().__init__(f"replay@{fps:g}fps")
        self.frames, self.fps = frames, fps
        self._index, self._next = 0, 0.0

    def open(self):
        self._index, self._next = 0, time.perf_counter()
        return self

    def read(self):
        self._next += 1.0 / self.fps
        delay = self._next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        frame = self.frames[self._index % len(self.frames)]
        self._index += 1
        return frame


def decode(video: str, count: int, start: int) -> list:
    source = parse_source(f"{video}?start={start}" if start else video)
    frames = []
    with source:
        while len(frames) < count:
            frame = source.read()
            if frame is None:
                break
            frames.append(frame)
    return frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=str(SHARED / "anchors/pascal/deeplabv3_257_mv_gpu.tflite")
    )
    parser.add_argument("--preset", default="pascal-voc")
    parser.add_argument("--video", default=str(SHARED / "media/one-by-one-person-detection.mp4"))
    parser.add_argument(
        "--start", type=int, default=250, help="first frame (people walk from 250 on)"
    )
    parser.add_argument("--frames", type=int, default=80, help="frames per pipeline run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--camera-fps", type=float, default=30.0)
    parser.add_argument("--view", default="overlay")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    deps.cv2("the demo benchmark")
    if not Path(args.model).is_file() or not Path(args.video).is_file():
        print(
            f"model or video not found ({args.model}, {args.video}); set EDGE_DEEPLAB_SHARED",
            file=sys.stderr,
        )
        return 2

    # As `edge-deeplab demo` opens it: the real-time upsample and shrink.
    segmenter = Segmenter(load_runtime(args.model, threads=args.threads), preset=args.preset or None,
                          upsample="labels", shrink="linear")
    frames = decode(args.video, args.frames, args.start)
    rounds = [one_round(segmenter, frames, args) for _ in range(args.rounds)]
    segmenter.runtime.close()

    result = summarize(args, rounds, frames[0].shape)
    print(report(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def one_round(segmenter, frames: list, args) -> dict:
    """Model alone, then the pipeline on the file, then on the replayed camera: measured
    back to back, so a busy moment on a shared machine hits all three alike."""
    options = DemoOptions(view=args.view, max_frames=args.frames)
    rgb = np.ascontiguousarray(frames[0][:, :, ::-1])
    model = benchmark(segmenter, image=rgb, min_time_s=2.0, max_runs=args.frames)
    with parse_source(f"{args.video}?start={args.start}") as video:
        file_run = run_pipeline(segmenter, video, options)
    with ReplayCamera(frames, args.camera_fps) as camera:
        live_run = run_pipeline(segmenter, camera, options)
    return {
        "model_only": {
            "fps": model["fps"],
            "latency_p50_ms": model["latency_p50_ms"],
            "stages": model["stages"],
        },
        "pipeline_file": _run_figures(file_run),
        "pipeline_live": dict(_run_figures(live_run), camera_fps=args.camera_fps),
        "fps_ratio": file_run["fps"] / model["fps"],
        "latency_ratio": live_run["latency_ms"]["p50"] / model["latency_p50_ms"],
    }


def summarize(args, rounds: list, shape) -> dict:
    """The round whose FPS ratio is the median one, plus every round's two ratios."""
    middle = sorted(rounds, key=lambda r: r["fps_ratio"])[len(rounds) // 2]
    return dict(
        middle,
        model=args.model,
        threads=args.threads,
        frame_size=[int(shape[0]), int(shape[1])],
        cpu_count=os.cpu_count(),
        fps_ratio=statistics.median(r["fps_ratio"] for r in rounds),
        latency_ratio=statistics.median(r["latency_ratio"] for r in rounds),
        rounds=[{k: r[k] for k in ("fps_ratio", "latency_ratio")} for r in rounds],
        targets={"fps_ratio": ">= 0.95", "latency_ratio": "<= 1.5"},
    )


def _run_figures(stats: dict) -> dict:
    keys = ("frames", "fps", "model_fps", "latency_ms", "stages", "dropped")
    return {key: stats[key] for key in keys}


def report(result: dict) -> str:
    model, fil, live = result["model_only"], result["pipeline_file"], result["pipeline_live"]
    fps_ok = "ok" if result["fps_ratio"] >= 0.95 else "MISSED"
    latency_ok = "ok" if result["latency_ratio"] <= 1.5 else "MISSED"
    stages = ", ".join(f"{k} {v:.1f}" for k, v in model["stages"].items())
    pipe_stages = ", ".join(
        f"{k} {v['p50']:.1f}" for k, v in fil["stages"].items() if v["p50"] is not None
    )
    return "\n".join(
        [
            f"model {result['model']} ({result['threads']} threads, frames {result['frame_size']})",
            f"  model only       {model['fps']:6.1f} FPS, latency p50 "
            f"{model['latency_p50_ms']:.1f} ms ({stages})",
            f"  pipeline, file   {fil['fps']:6.1f} FPS = {result['fps_ratio']:.2f}x model "
            f"(target >= 0.95x: {fps_ok}), {fil['frames']} frames, dropped {fil['dropped']}",
            f"  pipeline, camera {live['fps']:6.1f} FPS at {live['camera_fps']:g} fps in, "
            f"capture-to-display p50 {live['latency_ms']['p50']:.1f} ms "
            f"= {result['latency_ratio']:.2f}x model latency (target <= 1.5x: {latency_ok}), "
            f"dropped {live['dropped']}",
            f"  pipeline stages p50 (file): {pipe_stages}; model FPS inside the pipeline "
            f"{fil['model_fps']:.1f} (pre+infer+post p50, same moment as the pipeline FPS)",
            "  rounds (fps ratio, latency ratio): "
            + ", ".join(
                f"({r['fps_ratio']:.2f}, {r['latency_ratio']:.2f})" for r in result["rounds"]
            ),
            f"  medians: fps ratio {result['fps_ratio']:.2f}, "
            f"latency ratio {result['latency_ratio']:.2f}",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

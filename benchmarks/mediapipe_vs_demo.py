"""Our real-time path and MediaPipe's ImageSegmenter (VIDEO mode), same artifact, same video.

    python benchmarks/mediapipe_vs_demo.py MODEL.tflite [--video MP4] [--frames N] [--json OUT]

Decodes the first N frames once (OpenCV), then times, side by side in one run:
- ours: the demo's inference stage, `Segmenter(upsample="labels")` on LiteRT (XNNPACK);
- MediaPipe: `vision.ImageSegmenter` in VIDEO mode in its own venv (tests/runtimes/test_clients.py
  builds it), category masks, timed inside that process.
Prints FPS of each and the agreement of their class maps. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "media" / "one-by-one-person-detection.mp4"
MP_VIDEO = '''
import sys, time, numpy as np, mediapipe as mp
from mediapipe.tasks import python as mpt
from mediapipe.tasks.python import vision
frames = np.load(sys.argv[2])["frames"]
opts = vision.ImageSegmenterOptions(base_options=mpt.BaseOptions(model_asset_path=sys.argv[1]),
    running_mode=vision.RunningMode.VIDEO, output_category_mask=True)
masks = []
with vision.ImageSegmenter.create_from_options(opts) as seg:
    start = time.perf_counter()
    for i, f in enumerate(frames):
        r = seg.segment_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(f)), i * 100)
        masks.append(r.category_mask.numpy_view().reshape(f.shape[:2]).copy())
    seconds = time.perf_counter() - start
np.savez(sys.argv[3], masks=np.stack(masks), seconds=seconds)
'''


def read_frames(video: Path, count: int) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1].copy())  # RGB
    capture.release()
    return np.stack(frames)


def ours(model: Path, frames: np.ndarray):
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with Segmenter(load_runtime(model), upsample="labels") as segmenter:
        segmenter.predict(frames[0])  # warm-up
        start = time.perf_counter()
        labels = [segmenter.predict(f).labels for f in frames]
        return np.stack(labels), time.perf_counter() - start


def mediapipe(model: Path, frames: np.ndarray):
    sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "runtimes")]
    from test_clients import client_python

    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "frames.npz", frames=frames)
        subprocess.run([str(client_python("mediapipe")), "-c", MP_VIDEO, str(model), f"{tmp}/frames.npz",
                        f"{tmp}/out.npz"], check=True, capture_output=True, text=True)
        out = np.load(Path(tmp) / "out.npz")
        return out["masks"], float(out["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a MediaPipe-ready .tflite (convert --head logits)")
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    frames = read_frames(args.video, args.frames)
    our_maps, our_s = ours(args.model, frames)
    mp_maps, mp_s = mediapipe(args.model, frames)
    figures = {"frames": len(frames), "frame_size": list(frames.shape[1:3]),
               "ours_fps": len(frames) / our_s, "mediapipe_fps": len(frames) / mp_s,
               "agreement": float(np.mean(our_maps == mp_maps))}
    print(f"{'pipeline':<44}{'FPS':>8}")
    print(f"{'edge-deeplab Segmenter (demo inference stage)':<44}{figures['ours_fps']:8.1f}")
    print(f"{'MediaPipe ImageSegmenter, VIDEO mode':<44}{figures['mediapipe_fps']:8.1f}")
    size = f"{frames.shape[2]}x{frames.shape[1]}"
    print(f"class-map agreement: {figures['agreement']:.2%} over {len(frames)} frames {size}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`demo --serve` under load: pipeline FPS with no viewer vs several, and memory with a stalled one.

1. FPS: the same video frames through the demo pipeline (file mode, every frame) without
   `--serve`, served with nobody watching, and served to `--viewers` MJPEG readers at once
   (each reads every JPEG it can, undecoded, as a browser on another machine would). The modes
   alternate round by round and the medians are reported, so load from other jobs on a shared
   machine falls on all alike. Target (issue 21): 5 viewers within 10% of no viewer.
2. A stalled viewer: a client that requests the stream and never reads, beside one normal
   viewer, for `--stall-frames` frames of an endless synthetic source; RSS is sampled every
   0.5 s. Target: flat (no growth beyond noise) and the pipeline not blocked.

Example:
    python benchmarks/demo_serve.py --json demo_serve.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

from edge_deeplab.demos.pipeline import DemoOptions, run_pipeline
from edge_deeplab.demos.serve_address import parse_serve
from edge_deeplab.demos.sources import parse_source
from edge_deeplab.demos.stream_client import iter_jpegs
from edge_deeplab.imageio import atomic_write_text
from edge_deeplab.runtimes import load_runtime
from edge_deeplab.segmenter import Segmenter

SHARED = Path(os.environ.get("EDGE_DEEPLAB_SHARED", Path(__file__).resolve().parents[2] / "shared"))


class Viewers(logging.Handler):
    """Starts `count` stream readers (and optionally one stalled client) once the demo serves:
    a handler of the demo server's log, which says where it serves."""

    def __init__(self, count: int, stalled: bool = False):
        super().__init__()
        self.count, self.stalled, self.received, self._sockets = count, stalled, [], []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"serving the demo at (http://\S+)", record.getMessage())
        if found:
            self._start(found.group(1))

    def _start(self, url: str) -> None:
        port = int(re.search(r":(\d+)/", url).group(1))
        if self.stalled:
            stall = socket.create_connection(("127.0.0.1", port))
            stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stall.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")  # never read
            self._sockets.append(stall)
        for index in range(self.count):
            self.received.append(0)
            threading.Thread(target=self._read, args=(url + "stream.mjpg", index), daemon=True).start()

    def _read(self, url: str, index: int) -> None:
        try:
            for _ in iter_jpegs(url):
                self.received[index] += 1
        except OSError:  # the demo ended and closed the stream
            return

    def close(self) -> None:
        for stall in self._sockets:
            stall.close()
        super().close()


def run_once(segmenter, source_uri: str, frames: int, serve: bool, viewers: Viewers) -> dict:
    options = DemoOptions(max_frames=frames, serve=parse_serve("127.0.0.1:0") if serve else None)
    server_log = logging.getLogger("edge_deeplab.demos.stream")
    server_log.addHandler(viewers)
    try:
        with parse_source(source_uri) as source:
            stats = run_pipeline(segmenter, source, options)
    finally:
        server_log.removeHandler(viewers)
    viewers.close()
    return stats


def fps_rounds(segmenter, video: str, args) -> dict:
    modes = {"no --serve": (False, 0), "served, no viewer": (True, 0), f"{args.viewers} viewers": (True, args.viewers)}
    fps = {name: [] for name in modes}
    received = []
    for _ in range(args.rounds):
        for name, (serve, count) in modes.items():
            viewers = Viewers(count)
            stats = run_once(segmenter, video, args.frames, serve, viewers)
            fps[name].append(stats["fps"])
            if count:
                received.append(min(viewers.received))
    medians = {name: statistics.median(values) for name, values in fps.items()}
    base = medians["no --serve"]
    return {
        "fps": fps,
        "median_fps": medians,
        "ratio_to_no_viewer": {name: round(value / base, 3) for name, value in medians.items()},
        "frames_per_run": args.frames,
        "jpegs_received_by_slowest_viewer": received,
    }


def stalled_run(segmenter, args) -> dict:
    import psutil

    samples, done = [], threading.Event()

    def sample():
        process = psutil.Process()
        while not done.wait(0.5):
            samples.append(process.memory_info().rss / 1e6)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    viewers = Viewers(1, stalled=True)
    t0 = time.perf_counter()
    stats = run_once(segmenter, "synthetic?size=432x768&fps=0", args.stall_frames, True, viewers)
    done.set()
    sampler.join()
    settled = samples[len(samples) // 10 :] or samples  # after the first tenth: caches warm
    return {
        "frames": stats["frames"],
        "fps": stats["fps"],
        "seconds": round(time.perf_counter() - t0, 1),
        "rss_mb_first_last_max": [round(settled[0], 1), round(settled[-1], 1), round(max(settled), 1)],
        "rss_growth_mb": round(settled[-1] - settled[0], 1),
        "jpegs_to_the_live_viewer": viewers.received[0],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(SHARED / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite"))
    parser.add_argument("--preset", default="pascal-voc")
    parser.add_argument("--video", default=str(SHARED / "media" / "one-by-one-person-detection.mp4"))
    parser.add_argument("--frames", type=int, default=150, help="frames per FPS run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--stall-frames", type=int, default=2000)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    segmenter = Segmenter(load_runtime(args.model), preset=args.preset or None, upsample="labels", shrink="linear")
    result = {"model": args.model, "cpu": _cpu(), "fps": fps_rounds(segmenter, args.video, args),
              "stalled_viewer": stalled_run(segmenter, args)}
    segmenter.close()
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    found = re.search(r"model name\s*:\s*(.+)", text)
    return f"{found.group(1) if found else 'unknown'}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())

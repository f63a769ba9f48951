"""Soak the demo pipeline: many headless frames, resident memory sampled every second.

Prints the RSS at frame 500 (after warm-up, caches and arenas settled) and at the end, and
the drift between them; writes the samples as JSON. The bar: under 1% over 10,000 frames
(the per-frame timings used to grow ~0.4 KB a frame, ~1 GB over a day at 30 FPS).

Example:
    python benchmarks/demo_soak.py --frames 10000 --json soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

DEFAULT_MODEL = "deeplabv3_257_mv_gpu.tflite"


def shared_dir() -> Path:
    env = os.environ.get("EDGE_DEEPLAB_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def rss_mb() -> float:
    """Resident set size now, from /proc (Linux); the peak where /proc is absent."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Sampler(threading.Thread):
    """(seconds, frames shown, RSS MB) every `period` seconds while the demo runs."""

    def __init__(self, frames_shown, period: float = 1.0):
        super().__init__(daemon=True)
        self.frames_shown, self.period = frames_shown, period
        self.samples, self._halt = [], threading.Event()

    def run(self):
        start = time.perf_counter()
        while not self._halt.wait(self.period):
            self.samples.append((time.perf_counter() - start, self.frames_shown(), rss_mb()))

    def stop(self):
        self._halt.set()
        self.join()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(shared_dir() / "anchors" / "pascal" / DEFAULT_MODEL))
    p.add_argument("--preset", default="pascal-voc", help="for published models without metadata")
    p.add_argument("--source", default="synthetic?size=432x768&fps=0", help="any demo source URI")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--smooth", type=float, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from edge_deeplab.demos import pipeline
    from edge_deeplab.demos.sources import parse_source
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    tallies = []
    real_tally = pipeline.Tally

    def watched_tally():  # the sampler reads the frame count of the run's own tally
        tally = real_tally()
        tallies.append(tally)
        return tally

    pipeline.Tally = watched_tally
    sampler = Sampler(lambda: tallies[0].frames if tallies else 0)
    options = pipeline.DemoOptions(max_frames=args.frames, smooth=args.smooth)
    with Segmenter(load_runtime(args.model, threads=args.threads), preset=args.preset, upsample="labels",
                   score_filters=pipeline.smoothing_filters(options)) as segmenter, parse_source(args.source) as source:
        sampler.start()
        stats = pipeline.run_pipeline(segmenter, source, options)
        sampler.stop()
    return report(args, stats, sampler.samples)


def report(args, stats: dict, samples) -> int:
    after_warmup = [s for s in samples if s[1] >= 500] or samples
    if not after_warmup:
        print("no samples: the run was shorter than a second", file=sys.stderr)
        return 1
    start, end = after_warmup[0], samples[-1]
    drift = (end[2] - start[2]) / start[2] * 100
    print(f"{stats['frames']} frames at {stats['fps']} FPS; RSS {start[2]:.1f} MB at frame {start[1]}, "
          f"{end[2]:.1f} MB at frame {end[1]}: drift {drift:+.2f}% (bar: < 1%)")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": stats["frames"], "fps": stats["fps"],
                                               "drift_percent": drift, "samples": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

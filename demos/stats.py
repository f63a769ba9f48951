"""What a demo run measured: per-frame tallies on the main thread, and the stats dict."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Optional

import numpy as np

from edge_deeplab.bench.harness import percentile

from .render import STAGES

# Per-frame timings kept for the percentiles: the most recent frames only, so a demo that
# runs for days holds a fixed amount of memory (every frame's timings grew it ~0.4 KB/frame).
WINDOW = 3000


def percentiles(values) -> Dict[str, Optional[float]]:
    """{"p50", "p90"} in the values' unit (None for none), as the bench harness computes them."""
    values = list(values)
    if not values:
        return {"p50": None, "p90": None}
    return {"p50": round(percentile(values, 50), 3), "p90": round(percentile(values, 90), 3)}


def _window() -> Deque[float]:
    return deque(maxlen=WINDOW)


@dataclass
class Tally:
    """What the main thread records per displayed frame, in bounded memory.

    Timings keep the last WINDOW frames; the frame count, first and last display times
    cover the whole run.
    """

    stages: Dict[str, Deque[float]] = field(default_factory=lambda: {name: _window() for name in STAGES})
    latency: Deque[float] = field(default_factory=_window)
    frames: int = 0
    first_shown: Optional[float] = None
    last_shown: Optional[float] = None
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    snapshots: int = 0


def record(tally: Tally, item, stages: Dict[str, float], now: float, fps):
    for name in STAGES:
        if name in stages:
            tally.stages[name].append(stages[name])
    tally.latency.append((now - item.frame.captured) * 1e3)
    if tally.last_shown is not None:
        instant = 1.0 / max(1e-6, now - tally.last_shown)
        fps = instant if fps is None else 0.9 * fps + 0.1 * instant  # steady HUD number
    tally.frames += 1
    tally.first_shown = now if tally.first_shown is None else tally.first_shown
    tally.last_shown = now
    tally.class_counts += np.bincount(item.labels.ravel(), minlength=256)[:256]
    return fps


def build_stats(segmenter, source, options, capture, worker, tally, end, written) -> dict:
    from .jetson_power import power_state  # Jetson power mode and clocks, None elsewhere

    frames = tally.frames
    span = tally.last_shown - tally.first_shown if frames > 1 else 0.0
    model_ms = [
        a + b + c
        for a, b, c in zip(
            tally.stages["preprocess"], tally.stages["infer"], tally.stages["postprocess"]
        )
    ]
    model_p50 = percentiles(model_ms)["p50"]
    total = int(tally.class_counts.sum())
    names = segmenter.metadata.labels
    shares = (
        {
            names[i] if i < len(names) else str(i): round(int(n) / total, 6)
            for i, n in enumerate(tally.class_counts)
            if n
        }
        if total
        else {}
    )
    return {
        "source": source.uri,
        "live": source.live,
        "runtime": getattr(segmenter.runtime, "name", type(segmenter.runtime).__name__),
        "model": str(getattr(segmenter.runtime, "path", "")),
        "view": options.view,
        "smoothing": options.smooth,
        "frames": frames,
        "fps": round((frames - 1) / span, 3) if span > 0 else None,
        "model_fps": round(1000.0 / model_p50, 3) if model_p50 else None,
        "infer_fps": round(1000.0 / percentiles(tally.stages["infer"])["p50"], 3)
        if frames
        else None,
        "latency_ms": percentiles(tally.latency),
        "stages": {name: percentiles(values) for name, values in tally.stages.items()},
        "flicker": None if worker.flicker.value is None else round(worker.flicker.value, 6),
        "dropped": capture.dropped + worker.results.dropped,
        "dropped_capture": capture.dropped,
        "dropped_render": worker.results.dropped,
        "class_pixels": shares,
        "reconnects": capture.reconnects,
        "resolution_changes": worker.resolution_changes,
        "smoothing_resets": worker.smoother.resets if worker.smoother else 0,
        "output": str(written) if written else None,
        "end": end,
        "power": power_state(),
    }


def live_header(segmenter, source) -> dict:
    """The figures of a served demo that do not change while it runs (see `live_stats`)."""
    meta = segmenter.metadata
    return {
        "source": source.uri,
        "runtime": getattr(segmenter.runtime, "name", type(segmenter.runtime).__name__),
        "model": str(getattr(segmenter.runtime, "path", "")),
        "colours": {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in zip(meta.labels, meta.palette)},
    }


def live_stats(header: dict, tally: Tally, item, stages: Dict[str, float], fps, renderer, worker) -> dict:
    """What `demo --serve` shows beside the picture, as the HUD has it: the latest frame's
    stage times and class shares, the smoothed FPS, flicker and drops so far."""
    names = header["colours"]
    labels = item.labels
    counts = np.bincount(labels.ravel(), minlength=len(names))
    keys = list(names)
    share = {
        keys[i] if i < len(keys) else str(i): round(int(n) / labels.size, 4) for i, n in enumerate(counts) if n
    }
    flicker = worker.flicker.value
    return dict(
        header,
        frames=tally.frames,
        fps=None if fps is None else round(fps, 2),
        stages={name: round(stages[name], 2) for name in STAGES if name in stages},
        latency_ms=round(tally.latency[-1], 2) if tally.latency else None,
        class_share=share,
        flicker=None if flicker is None else round(flicker, 6),
        dropped=worker.frames.dropped + worker.results.dropped,
        view=renderer.view,
        alpha=round(renderer.alpha, 2),
    )

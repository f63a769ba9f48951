"""THE latency harness: `edge-deeplab bench`, the report and the demos all time through it.

What it measures is what a user waits for: an RGB image in, a class map at the image's own
size out (`Segmenter.predict`: resize, normalise, quantise, infer, dequantise, upsample,
argmax), after a warm-up, repeated until a time budget is spent. Per-stage times come from
the Segmenter (`infer` is the engine alone). Only the standard library and numpy are used.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from ..errors import InvalidInputError
from ..imageio import read_image
from ..options import option

STAGES = ("preprocess", "infer", "postprocess")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy computes it."""
    if len(values) == 0:
        raise InvalidInputError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise InvalidInputError(f"percentile must be in 0..100, got {q}")
    return float(np.percentile(np.asarray(values, np.float64), q))


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """p50, p90, mean, min, max and std of a list of timings (same unit in, same out)."""
    array = np.asarray(values, np.float64)
    if array.size == 0:
        raise InvalidInputError("no timings to summarize")
    return {
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "mean": float(array.mean()),
        "min": float(array.min()),
        "max": float(array.max()),
        "std": float(array.std()),
    }


def peak_memory_mb() -> Optional[float]:
    """This process's resident-memory high-water mark in MiB (None where unsupported).

    Process-wide: it includes the engine, Python and anything loaded earlier in the process,
    and never goes down, so compare models in separate processes for exact figures.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


@dataclass(frozen=True)
class BenchOptions:
    """How long to time each model: the harness's arguments, and the flags of `bench` and `report`."""

    warmup: int = option(3, "untimed runs first")
    min_time_s: float = option(2.0, "seconds of timed repeats per model", flag="--min-time", metavar="S")
    max_runs: int = option(200, "timed runs per model at most")

    def __post_init__(self):
        if self.warmup < 0 or self.min_time_s < 0 or self.max_runs < 1:
            raise InvalidInputError(
                f"--warmup and --min-time must be >= 0 and --max-runs >= 1, got {self.warmup}, "
                f"{self.min_time_s}, {self.max_runs}")



_TIMING = BenchOptions()  # the defaults of the functions below


def timed_repeats(
    fn: Callable[[], object],
    *,
    warmup: int = _TIMING.warmup,
    min_time_s: float = _TIMING.min_time_s,
    max_runs: int = _TIMING.max_runs,
    min_runs: int = 3,
) -> List[float]:
    """Call `fn` `warmup` times untimed, then repeatedly until `min_time_s` has passed
    (at least `min_runs`, at most `max_runs` calls). Returns each call's wall time in ms."""
    if warmup < 0 or max_runs < 1 or min_time_s < 0:
        raise InvalidInputError(
            "need warmup >= 0, max_runs >= 1, min_time_s >= 0; "
            f"got {warmup}, {max_runs}, {min_time_s}"
        )
    for _ in range(warmup):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (
        len(times) < min_runs or time.perf_counter() - start < min_time_s
    ):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def default_image(size, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 test image of `size` (height, width): smooth gradients,
    a few flat shapes and mild noise, so resizing and the model do real work."""
    h, w = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack(
        [
            255 * xx / max(1, w - 1),
            255 * yy / max(1, h - 1),
            127 + 100 * np.sin((xx + yy) / max(4.0, w / 8)),
        ],
        axis=-1,
    )
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * min(h, w)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def benchmark(
    segmenter,
    image: Union[None, str, os.PathLike, np.ndarray] = None,
    warmup: int = _TIMING.warmup,
    min_time_s: float = _TIMING.min_time_s,
    max_runs: int = _TIMING.max_runs,
    *,
    name: Optional[str] = None,
) -> dict:
    """Time a Segmenter end to end (image in -> class map at the image's size out).

    Args:
        segmenter: an opened `Segmenter`.
        image: RGB uint8 (H, W, 3) array, an image file, or None for `default_image` at the
            model's input size.
        warmup: untimed calls first (engine start-up, caches, lazy compilation).
        min_time_s: keep repeating until this much time has passed...
        max_runs: ...or this many timed calls were made.
        name: model name for the row (default: the model file path).

    Returns:
        A row: model, runtime, threads, device, input_size, image_size, latency_p50_ms,
        latency_p90_ms, latency_mean_ms, latency_min_ms, latency_max_ms, latency_std_ms, fps
        (1000 / p50), stages {preprocess, infer, postprocess: p50 ms}, peak_mem_mb
        (process-wide RSS high-water mark), runs, warmup.
    """
    runtime = segmenter.runtime
    if image is None:
        image = default_image(segmenter.metadata.input_size)
    elif not isinstance(image, np.ndarray):
        image = read_image(image)
    stage_times: Dict[str, List[float]] = {stage: [] for stage in STAGES}

    for _ in range(warmup):
        segmenter.predict(image)

    def timed():
        result = segmenter.predict(image)
        for stage in STAGES:
            stage_times[stage].append(result.timings.get(stage, float("nan")))

    latencies = timed_repeats(timed, warmup=0, min_time_s=min_time_s, max_runs=max_runs)
    row = {"model": name or str(runtime.path), **_engine_fields(segmenter, image)}
    return {**row, **_latency_fields(latencies, stage_times), "warmup": warmup}


def _engine_fields(segmenter, image: np.ndarray) -> dict:
    runtime = segmenter.runtime
    return {
        "runtime": runtime.name,
        "threads": runtime.threads,
        "device": runtime.device_name,
        "input_size": list(segmenter.metadata.input_size),
        "image_size": [int(image.shape[0]), int(image.shape[1])],
    }


def _latency_fields(latencies: List[float], stage_times: Dict[str, List[float]]) -> dict:
    stats = summarize(latencies)
    return {
        "latency_p50_ms": stats["p50"],
        "latency_p90_ms": stats["p90"],
        "latency_mean_ms": stats["mean"],
        "latency_min_ms": stats["min"],
        "latency_max_ms": stats["max"],
        "latency_std_ms": stats["std"],
        "fps": 1000.0 / stats["p50"] if stats["p50"] > 0 else float("inf"),
        "stages": {stage: float(np.median(values)) for stage, values in stage_times.items()},
        "peak_mem_mb": peak_memory_mb(),
        "runs": len(latencies),
    }


def format_table(rows: Iterable[dict]) -> str:
    """Benchmark rows as an aligned plain-text table (what `edge-deeplab bench` prints)."""
    header = (
        "model",
        "runtime",
        "device",
        "thr",
        "p50 ms",
        "p90 ms",
        "mean",
        "min",
        "fps",
        "pre",
        "infer",
        "post",
        "mem MB",
        "runs",
    )
    lines = [header]
    for row in rows:
        stages = row.get("stages", {})
        lines.append(
            (
                _short(row["model"]),
                row["runtime"],
                str(row.get("device", "")),
                "default" if row.get("threads") is None else str(row["threads"]),
                f"{row['latency_p50_ms']:.2f}",
                f"{row['latency_p90_ms']:.2f}",
                f"{row.get('latency_mean_ms', float('nan')):.2f}",
                f"{row.get('latency_min_ms', float('nan')):.2f}",
                f"{row['fps']:.1f}",
                *(f"{stages.get(s, float('nan')):.2f}" for s in STAGES),
                "-" if row.get("peak_mem_mb") is None else f"{row['peak_mem_mb']:.0f}",
                str(row.get("runs", "")),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        )
        for line in lines
    )


def _short(path: str, keep: int = 48) -> str:
    return path if len(path) <= keep else "..." + path[-(keep - 3) :]

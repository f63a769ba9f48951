"""The accuracy-vs-latency report: convert, evaluate and benchmark every variant of a model.

For each variant (the Keras float reference first) the report makes or reuses the artifact
in `<out>/artifacts/`, evaluates it on the dataset through a `Segmenter` (the same
`evaluate` as `edge-deeplab eval`), measures it with the `bench` harness, and writes
report.json, report.md and report.html into `<out>/`. A variant that cannot be made or run
becomes a row with its status and reason; the others are still measured and written.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..config import DataConfig
from ..errors import InvalidInputError
from ..imageio import atomic_write_text
from ..runs import resolve_model_path
from . import pareto
from .machine import describe_machine, utc_now
from .pareto import gate
from .render_html import Examples, render_html
from .render_md import render_markdown
from .report_row import ReportRow
from .runner import VariantRunner
from .variants import Variant, all_variants, parse_variant_specs, select_variants

STATUSES = ("ok", "conversion failed", "parity failed", "not available", "run failed")
UNITS = {
    "miou": "fraction 0..1",
    "per_class_iou": "fraction 0..1",
    "agreement": "fraction 0..1",
    "delta_miou": "points (x100) vs the keras fp32 reference",
    "delta_per_class_iou": "points (x100)",
    "latency_p50_ms": "ms, end to end: image in -> class map out",
    "infer_p50_ms": "ms, the engine alone",
    "size_mb": "MiB on disk (all files of the artifact)",
    "peak_mem_mb": "MiB, the bench harness's process-wide RSS high-water mark (grows across rows)",
    "rss_growth_mb": "MiB, resident memory gained while the variant was loaded, evaluated, timed",
}


@dataclass(frozen=True)
class BenchOptions:
    """How long to time each variant (the bench harness's arguments)."""

    warmup: int = 3
    min_time_s: float = 2.0
    max_runs: int = 200


@dataclass
class ReportResult:
    """What `report` made: the rows, the JSON-ready report and where the files are."""

    rows: List[ReportRow]
    data: dict
    out_dir: Path
    paths: Dict[str, Path] = field(default_factory=dict)
    breached: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """False when a --max-miou-drop gate was set and a variant broke it."""
        return not self.breached


class _Progress:
    """One line per step and per finished variant, on stderr."""

    def __init__(self, enabled: bool, total: int, stream=None):
        self.enabled, self.total, self.stream = enabled, total, stream or sys.stderr

    def __call__(self, index: int, variant: Variant, message: str) -> None:
        self.note(f"[{index}/{self.total}] {variant.key:<14} {variant.runtime:<12} {message}")

    def note(self, message: str) -> None:
        if self.enabled:
            print(message, file=self.stream, flush=True)


def _load_data(data: Union[DataConfig, object], meta, split: str, limit: Optional[int]):
    """The evaluation images: a SegDataset from `data`, checked against the model, cut to
    `limit`."""
    from ..data.datasets import SegDataset, load_dataset

    if isinstance(data, DataConfig):
        if data.labels is None and data.num_classes is None:
            data = data.replace(labels=meta.labels)  # the model says what its classes are
        dataset = load_dataset(data, split)
    else:
        dataset = data
    if dataset.num_classes != meta.num_classes:
        raise InvalidInputError(
            f"the dataset has {dataset.num_classes} classes "
            f"but the model predicts {meta.num_classes}"
        )
    if limit is not None:
        if limit < 1:
            raise InvalidInputError(f"--limit must be >= 1, got {limit}")
        keep = min(limit, len(dataset))
        dataset = SegDataset(
            dataset.images[:keep],
            dataset.masks[:keep],
            dataset.labels,
            dataset.ignore_label,
            dataset.names[:keep],
            dataset.split,
        )
    if len(dataset) == 0:
        raise InvalidInputError("the dataset has no images to evaluate")
    return dataset


def default_calibration(data) -> Optional[str]:
    """Calibration images for int8 when none are given: the dataset's training images.

    Never the evaluated split, so int8 is not calibrated on the images it is scored on.
    None (the converter's own default) for the synthetic dataset and in-memory data.
    """
    if not isinstance(data, DataConfig) or data.format == "synthetic" or not data.path:
        return None
    if data.format == "folder":
        from ..data.folder import split_folders

        try:
            return str(split_folders(Path(data.path), data.train_split)[0])
        except InvalidInputError:
            pass
    raise InvalidInputError(
        f"{data.path}: cannot tell which images to calibrate int8 on; give --calib-data FOLDER "
        "(a few hundred training images, not the evaluated split)"
    )


def protocol_of(meta, dataset, data, split: str, scales, flip: bool, calib_data=None) -> dict:
    """The evaluation protocol: everything that must match for two reports to compare."""
    source = (
        {"format": data.format, "path": data.path}
        if isinstance(data, DataConfig)
        else {"format": "in-memory"}
    )
    return {
        "dataset": {**source, "split": split},
        "num_images": len(dataset),
        "input_size": list(meta.input_size),
        "resize": meta.resize,
        "channel_order": meta.channel_order,
        "mean": list(meta.mean),
        "std": list(meta.std),
        "scales": list(scales),
        "flip": bool(flip),
        "ignore_label": dataset.ignore_label,
        "metadata_ignore_label": meta.ignore_label,
        "num_classes": meta.num_classes,
        "labels": list(meta.labels),
        "batch": 1,
        "int8_calibration": "the converter's default"
        if calib_data is None
        else ("an in-memory array" if isinstance(calib_data, np.ndarray) else str(calib_data)),
    }


def _fill_deltas(rows: List[ReportRow]) -> None:
    """Δ mIoU and per-class Δ IoU, in points, against the reference row."""
    ref = next((r for r in rows if r.variant.is_reference and r.miou is not None), None)
    if ref is None:
        return
    for row in rows:
        if row.miou is None:
            continue
        row.delta_miou = round((row.miou - ref.miou) * 100, 4)
        row.delta_per_class_iou = {
            name: (
                None
                if value is None or ref.per_class_iou.get(name) is None
                else round((value - ref.per_class_iou[name]) * 100, 4)
            )
            for name, value in row.per_class_iou.items()
        }


def report(
    model,
    data,
    out_dir,
    variants: Optional[Union[str, Sequence[Variant]]] = None,
    runtimes: Optional[Sequence[str]] = None,
    max_miou_drop: Optional[float] = None,
    threads: Optional[int] = None,
    limit: Optional[int] = None,
    progress: bool = True,
    *,
    split: str = "val",
    calib_data=None,
    bench: BenchOptions = BenchOptions(),
    scales=(1.0,),
    flip: bool = False,
    examples: int = 3,
    reconvert: bool = False,
    device: Optional[str] = None,
    mixed_precision: bool = False,
) -> ReportResult:
    """Measure every variant of `model` and write report.json / report.md / report.html.

    Args:
        model: a training run folder or a .keras file (the float reference).
        data: a DataConfig (its `split` is loaded) or an already loaded SegDataset.
        out_dir: where the reports go; artifacts are made in (or reused from) out_dir/artifacts.
        variants: "tflite:int8,openvino" style text, a list of Variant, or None for all.
        runtimes: engines to run artifacts on (None: each format's own engine).
        max_miou_drop: the gate, in mIoU points; rows beyond it are listed in `breached`.
        threads: CPU threads for every engine.
        limit: evaluate only the first N images.
        progress: print a line per step and per variant on stderr.
        calib_data: calibration images for the int8 conversions (passed to `convert`).
        bench: timing options. scales, flip: the evaluation protocol (single scale by default).
        examples: how many images the HTML shows with each variant's masks.
        reconvert: convert again even where an artifact exists.
        device: engine device for every variant.
        mixed_precision: add a "tflite mixed" row: int8 with the fewest layers kept in float
            that hold the mIoU drop within max_miou_drop (1 point when None).
    """
    model_path = resolve_model_path(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(variants, str) or variants is None:
        chosen = select_variants(parse_variant_specs(variants), all_variants(runtimes))
    else:
        chosen = list(variants)
    runner = VariantRunner(
        model_path,
        out_dir / "artifacts",
        threads=threads,
        device=device,
        calib_data=calib_data,
        bench=bench,
        scales=scales,
        flip=flip,
        reconvert=reconvert,
        keep_examples=examples,
        progress=progress,
    )
    if calib_data is None:
        runner.calib_data = default_calibration(data)
    meta = runner.reference_metadata()
    dataset = _load_data(data, meta, split, limit)
    protocol = protocol_of(meta, dataset, data, split, scales, flip, runner.calib_data)
    show = _Progress(progress, len(chosen) + bool(mixed_precision))
    show.note(
        f"report: {show.total} variants of {model_path}; {len(dataset)} images, "
        f"{meta.input_size[0]}x{meta.input_size[1]} {meta.resize}, "
        f"ignore label {dataset.ignore_label}"
    )
    rows = _measure_all(runner, chosen, dataset, show)
    if mixed_precision:
        budget = pareto.DEFAULT_BUDGET if max_miou_drop is None else float(max_miou_drop)
        rows.append(_mixed_row(runner, dataset, budget, rows, show))
    _fill_deltas(rows)
    data_dict = _report_dict(model_path, rows, protocol, max_miou_drop)
    result = ReportResult(rows, data_dict, out_dir)
    if data_dict.get("gate"):
        result.breached = data_dict["gate"]["breached"]
    result.paths = write_report(data_dict, out_dir, runner.examples(dataset, rows, meta))
    return result


def _measure_all(runner, chosen: Sequence[Variant], dataset, show: _Progress) -> List[ReportRow]:
    rows: List[ReportRow] = []
    for index, variant in enumerate(chosen, start=1):
        start = time.perf_counter()
        row = runner.run(variant, dataset, chosen, functools.partial(show, index, variant))
        show(index, variant, f"{row.summary()}  ({time.perf_counter() - start:.1f} s)")
        rows.append(row)
    return rows


def _mixed_row(runner, dataset, budget: float, rows: List[ReportRow], show: _Progress):
    from .mixed_precision import MIXED, run_mixed

    variant = Variant("tflite", MIXED, "tflite", ".tflite")
    reference = next((r for r in rows if r.variant.is_reference), None)
    start = time.perf_counter()
    say = functools.partial(show, show.total, variant)
    say(f"searching the fewest float layers within {budget:g} mIoU points ...")
    row = run_mixed(runner, dataset, budget, reference, say)
    say(f"{row.summary()}  ({time.perf_counter() - start:.1f} s)")
    return row


def _report_dict(
    model_path: Path, rows: List[ReportRow], protocol: dict, max_drop: Optional[float]
) -> dict:
    plain = [row.to_dict() for row in rows]
    best = pareto.best_choices(plain, max_drop)
    return {
        "model": str(model_path),
        "date": utc_now(),
        "machine": describe_machine(),
        "protocol": protocol,
        "units": UNITS,
        "max_miou_drop": max_drop,
        "rows": plain,
        "pareto": [plain[i]["id"] for i in pareto.pareto_front(plain)],
        "best": {k: (plain[i]["id"] if i is not None else None) for k, i in best.items()},
        "gate": gate(plain, max_drop),
    }


def write_report(data: dict, out_dir: Path, examples: Optional[Examples] = None) -> Dict[str, Path]:
    """Write report.json, report.md and report.html atomically; returns their paths."""
    paths = {name: Path(out_dir) / f"report.{name}" for name in ("json", "md", "html")}
    atomic_write_text(paths["json"], json.dumps(data, indent=2, default=_json_default) + "\n")
    atomic_write_text(paths["md"], render_markdown(data))
    atomic_write_text(paths["html"], render_html(data, examples))
    return paths


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_report(path) -> dict:
    """Read a report.json back (e.g. to re-render it)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))

"""The accuracy-vs-latency report: convert, evaluate and benchmark every variant of a model.

For each variant (the Keras float reference first) the report makes or reuses the artifact
in `<out>/artifacts/`, evaluates it on the dataset through a `Segmenter` (the same
`evaluate` as `edge-deeplab eval`), measures it with the `bench` harness, and writes
report.json, report.md and report.html into `<out>/`. A variant that cannot be made or run
becomes a row with its status and reason; the others are still measured and written.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.evaluation_set import load_data
from ..errors import InvalidInputError
from ..imageio import atomic_write_text
from ..runs import resolve_model_path
from . import pareto
from .machine import describe_machine, utc_now
from .pareto import gate
from .render_html import Examples, render_html
from .render_md import render_markdown
from .report_data import default_calibration, protocol_of
from .report_row import ReportRow, units
from .runner import VariantRunner
from .variants import Variant, all_variants, parse_variant_specs, select_variants

UNITS = units()  # per field, declared on ReportRow


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


@dataclass(frozen=True)
class ReportOptions:
    """How a report is made (every field has the CLI's default).

    Attributes:
        variants: "tflite:int8,openvino" style text, a list of Variant, or None for all.
        runtimes: engines to run artifacts on (None: each format's own engine).
        max_miou_drop: the gate, in mIoU points; rows beyond it are listed in `breached`.
        threads: CPU threads for every engine. device: engine device for every variant.
        limit: evaluate only the first N images.
        progress: print a line per step and per variant on stderr.
        split: the dataset split to evaluate.
        calib_data: calibration images for the int8 conversions (passed to `convert`);
            None: the dataset's training images (`default_calibration`).
        bench: timing options. scales, flip: the evaluation protocol (single scale by default).
        examples: how many images the HTML shows with each variant's masks.
        reconvert: convert again even where an artifact exists.
        mixed_precision: add an int8-mixed row for every format that makes it: int8 with
            the fewest layers kept in float that hold the mIoU drop on the evaluated images
            within max_miou_drop (0.5 point when None). Also made when --variants names it.
        int8_agreement: the conversions' parity bar for int8 rows (None: the table's 0.97).
    """

    variants: Optional[Union[str, Sequence[Variant]]] = None
    runtimes: Optional[Sequence[str]] = None
    max_miou_drop: Optional[float] = None
    threads: Optional[int] = None
    limit: Optional[int] = None
    progress: bool = True
    split: str = "val"
    calib_data: object = None
    bench: BenchOptions = BenchOptions()
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = False
    examples: int = 3
    reconvert: bool = False
    device: Optional[str] = None
    mixed_precision: bool = False
    int8_agreement: Optional[float] = None

    def __post_init__(self):
        # Checked here, not at the first int8 conversion minutes into the report.
        if self.int8_agreement is not None and not 0 < float(self.int8_agreement) <= 1:
            raise InvalidInputError(f"--int8-agreement must be in (0, 1], got {self.int8_agreement}")


def report(model, data, out_dir, options: Optional[ReportOptions] = None, **overrides) -> ReportResult:
    """Measure every variant of `model` and write report.json / report.md / report.html.

    Args:
        model: a training run folder or a .keras file (the float reference).
        data: a DataConfig (its `split` is loaded) or an already loaded SegDataset.
        out_dir: where the reports go; artifacts are made in (or reused from) out_dir/artifacts.
        options: a ReportOptions; keyword arguments named like its fields override it
            (`report(run, data, "out", variants="tflite:int8", limit=16)`).
    """
    if options is not None and not isinstance(options, ReportOptions):
        raise TypeError(f"options must be a ReportOptions, got {type(options).__name__}")
    options = dataclasses.replace(options or ReportOptions(), **overrides)
    model_path = resolve_model_path(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = _chosen_variants(options)
    runner = _runner(model_path, out_dir, options, data)
    meta = runner.reference_metadata()
    dataset = load_data(data, meta, options.split, options.limit)
    protocol = protocol_of(
        meta, dataset, data, options.split, options.scales, options.flip, runner.calib_data
    )
    runner.val_data = dataset
    if options.max_miou_drop is not None:
        runner.budget = float(options.max_miou_drop)
    runner.int8_agreement = options.int8_agreement
    show = _Progress(options.progress, len(chosen))
    show.note(
        f"report: {show.total} variants of {model_path}; {len(dataset)} images, "
        f"{meta.input_size[0]}x{meta.input_size[1]} {meta.resize}, "
        f"ignore label {dataset.ignore_label}"
    )
    rows = _measure_all(runner, chosen, dataset, show)
    _fill_deltas(rows)
    data_dict = _report_dict(model_path, rows, protocol, options.max_miou_drop)
    result = ReportResult(rows, data_dict, out_dir)
    if data_dict.get("gate"):
        result.breached = data_dict["gate"]["breached"]
    result.paths = write_report(data_dict, out_dir, runner.examples(dataset, rows, meta))
    return result


def _chosen_variants(options: ReportOptions) -> List[Variant]:
    """The variants asked for. int8-mixed (minutes of search each) only when named in
    --variants ("tflite:int8-mixed") or asked for with --mixed-precision."""
    if not (isinstance(options.variants, str) or options.variants is None):
        return list(options.variants)
    from edge_deeplab.converters.base import BUDGETED

    specs = parse_variant_specs(options.variants)
    everything = all_variants(options.runtimes)
    named = {(fmt, precision) for fmt, precision in specs or () if precision}
    chosen = [
        v for v in select_variants(specs, everything)
        if v.precision not in BUDGETED or (v.format, v.precision) in named
    ]
    if options.mixed_precision:
        formats = {v.format for v in chosen}
        chosen += [v for v in everything if v.precision in BUDGETED and v.format in formats and v not in chosen]
    return chosen


def _runner(model_path: Path, out_dir: Path, options: ReportOptions, data) -> VariantRunner:
    runner = VariantRunner(
        model_path,
        out_dir / "artifacts",
        threads=options.threads,
        device=options.device,
        calib_data=options.calib_data,
        bench=options.bench,
        scales=options.scales,
        flip=options.flip,
        reconvert=options.reconvert,
        keep_examples=options.examples,
        progress=options.progress,
    )
    if options.calib_data is None:
        runner.calib_data = default_calibration(data)
    return runner


def _measure_all(runner, chosen: Sequence[Variant], dataset, show: _Progress) -> List[ReportRow]:
    rows: List[ReportRow] = []
    for index, variant in enumerate(chosen, start=1):
        start = time.perf_counter()
        row = runner.run(variant, dataset, chosen, functools.partial(show, index, variant))
        show(index, variant, f"{row.summary()}  ({time.perf_counter() - start:.1f} s)")
        rows.append(row)
    return rows


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
        "units": units(),
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

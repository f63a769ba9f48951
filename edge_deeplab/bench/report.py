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
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..converters.parity import INT8_AGREEMENT
from ..converters.validation import DEFAULT_BUDGET
from ..data.evaluation_set import load_data
from ..errors import InvalidInputError
from ..imageio import atomic_write_text
from ..logs import ProgressLog, track
from ..options import option, parse_floats, parse_list
from ..runs import resolve_model_path
from . import pareto
from .harness import BenchOptions
from .machine import describe_machine, utc_now
from .pareto import gate
from .render_html import Examples, render_html
from .render_md import render_markdown
from .report_data import default_calibration, protocol_of
from .report_row import ReportRow, units
from .runner import VariantRunner, reference_metadata
from .variants import Variant, all_variants, parse_variant_specs, select_variants

UNITS = units()  # per field, declared on ReportRow
_log = logging.getLogger(__name__)


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
    """The report's progress: a line per step and per finished variant ("[2/7] tflite:int8 ..."),
    and on a terminal a bar over the variants. Disabled (`progress=False`), it says nothing."""

    def __init__(self, enabled: bool, total: int):
        self.log, self.total = ProgressLog(enabled, _log), total

    def __call__(self, index: int, variant: Variant, message: str) -> None:
        self.log(f"[{index}/{self.total}] {variant.key:<14} {variant.runtime:<12} {message}")

    def note(self, message: str) -> None:
        self.log(message)

    def variants(self, chosen: Sequence[Variant]):
        """(index, variant) of each chosen one, with a bar on a terminal (and no lines of its
        own elsewhere: each variant logs its line)."""
        return track(enumerate(chosen, start=1), "report", total=len(chosen), unit="variants", lines=False,
                     logger=_log, enabled=self.log.enabled)


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
        row.worst_class_drop = pareto.worst_class_drop(row.to_dict())


@dataclass(frozen=True)
class ReportOptions:
    """How a report is made (every field has the CLI's default).

    Attributes:
        variants: "tflite:int8,openvino" style text, a list of Variant, or None for all.
        runtimes: engines to run artifacts on (None: each format's own engine).
        max_miou_drop: the gate, in mIoU points; rows beyond it are listed in `breached`.
        max_class_drop: the gate on every class's IoU drop, in points (rows beyond it too).
        threads: CPU threads for every engine. device: engine device for every variant.
        limit: evaluate only the first N images.
        progress: log a line per step and per variant (INFO; see `edge_deeplab.logs`).
        split: the dataset split to evaluate.
        calib_data: calibration images for the int8 conversions (passed to `convert`);
            None: the dataset's training images (`default_calibration`).
        bench: timing options. scales, flip: the evaluation protocol (single scale by default).
        examples: how many images the HTML shows with each variant's masks.
        reconvert: convert again even where an artifact exists.
        mixed_precision: add an int8-mixed row for every format that makes it: int8 with
            the fewest layers kept in float that hold the mIoU drop on the evaluated images
            within max_miou_drop (the conversions' DEFAULT_BUDGET when None) and every class
            within max_class_drop (when given). Also made when --variants names it.
        int8_agreement: the conversions' parity bar for int8 rows (None: the tolerance table's).
    """

    variants: Optional[Union[str, Sequence[Variant]]] = option(
        None, "comma-separated FORMAT[:PRECISION] (e.g. tflite:int8,openvino); default: all")
    runtimes: Optional[Sequence[str]] = option(
        None, "comma-separated engines to run the artifacts on (e.g. onnxruntime,openvino); "
        "default: each format's own engine", parse=parse_list)
    max_miou_drop: Optional[float] = option(
        None, "exit with status 3 if any variant loses more mIoU points than this", parse=float)
    max_class_drop: Optional[float] = option(
        None, "exit with status 3 if any class of any variant loses more IoU points than this (a mean "
        "can hide a lost class); with --pick, no class of the pick may", parse=float, metavar="PTS")
    threads: Optional[int] = option(None, "CPU threads for every engine", parse=int)
    limit: Optional[int] = option(None, "evaluate only the first N images", parse=int)
    progress: bool = option(True, "no progress lines", flag="--quiet", inverted=True)
    split: str = option("val", "split to evaluate")
    calib_data: object = option(
        None, "folder of calibration images for int8 (default: the train split's images of a "
        "folder dataset; synthetic images for a model trained on the synthetic dataset)")
    bench: BenchOptions = BenchOptions()  # its own fields are flags
    scales: Tuple[float, ...] = option((1.0,), "evaluation scales", parse=parse_floats)
    flip: bool = option(False, "also evaluate mirrored images")
    examples: int = option(3, "example images in the HTML")
    reconvert: bool = option(False, "convert again even where artifacts exist")
    device: Optional[str] = option(None, "engine device (CPU, GPU, ...)")
    mixed_precision: bool = option(
        False, "add an int8-mixed row for every format that makes it (TFLite, OpenVINO, ONNX): int8 "
        f"with the fewest layers kept in float that hold --max-miou-drop (default {DEFAULT_BUDGET:g} point) "
        "and --max-class-drop (when given) on the evaluated images")
    int8_agreement: Optional[float] = option(
        None, f"argmax agreement with the float model an int8 conversion must reach (default {INT8_AGREEMENT:g})",
        parse=float)

    def __post_init__(self):
        for name in ("threads", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInputError(f"--{name} must be >= 1, got {value}")
        for flag, value in (("--max-miou-drop", self.max_miou_drop), ("--max-class-drop", self.max_class_drop)):
            if value is not None and not value >= 0:  # NaN fails too
                raise InvalidInputError(f"{flag} must be >= 0 (points), got {value}")
        if self.examples < 0:
            raise InvalidInputError(f"--examples must be >= 0, got {self.examples}")
        object.__setattr__(self, "scales", tuple(float(v) for v in self.scales))
        # The conversions' own rule, checked here, not at the first int8 conversion minutes in.
        from edge_deeplab.converters.api import ConvertOptions

        ConvertOptions(int8_agreement=self.int8_agreement, max_class_drop=self.max_class_drop)

    def conversion(self) -> dict:
        """What the report's conversions take from it (`convert` keyword arguments)."""
        budget = {} if self.max_miou_drop is None else {"max_miou_drop": float(self.max_miou_drop)}
        # int8-mixed holds the class gate too: its search keeps layers in float until every class does.
        classes = None if self.max_class_drop is None else float(self.max_class_drop)
        return {"progress": self.progress, "int8_agreement": self.int8_agreement, "max_class_drop": classes,
                **budget}


def report(model, data, out_dir, options: Optional[ReportOptions] = None, on_target: Optional[Callable] = None,
           **overrides) -> ReportResult:
    """Measure every variant of `model` and write report.json / report.md / report.html.

    Args:
        model: a training run folder or a .keras file (the float reference).
        data: a DataConfig (its `split` is loaded) or an already loaded SegDataset.
        out_dir: where the reports go; artifacts are made in (or reused from) out_dir/artifacts.
        options: a ReportOptions; keyword arguments named like its fields override it
            (`report(run, data, "out", variants="tflite:int8", limit=16)`).
        on_target: measures the rows on a device (`targets.report_target.TargetMeasurer`):
            called with (rows, dataset) before the deltas and picks, it puts the device's
            figures in the rows and returns the device's description (the machine section's
            "target").
    """
    if options is not None and not isinstance(options, ReportOptions):
        raise TypeError(f"options must be a ReportOptions, got {type(options).__name__}")
    options = dataclasses.replace(options or ReportOptions(), **overrides)
    model_path = resolve_model_path(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = _chosen_variants(options)
    meta = reference_metadata(model_path, options.threads)
    dataset = load_data(data, meta, options.split, options.limit)
    calib_data = default_calibration(data) if options.calib_data is None else options.calib_data
    protocol = protocol_of(meta, dataset, data, options.split, options.scales, options.flip, calib_data)
    # int8-mixed measures its budget on the evaluated images
    runner = VariantRunner(model_path, out_dir / "artifacts", options, calib_data, val_data=dataset, meta=meta)
    show = _Progress(options.progress, len(chosen))
    show.note(
        f"report: {show.total} variants of {model_path}; {len(dataset)} images, "
        f"{meta.input_size[0]}x{meta.input_size[1]} {meta.resize}, "
        f"ignore label {dataset.ignore_label}"
    )
    rows = _measure_all(runner, chosen, dataset, show)
    device = on_target(rows, dataset) if on_target else None
    _fill_deltas(rows)
    data_dict = _report_dict(model_path, rows, protocol, options.max_miou_drop, options.max_class_drop)
    if device:
        data_dict["machine"]["target"] = device
    result = ReportResult(rows, data_dict, out_dir)
    if data_dict.get("gate"):
        result.breached = data_dict["gate"]["breached"]
    result.paths = write_report(data_dict, out_dir, runner.examples(dataset, rows, meta))
    return result


def _chosen_variants(options: ReportOptions) -> List[Variant]:
    """The variants asked for. int8-mixed (minutes of search each) only when named in
    --variants ("tflite:int8-mixed") or asked for with --mixed-precision; int16x8 (slow
    kernels: seconds a frame on a real model) only when named ("tflite:int16x8")."""
    if not (isinstance(options.variants, str) or options.variants is None):
        return list(options.variants)
    from edge_deeplab.converters.base import BUDGETED, ON_REQUEST

    specs = parse_variant_specs(options.variants)
    everything = all_variants(options.runtimes)
    named = {(fmt, precision) for fmt, precision in specs or () if precision}
    chosen = [
        v for v in select_variants(specs, everything)
        if v.precision not in ON_REQUEST or (v.format, v.precision) in named
    ]
    if options.mixed_precision:
        formats = {v.format for v in chosen}
        chosen += [v for v in everything if v.precision in BUDGETED and v.format in formats and v not in chosen]
    return chosen


def _measure_all(runner, chosen: Sequence[Variant], dataset, show: _Progress) -> List[ReportRow]:
    rows: List[ReportRow] = []
    for index, variant in show.variants(chosen):
        start = time.perf_counter()
        row = runner.run(variant, dataset, chosen, functools.partial(show, index, variant))
        show(index, variant, f"{row.summary()}  ({time.perf_counter() - start:.1f} s)")
        rows.append(row)
    return rows


def _report_dict(model_path: Path, rows: List[ReportRow], protocol: dict, max_drop: Optional[float],
                 max_class_drop: Optional[float] = None) -> dict:
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
        "max_class_drop": max_class_drop,
        "gate": gate(plain, max_drop, max_class_drop),
    }


def write_report(data: dict, out_dir: Path, examples: Optional[Examples] = None) -> Dict[str, Path]:
    """Write report.json, report.md and report.html, all or none; returns their paths.

    All three are rendered before any is written (a chart that fails leaves nothing), and a
    write that fails removes those this call wrote, so no mixed set of old and new is left.
    """
    paths = {name: Path(out_dir) / f"report.{name}" for name in ("json", "md", "html")}
    texts = {
        "json": json.dumps(data, indent=2, default=_json_default) + "\n",
        "md": render_markdown(data),
        "html": render_html(data, examples),
    }
    written = []
    try:
        for name, text in texts.items():
            atomic_write_text(paths[name], text)
            written.append(paths[name])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return paths


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, tuple)):
        return str(value) if isinstance(value, Path) else list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

"""Measuring one variant: make (or reuse) its artifact, evaluate it, benchmark it.

`VariantRunner.run` never raises for a variant's own failure: an engine that is not
installed, a converter that raises, an artifact that will not load or run all become the
row's `status` and `reason`, so the report is still written for the other variants.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from edge_deeplab.converters.quant_debug import layer_errors
from edge_deeplab.converters.quant_settings import CALIBRATED

from ..status import Status
from .report_row import ReportRow, artifact_size_mb, clean_number, round_or_none
from .variants import Variant


class VariantRunner:
    """Makes, evaluates and times variants of one model; keeps the reference's predictions.

    Args:
        model_path: the float reference (.keras).
        artifacts_dir: where artifacts are made or found (model_<precision><suffix>).
        options: the report's ReportOptions (engines, protocol, timing, conversion bars).
        calib_data: int8 calibration images, resolved (passed to `converters.convert`).
        val_data: the evaluated images: int8-mixed measures its budget on them.
        meta: the reference's metadata when already read (`reference_metadata`).
    """

    def __init__(self, model_path: Path, artifacts_dir: Path, options, calib_data=None, val_data=None, meta=None):
        self.model_path, self.artifacts_dir = Path(model_path), Path(artifacts_dir)
        self.options, self.calib_data, self.val_data = options, calib_data, val_data
        self._conversions: Dict[tuple, object] = {}
        self._reference_labels: Optional[List[np.ndarray]] = None
        self.kept: Dict[str, List[np.ndarray]] = {}
        self._meta = meta

    def reference_metadata(self):
        """The float model's metadata: the evaluation protocol every variant follows."""
        if self._meta is None:
            self._meta = reference_metadata(self.model_path, self.options.threads)
        return self._meta

    def run(self, variant: Variant, dataset, chosen: Sequence[Variant], say: Callable[[str], None]) -> ReportRow:
        """Measure one variant; failures become the row's status and reason."""
        row = ReportRow(variant, threads=self.options.threads)
        engine_problem = self._engine_problem(variant)
        if engine_problem:
            return row.fail(Status.NOT_AVAILABLE, engine_problem)
        path = self._artifact(variant, chosen, say, row)
        if path is None:
            return row
        return self.measure_path(variant, path, dataset, say, row)

    def measure_path(self, variant: Variant, path: Path, dataset, say: Callable[[str], None], row: ReportRow):
        """Evaluate and time the artifact at `path` into `row` (failures: Status.RUN_FAILED)."""
        row.artifact, row.size_mb = str(path), round(artifact_size_mb(variant, path), 3)
        try:
            self._measure(variant, path, dataset, say, row)
        except Exception as exc:  # noqa: BLE001
            # Engines raise their own types (RuntimeError from OpenVINO, onnxruntime's Fail
            # which derives from Exception only, ValueError from LiteRT): whatever it is, it
            # belongs in this row only, and the report goes on.
            row.fail(Status.RUN_FAILED, f"{type(exc).__name__}: {exc}")
        return row

    def _engine_problem(self, variant: Variant) -> str:
        from edge_deeplab.runtimes import RUNTIMES

        if variant.runtime not in RUNTIMES.names():
            known = ", ".join(RUNTIMES.names())
            return f"no '{variant.runtime}' runtime in this build (known: {known})"
        cls = RUNTIMES.get(variant.runtime)
        if not cls.available():
            return (
                f"the {variant.runtime} engine is not installed here: "
                f"pip install 'edge-deeplab[{cls.extra}]'"
            )
        return ""

    def _artifact(
        self, variant: Variant, chosen: Sequence[Variant], say: Callable[[str], None], row: ReportRow
    ) -> Optional[Path]:
        """The artifact's path (made if missing), or None with the row's failure set."""
        if variant.is_reference:
            return self.model_path
        path = self.artifacts_dir / variant.artifact_name()
        key = (variant.format, variant.precision)
        fresh = path.exists() and path.stat().st_mtime >= self.model_path.stat().st_mtime
        if key not in self._conversions and fresh and not self.options.reconvert:
            row.reused = True
            return path
        from edge_deeplab.converters import CONVERTERS

        ok, why = CONVERTERS.get(variant.format).available()
        if not ok:
            row.fail(
                Status.NOT_AVAILABLE,
                f"no artifact and the {variant.format} converter cannot run here: {why}",
            )
            return None
        if key not in self._conversions:
            precisions = [v.precision for v in chosen if v.format == variant.format]
            say(f"converting {variant.format} ({', '.join(dict.fromkeys(precisions))}) ...")
            self._convert(variant.format, list(dict.fromkeys(precisions)))
        result = self._conversions[key]
        row.convert_s = round(float(result.seconds or 0.0), 2)
        row.parity = {k: clean_number(v) for k, v in (result.parity or {}).items()}
        if not result.status.written or not result.path:
            row.fail(result.status, result.reason or "the converter gave no reason")
            return None
        if result.status == Status.PARITY_FAILED:
            row.fail(Status.PARITY_FAILED, result.reason)  # still measured: the numbers show how bad
        elif result.status == Status.BUDGET_MISSED:
            row.reason = result.reason  # measured like any row; the reason says what it missed
        return Path(result.path)

    def _convert(self, fmt: str, precisions: List[str]) -> None:
        """Convert every missing precision of one format in one call (shared intermediates)."""
        from edge_deeplab.converters import ConversionResult, convert

        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        try:
            results = convert(self.model_path, [fmt], precisions, self.artifacts_dir, calib_data=self.calib_data,
                              val_data=self.val_data, **self.options.conversion())
        except Exception as exc:  # noqa: BLE001 - any converter crash is this format's row, not the report's
            reason = f"{type(exc).__name__}: {exc}"
            results = [ConversionResult(fmt, p, status=Status.CONVERSION_FAILED, reason=reason) for p in precisions]
        for result in results:
            self._conversions[(result.target, result.precision)] = result
        for precision in precisions:  # a precision the converter silently skipped
            missing = ConversionResult(fmt, precision, status=Status.CONVERSION_FAILED,
                                       reason="the converter returned no result")
            self._conversions.setdefault((fmt, precision), missing)

    def _measure(self, variant: Variant, path: Path, dataset, say: Callable[[str], None], row: ReportRow) -> None:
        from edge_deeplab.bench.harness import benchmark
        from edge_deeplab.evaluation import evaluate
        from edge_deeplab.runtimes import load_runtime
        from edge_deeplab.segmenter import Segmenter

        rss_before = current_rss_mb()
        with load_runtime(
            path, backend=variant.runtime, threads=self.options.threads, device=self.options.device
        ) as runtime:
            meta = runtime.metadata or self.reference_metadata().replace(
                format=variant.format, precision=variant.precision
            )
            segmenter = Segmenter(runtime, meta)
            row.device = runtime.device_name
            row.mixed = dict(meta.source.get("accuracy_control") or {})
            row.quantization = meta.source.get("quantization")
            if row.reused:
                row.parity = {k: clean_number(v) for k, v in (meta.parity or {}).items()}
                if row.parity.get("passed") is False:
                    row.fail(
                        Status.PARITY_FAILED,
                        f"the reused artifact failed parity when converted: {row.parity}",
                    )
            say(f"evaluating {len(dataset)} images ...")
            start = time.perf_counter()
            recorder = Recorder(segmenter)
            result = evaluate(recorder, dataset, scales=self.options.scales, flip=self.options.flip)
            row.eval_s = round(time.perf_counter() - start, 2)
            row.miou = clean_number(result.miou)
            row.pixel_accuracy = clean_number(result.pixel_accuracy)
            row.per_class_iou = {k: clean_number(v) for k, v in result.per_class_iou.items()}
            labels = (
                recorder.labels_seen
                if len(recorder.labels_seen) == len(dataset)
                else [segmenter.predict(dataset[i][0]).labels for i in range(len(dataset))]
            )
            self._agreement(variant, labels, row)
            if variant.precision in CALIBRATED:
                say("per-layer quantization error ...")
                row.quant_debug = layer_errors(variant, path, segmenter, dataset, self.model_path)
            say("benchmarking ...")
            self._benchmark(benchmark, segmenter, dataset[0][0], row)
            rss_after = current_rss_mb()
            if rss_before is not None and rss_after is not None:
                row.rss_growth_mb = round(rss_after - rss_before, 1)

    def _agreement(self, variant: Variant, labels: List[np.ndarray], row: ReportRow) -> None:
        """Share of pixels whose class equals the float reference's, over every image."""
        if variant.is_reference:
            self._reference_labels = labels
        if self._reference_labels is not None:
            same = sum(
                int(np.count_nonzero(a == b)) for a, b in zip(labels, self._reference_labels)
            )
            total = sum(a.size for a in labels)
            row.agreement = round(same / total, 6) if total else None
        if self.options.examples:
            self.kept[variant.ident] = [
                np.asarray(m, np.uint8) for m in labels[: self.options.examples]
            ]

    def _benchmark(self, benchmark, segmenter, image: np.ndarray, row: ReportRow) -> None:
        options = (
            {}
            if self.options.bench is None
            else dict(
                warmup=self.options.bench.warmup,
                min_time_s=self.options.bench.min_time_s,
                max_runs=self.options.bench.max_runs,
            )
        )
        stats = benchmark(segmenter, image=image, **options)
        stages = {k: round(float(v), 3) for k, v in (stats.get("stages") or {}).items()}
        row.latency_p50_ms = round_or_none(stats.get("latency_p50_ms"))
        row.latency_p90_ms = round_or_none(stats.get("latency_p90_ms"))
        row.latency_mean_ms = round_or_none(stats.get("latency_mean_ms"))
        row.infer_p50_ms = stages.get("infer")
        row.stages_p50_ms = stages
        row.fps = round_or_none(stats.get("fps"))
        row.peak_mem_mb = round_or_none(stats.get("peak_mem_mb"))
        row.bench_runs = stats.get("runs")
        if stats.get("threads") is not None:
            row.threads = stats["threads"]

    def examples(self, dataset, rows: Sequence[ReportRow], meta):
        """The HTML's example grid: the float masks and every measured int8 variant's."""
        from .render_html import Examples

        ref = next(
            (
                r.variant.ident
                for r in rows
                if r.variant.is_reference and r.variant.ident in self.kept
            ),
            None,
        )
        int8 = [
            r.variant.ident
            for r in rows
            if r.variant.precision.startswith("int8") and r.variant.ident in self.kept
        ]
        idents = ([ref] if ref else []) + int8
        if not idents:
            return None
        count = min(self.options.examples, len(dataset))
        titles = {r.variant.ident: f"{r.variant.format} {r.variant.precision}" for r in rows}
        return Examples(
            images=[dataset[i][0] for i in range(count)],
            truth=[dataset[i][1] for i in range(count)],
            masks={i: self.kept[i][:count] for i in idents},
            titles=titles,
            palette=meta.palette,
        )


def reference_metadata(model_path: Path, threads=None):
    """The float model's metadata: the evaluation protocol every variant follows."""
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(model_path, backend="keras", threads=threads) as runtime:
        return Segmenter(runtime).metadata


# What the runner records while it measures a variant: the class maps, the memory.


class Recorder:
    """Passes calls to a Segmenter and keeps the class maps of `predict_batch`, so the
    evaluation pass also gives the predictions that agreement and examples need."""

    def __init__(self, segmenter):
        self._segmenter = segmenter
        self.labels_seen: List[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self._segmenter, name)

    def predict_batch(self, images, **kwargs):
        results = self._segmenter.predict_batch(images, **kwargs)
        self.labels_seen.extend(r.labels for r in results)
        return results


def current_rss_mb() -> Optional[float]:
    """This process's resident memory now, in MiB (Linux /proc; None elsewhere).

    The harness's peak_mem_mb is a process-wide high-water mark that never goes down, so in
    one report process it grows row after row; the RSS growth over one variant (load,
    evaluate, time) is a rough per-variant figure beside it.
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return None

"""Automatic mixed precision under an mIoU budget (TFLite int8 with a few float layers).

LiteRT's quantization debugger measures, per quantized layer, the error its int8 output
has against float on the calibration images; layers are ranked by RMSE / quantization
scale (the debugger guide's sensitivity figure). The search then keeps the top-k layers in
float (`denylisted_nodes`), k = 0, 1, 2, 4, ... until the model's mIoU on the evaluated
images is within the budget of the float reference, then bisects down to the fewest such
layers. Every trial is a real conversion scored with the same `evaluate` as the report.

Needs TensorFlow (the converter); the artifact runs on LiteRT with float input/output.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .. import deps
from ..errors import ConversionError

Say = Callable[[str], None]


@dataclass
class MixedResult:
    """The search's outcome.

    path: the chosen .tflite. float_layers: tensor names kept in float, most sensitive
    first. met: whether the budget held (False: even every float candidate missed it).
    trials: (layers kept in float, mIoU drop in points) in the order they were tried.
    """

    path: Path
    float_layers: List[str]
    met: bool
    trials: List[tuple] = field(default_factory=list)
    ranked: int = 0


def fewest_layers(drop_for: Callable[[int], float], budget: float, total: int) -> tuple:
    """The smallest k in 0..total with drop_for(k) <= budget, assuming drops shrink as k grows.

    Doubling then bisection: about 2*log2(k) calls. Returns (k, met, trials).
    """
    trials: List[tuple] = []

    def ok(k: int) -> bool:
        drop = drop_for(k)
        trials.append((k, drop))
        return drop <= budget

    if ok(0):
        return 0, True, trials
    if total < 1:
        return 0, False, trials
    low, high = 0, 1  # ok(low) fails; look for a passing high by doubling
    while high < total and not ok(high):
        low, high = high, min(total, high * 2)
    if high >= total:  # reached the end untested: everything in float is the last resort
        high = total
        if not ok(total):
            return total, False, trials
    while high - low > 1:  # ok(high) holds, ok(low) does not
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid
    return high, True, trials


def rank_layers(converter_factory, dataset_fn) -> List[str]:
    """Quantized layers' tensor names, most sensitive (highest RMSE / scale) first."""
    tf = deps.tensorflow("the quantization debugger")
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter_factory(), debug_dataset=dataset_fn
    )
    debugger.run()
    rows = _statistics_rows(debugger)
    scored = []
    for row in rows:
        scale = float(row.get("scale") or 0.0)
        mse = float(row.get("mean_squared_error") or 0.0)
        if scale > 0 and math.isfinite(mse):
            scored.append((math.sqrt(mse) / scale, row["tensor_name"]))
    return [name for _, name in sorted(scored, key=lambda item: -item[0])]


def _statistics_rows(debugger) -> List[Dict[str, str]]:
    """The debugger's per-layer CSV as dicts (it has tensor_name and scale; the dict does not)."""
    import csv
    import io

    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def build(converter_factory, dataset_fn, denylist: Sequence[str]) -> bytes:
    """An int8 .tflite with the `denylist` layers left in float (float32 I/O)."""
    tf = deps.tensorflow("mixed-precision conversion")
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter_factory(), debug_dataset=dataset_fn, debug_options=options
    )
    try:
        return debugger.get_nondebug_quantized_model()
    except Exception as exc:  # noqa: BLE001 - the converter raises several types
        raise ConversionError(f"mixed-precision conversion failed: {exc}") from exc


def search(
    model_path: Path,
    score: Callable[[Path], float],
    budget: float,
    out_path: Path,
    calibration: np.ndarray,
    say: Optional[Say] = None,
    head: str = "logits",
) -> MixedResult:
    """Find the fewest float layers that keep the mIoU drop within `budget` points.

    Args:
        model_path: the float .keras model (a run's model.keras).
        score: artifact path -> mIoU drop in points vs float (positive = worse).
        budget: allowed drop in points.
        out_path: where the chosen .tflite is written.
        calibration: float32 (N, H, W, 3) normalised calibration input.
        head: "logits" or "argmax" (an in-graph ArgMax, as the TFLite converter makes by
            default), so the row compares with the tflite int8 row like for like.
    """
    from edge_deeplab.converters.savedmodel import export_saved_model, load_source

    say = say or (lambda message: None)
    tf = deps.tensorflow("mixed-precision conversion")
    source = load_source(model_path)
    with tempfile.TemporaryDirectory(prefix=".mixed-", dir=out_path.parent) as work:
        saved = export_saved_model(source.model, head, Path(work) / "saved_model")

        def factory():
            converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset_fn
            return converter

        def dataset_fn():
            for index in range(len(calibration)):
                yield [calibration[index : index + 1]]

        say(f"ranking layer sensitivity on {len(calibration)} images (quantization debugger)")
        ranked = rank_layers(factory, dataset_fn)
        trial = Path(work) / "trial.tflite"

        def drop_for(k: int) -> float:
            trial.write_bytes(build(factory, dataset_fn, ranked[:k]))
            drop = score(trial)
            say(f"  {k} layer(s) in float: mIoU drop {drop:.2f} points")
            return drop

        k, met, trials = fewest_layers(drop_for, budget, len(ranked))
        out_path.write_bytes(build(factory, dataset_fn, ranked[:k]))
    return MixedResult(out_path, ranked[:k], met, trials, len(ranked))


MIXED = "mixed"
MIXED_FORMAT = "tflite"  # the converter whose int8 path the search keeps layers of in float
CALIBRATION_IMAGES = 64  # the debugger runs the model once per image per trial


def mixed_variant():
    """The report's mixed-precision row: the TFLite target's suffix and engine, "mixed"."""
    from edge_deeplab.converters import CONVERTERS

    from .variants import Variant

    cls = CONVERTERS.get(MIXED_FORMAT)
    return Variant(MIXED_FORMAT, MIXED, cls.runtime, cls.suffix)


def run_mixed(runner, dataset, budget: float, reference, say: Say):
    """The report's "tflite mixed" row: search, then measure it like every other variant.

    Args:
        runner: the report's VariantRunner (engine options, calibration source, artifacts).
        dataset: the evaluated SegDataset.
        budget: allowed mIoU drop in points.
        reference: the keras fp32 ReportRow (its mIoU is the target).
    """
    from .report_row import ReportRow

    variant = mixed_variant()
    row = ReportRow(variant, threads=runner.threads)
    if reference is None or reference.miou is None:
        return row.fail("not available", "the mixed-precision search needs the keras fp32 mIoU")
    if not deps.available("tensorflow") or not deps.available("ai_edge_litert"):
        return row.fail("not available", "needs tensorflow and ai-edge-litert")
    from edge_deeplab.converters import CONVERTERS

    converter = CONVERTERS.get(MIXED_FORMAT)()
    head = converter.default_head  # like the tflite int8 row
    meta = runner.reference_metadata().replace(
        format=MIXED_FORMAT, precision=MIXED, head=head, output_resolution="full"
    )
    out_path = runner.artifacts_dir / variant.artifact_name()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Written and completed beside the artifact, then renamed into place, like `convert`.
    staging = out_path.with_name(f".{out_path.name}.partial")
    try:
        calibration = _calibration(runner.calib_data, meta)
        result = search(
            runner.model_path,
            lambda path: (reference.miou - _score(path, meta, dataset, runner.threads)) * 100,
            budget,
            staging,
            calibration,
            say,
            head=head,
        )
        converter.embed_metadata(staging, meta)
        os.replace(staging, out_path)
    except Exception as exc:  # noqa: BLE001 - a failed search is this row's failure only
        staging.unlink(missing_ok=True)
        return row.fail("conversion failed", f"{type(exc).__name__}: {exc}")
    row.mixed = {
        "budget_points": budget,
        "float_layers": result.float_layers,
        "quantized_layers_ranked": result.ranked,
        "trials": [{"float_layers": k, "miou_drop_points": round(d, 4)} for k, d in result.trials],
        "budget_met": result.met,
    }
    row = runner.measure_path(variant, out_path, dataset, say, row)
    if not result.met and row.status == "ok":
        row.reason = f"the budget was not met even with all {result.ranked} layers in float"
    return row


def _calibration(calib_data, meta) -> np.ndarray:
    from edge_deeplab.data.calibration import calibration_batches

    source = "synthetic" if calib_data is None else calib_data
    return calibration_batches(source, meta, CALIBRATION_IMAGES)


def _score(path: Path, meta, dataset, threads) -> float:
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(path, backend="tflite", threads=threads) as runtime:
        return float(evaluate(Segmenter(runtime, meta), dataset).miou)

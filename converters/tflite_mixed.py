"""TFLite int8 under an mIoU budget ("int8-mixed"): int8 with the fewest layers kept in float.

LiteRT's quantization debugger measures, per quantized layer, the error its int8 output
has against float on the calibration images; layers are ranked by RMSE / quantization
scale (the debugger guide's sensitivity figure). The search then keeps the top-k layers in
float (`denylisted_nodes`), k = 0, 1, 2, 4, ... until the artifact's mIoU on the validation
images is within the budget of the float model (and, with a class budget, every class's IoU
within it), then bisects down to the fewest such layers. Every trial is a real conversion
scored through the Segmenter, both drops from one evaluation (`Validation.drop`).

The artifact takes and returns float32 (the debugger's non-debug model keeps float I/O).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Sequence, TypeVar

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line
from edge_deeplab.runtimes import tflite_metadata

from .job import HeadPlacement
from .validation import Drop, accuracy_record, required, trial

DEBUG_IMAGES = 64  # calibration images the debugger and each trial use: it runs the model once per image
D = TypeVar("D")


def fewest_layers(drop_for: Callable[[int], D], holds: Callable[[D], bool], total: int) -> tuple:
    """The smallest k in 0..total whose drop_for(k) `holds` (the budgets), assuming drops
    shrink as k grows.

    Doubling then bisection: about 2*log2(k) calls. Returns (k, met, trials), trials as
    (k, drop) in the order made.
    """
    trials: List[tuple] = []

    def ok(k: int) -> bool:
        drop = drop_for(k)
        trials.append((k, drop))
        return bool(holds(drop))

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
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter_factory(), debug_dataset=dataset_fn, debug_options=options
        )
    except ValueError as exc:
        # With every ranked layer denylisted the debug model has no quantized layer to verify
        # and the debugger refuses it ("... in debug mode"): the search's last resort is then
        # the float model itself.
        if "debug mode" not in str(exc):
            raise ConversionError(f"mixed-precision conversion failed: {first_line(exc)}") from exc
        return _float_model(converter_factory())
    try:
        return debugger.get_nondebug_quantized_model()
    except Exception as exc:  # noqa: BLE001 - the converter raises several types
        raise ConversionError(f"mixed-precision conversion failed: {first_line(exc)}") from exc


def _float_model(converter) -> bytes:
    converter.optimizations = []
    converter.representative_dataset = None
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises several types
        raise ConversionError(f"mixed-precision conversion failed: {first_line(exc)}") from exc


def convert_mixed(job, placement: HeadPlacement, dest: Path) -> dict:
    """Write the int8-mixed .tflite of `placement` to `dest`; returns its accuracy record."""
    tf = deps.tensorflow("mixed-precision conversion")
    validation = required(job.validation)
    saved = job.saved_model(placement, label_dtype=tflite_metadata.CLASS_MAP_DTYPE)
    calibration = job.calibration()[:DEBUG_IMAGES]
    meta = job.source.metadata.replace(
        format="tflite", precision="int8-mixed", head=placement.head, output_resolution=placement.resolution
    )

    def dataset_fn():
        for index in range(len(calibration)):
            yield [calibration[index : index + 1]]

    def factory():
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset_fn
        converter._experimental_disable_per_channel = not job.quant.per_channel  # the converter's own switch
        return converter

    job.progress(f"  ranking layer sensitivity on {len(calibration)} images (quantization debugger)")
    ranked = rank_layers(factory, dataset_fn)

    def drop_for(k: int) -> Drop:
        dest.write_bytes(build(factory, dataset_fn, ranked[:k]))
        drop = _drop(dest, meta, validation)
        job.progress(f"  {k} layer(s) in float: {trial_line(drop)}")
        return drop

    k, met, trials = fewest_layers(drop_for, validation.holds, len(ranked))
    if trials[-1][0] != k:  # the last trial written was not the chosen one
        dest.write_bytes(build(factory, dataset_fn, ranked[:k]))
    return accuracy_record(
        "LiteRT quantization debugger ranking, fewest float layers", ranked[:k], len(ranked),
        trials=[trial(n, d) for n, d in trials],
    )


def trial_line(drop: Drop) -> str:
    """ "mIoU drop 0.42 points, worst class 'pole' 1.10" (a search's progress line)."""
    text = f"mIoU drop {drop.mean:.2f} points"
    if drop.worst_class is not None:
        text += f", worst class {drop.worst_class_name!r} {drop.worst_class:.2f}"
    return text


def _drop(path: Path, meta, validation) -> Drop:
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(path, backend="tflite") as runtime:
        return validation.drop(Segmenter(runtime, meta))

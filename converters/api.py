"""`convert()`: every requested target x precision, each checked for parity, written atomically.

Everything a user can get wrong (targets, precisions, head placement, the output folder,
the model, the calibration source, the validation images of int8-mixed) is checked before
the first conversion starts. Each artifact then goes build -> check -> publish
(`pipeline.py`): built in a private temporary folder inside the output folder and renamed
into place only when it is complete and its parity report is written, so a failed or
interrupted conversion leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from edge_deeplab.errors import (
    ConversionError,
    InvalidInputError,
    MissingDependencyError,
    ParityError,
)
from edge_deeplab.metadata import OUTPUT_HEADS, RESOLUTIONS
from edge_deeplab.options import option, parse_size
from edge_deeplab.status import Status

from .base import BUDGETED, CONVERTERS, IO_DTYPES, ON_REQUEST, PRECISIONS, ConversionResult, Converter
from .calibration import calibration, calibration_source, parity_image_set
from .job import ConversionJob, HeadPlacement, KerasReferences, Progress
from .parity import INT8_AGREEMENT, ParityChecker
from .pipeline import STAGING_PREFIX, convert_one, prepare_out_dir, remove_stale_staging, summary_line
from .quant_settings import BIAS_CORRECTIONS, CALIB_METHODS, QuantSettings, check_settings
from .savedmodel import load_source
from .validation import DEFAULT_BUDGET, Validation, load_validation

ALL = "all"
DEFAULT_CALIB_SIZE = 200
Plan = List[Tuple[Converter, str]]


def plan_conversions(
    targets: Union[str, Sequence[str]], precisions: Union[str, Sequence[str]]
) -> Plan:
    """(converter, precision) pairs to run, validated before any work.

    "all" (as a target or a precision) expands to every registered one and silently skips
    the combinations a target does not support (and, for targets, the ones not available
    here); a named precision a named target does not make is an error listing what it makes.
    """
    targets = _as_list(targets, "targets")
    precisions = _as_list(precisions, "precisions")
    all_targets = ALL in targets
    names = CONVERTERS.names() if all_targets else targets
    for precision in precisions:
        if precision != ALL and precision not in PRECISIONS:
            raise InvalidInputError(
                f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}, all"
            )
    plan: Plan = []
    for name in names:
        cls = CONVERTERS.get(name)
        wanted = _everything(cls.precisions) if ALL in precisions else precisions
        unsupported = [p for p in wanted if p not in cls.precisions]
        if unsupported and not all_targets:
            raise InvalidInputError(
                f"{name} does not make {', '.join(unsupported)}; "
                f"{name} precisions: {', '.join(cls.precisions)}"
            )
        ok, why = cls.available()
        if not ok:
            if all_targets:
                continue
            _raise_unavailable(cls, why)
        plan += [(cls(), p) for p in wanted if p in cls.precisions]
    if not plan:
        raise InvalidInputError(
            f"nothing to convert for targets {targets} and precisions {precisions}"
        )
    return plan


def _everything(precisions) -> List[str]:
    """What "all" means: every precision but those made on request (`base.ON_REQUEST`): the
    budgeted ones, which need validation data and minutes of search, and int16x8, which runs
    on slow kernels here; they are made when named."""
    return [p for p in precisions if p not in ON_REQUEST]


def _raise_unavailable(cls, why: str) -> None:
    """MissingDependencyError naming the extras, or why the target cannot run here."""
    missing = cls.missing()
    if missing and "pip install" in why:  # else the target says better what it needs
        names = ", ".join(module for module, _ in missing)
        extras = ",".join(sorted({extra for _, extra in missing}))
        raise MissingDependencyError(names, extras, f"{cls.name} conversion")
    raise ConversionError(f"{cls.name}: {why}")


def _as_list(value, what: str) -> List[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    items = [v.strip().lower() for item in items for v in str(item).split(",") if v.strip()]
    if not items:
        raise InvalidInputError(f"no {what} given")
    return items


def _preset_names():
    from edge_deeplab.presets import PRESETS

    return PRESETS.names()


@dataclass(frozen=True)
class ConvertOptions:
    """How `convert` makes its artifacts (checked when made, before any work).

    Each field is also a flag of `edge-deeplab convert` (`option`: flag and help live here).

    Attributes:
        calib_data: "synthetic", a folder of images, or RGB uint8 pixels (N, H, W, 3).
            None: "synthetic" when the model was trained on the synthetic dataset, else
            an error. Parity images come from the same source.
        calib_size: calibration images (the LiteRT advice is 100-500).
        size: (height, width) to export the fully convolutional model at another size.
        head, resolution: head placement ("logits"/"argmax", "full"/"feature"); None
            takes each target's default (`Converter.default_head/default_resolution`, its
            fastest, or `default_placements` for a precision), logits when only
            resolution="feature" is given.
        io_dtype: int8 input/output: "pixels" (uint8 pixels in, normalised in the graph;
            TFLite, OpenVINO, ONNX) or TFLite's "int8", "uint8", "float32".
        strict: raise ParityError when an artifact breaks the tolerance table (such an
            artifact is not written).
        parity_images: images of the parity check.
        int8_agreement: the argmax agreement with Keras an int8 / int8-mixed artifact must
            reach (None: the tolerance table's, `parity.INT8_AGREEMENT`). Barely trained models have many
            near-tied logits that int8 flips: a tiny test model spreads 96-99%.
        progress: print progress on stderr.
        max_miou_drop: int8-mixed's budget, in mIoU points against the float model.
        max_class_drop: int8-mixed's budget on every class, in IoU points any one class may
            lose against the float model (None: unchecked); the search keeps layers in float
            until the mean and every class hold.
        val_data: int8-mixed's validation images: a DataConfig, a loaded dataset,
            "synthetic" or a dataset root (None: synthetic for a synthetic-trained model).
        val_split, val_limit: the split of `val_data` scored, and at most how many images.
        calib_method, per_tensor, bias_correction: how the calibrated precisions are quantized
            (`quant_settings.QuantSettings`; None: each target's measured default).
        preset: labels and normalisation of a published .tflite model (`published.py`).
    """

    calib_data: object = option(
        None, "'synthetic' or a folder of images for calibration and parity "
        "(default: synthetic when the model was trained on it)")
    calib_size: int = option(DEFAULT_CALIB_SIZE, "calibration images (LiteRT advises 100-500)")
    size: Optional[Tuple[int, int]] = option(None, "export the fully convolutional model at HxW", parse=parse_size)
    head: Optional[str] = option(
        None, "logits out, or an in-graph argmax class map (default: the fastest for each target)",
        choices=OUTPUT_HEADS)
    resolution: Optional[str] = option(
        None, "output at the input size, or at the feature resolution (upsampled on the host)",
        choices=RESOLUTIONS)
    io_dtype: str = option(
        "pixels", "int8 model input/output: pixels = uint8 RGB pixels in, normalised in the graph "
        "(TFLite, OpenVINO, ONNX; the default), or TFLite int8/uint8/float32 I/O",
        choices=IO_DTYPES, show_default=False)
    strict: bool = option(False, "fail (and write nothing) when an artifact breaks the parity tolerance table")
    parity_images: int = option(32, "images of the parity check")
    int8_agreement: Optional[float] = option(
        None, f"argmax agreement with Keras an int8 artifact must reach (default {INT8_AGREEMENT:g})",
        parse=float)
    progress: bool = option(True, "no progress messages", flag="--quiet", inverted=True)
    max_miou_drop: float = option(
        DEFAULT_BUDGET, "int8-mixed: mIoU points the artifact may lose against float; the fewest "
        "layers that hold it stay in float, or the command exits non-zero with the drop reached")
    max_class_drop: Optional[float] = option(
        None, "int8-mixed: IoU points any one class may lose against float (a mean can hide a lost "
        "class); layers stay in float until every class holds too (default: unchecked)", parse=float,
        metavar="PTS")
    val_data: object = option(
        None, "int8-mixed: 'synthetic' or a dataset root with masks (as `eval --data` takes) to measure "
        "the drop on (default: synthetic when the model was trained on it)")
    val_split: str = option("val", "int8-mixed: split of --val-data")
    val_limit: Optional[int] = option(None, "int8-mixed: score at most N validation images", parse=int)
    calib_method: Optional[str] = option(
        None, "how activation ranges are calibrated (each target offers its library's: `formats`); "
        "default: the method measured best for each target", choices=CALIB_METHODS)
    per_tensor: bool = option(False, "one weight scale per tensor instead of per output channel")
    bias_correction: str = option(
        "full", "OpenVINO: NNCF's bias correction after quantizing", choices=BIAS_CORRECTIONS)
    preset: Optional[str] = option(
        None, "labels and normalisation of a published .tflite MODEL (its weights are imported as "
        "`train --weights` does; our own artifacts carry them)", choices=_preset_names)

    def __post_init__(self):
        _check_options(self.head, self.resolution, self.io_dtype, self.calib_size, self.parity_images)
        if not 0 <= float(self.max_miou_drop) <= 100:  # NaN fails too
            raise InvalidInputError(f"--max-miou-drop must be 0..100 mIoU points, got {self.max_miou_drop}")
        if self.max_class_drop is not None and not 0 <= float(self.max_class_drop) <= 100:
            raise InvalidInputError(f"--max-class-drop must be 0..100 IoU points, got {self.max_class_drop}")
        if self.int8_agreement is not None and not 0 < float(self.int8_agreement) <= 1:
            raise InvalidInputError(f"--int8-agreement must be in (0, 1], got {self.int8_agreement}")
        self.quant_settings()  # an unknown method or bias correction fails here

    def quant_settings(self) -> QuantSettings:
        return QuantSettings(self.calib_method, not self.per_tensor, self.bias_correction)


def convert(
    model, targets, precisions, out_dir, options: Optional[ConvertOptions] = None, **overrides
) -> List[ConversionResult]:
    """Convert a trained model to every requested target and precision.

    Args:
        model: a training run folder or a .keras file (with metadata.json beside it).
        targets: names from CONVERTERS (a list or "tflite,onnx"), or "all".
        precisions: "fp32", "fp16", "dynamic", "int8" (a list or comma-separated), or "all".
        out_dir: folder for the artifacts `model_<precision><suffix>` and their
            `<artifact>.parity.json` reports.
        options: a ConvertOptions; keyword arguments named like its fields override it
            (`convert(run, "tflite", "int8", "out", calib_data="synthetic")`).

    Returns:
        One ConversionResult per target x precision, in plan order, then (for "all") one
        "not available" result per combination this machine cannot make.
    """
    if options is not None and not isinstance(options, ConvertOptions):
        raise TypeError(f"options must be a ConvertOptions, got {type(options).__name__}")
    options = dataclasses.replace(options or ConvertOptions(), **overrides)
    results = convert_plan(model, plan_conversions(targets, precisions), out_dir, options)
    results += unavailable_results(targets, precisions)
    raise_if_strict(results, options.strict)
    return results


def convert_plan(model, plan: Plan, out_dir, options: ConvertOptions) -> List[ConversionResult]:
    """`convert()` for a prepared plan of (converter, precision) pairs: converters that are
    not in the registry's choice, e.g. TensorRT built on a remote device
    (`edge_deeplab.targets.remote_engine`). `--strict` is the caller's."""
    quant = options.quant_settings()
    check_settings(quant, plan)
    out_dir = prepare_out_dir(out_dir)
    say = Progress(options.progress)
    say(f"loading {model}")
    source = load_source(model, options.size, options.preset)
    calib_source = calibration_source(options.calib_data, source)
    remove_stale_staging(out_dir, say)
    references = KerasReferences(source)
    validation = None
    if any(precision in BUDGETED for _, precision in plan):  # a missing or broken --val-data fails here
        dataset = load_validation(options.val_data, source, options.val_split, options.val_limit)
        validation = Validation(dataset, references, options.max_miou_drop, options.max_class_drop)
    images = parity_image_set(calib_source, source, options.parity_images)
    checker = ParityChecker(images, references, options.int8_agreement)
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir) as work:
        job = ConversionJob(
            source,
            Path(work),
            lambda: calibration(calib_source, source, options.calib_size, say),
            say,
            options.io_dtype,
            references=references,
            validation=validation,
            quant=quant,
        )
        return [_convert_step(job, checker, step, plan, options, out_dir) for step in enumerate(plan, 1)]


def _convert_step(job, checker, step, plan: Plan, options: ConvertOptions, out_dir: Path):
    """One target x precision of the plan, with its progress lines."""
    index, (converter, precision) = step
    placement = _placement(converter, precision, options.head, options.resolution)
    where = f"{placement.head}, {placement.resolution} resolution"
    job.progress(f"[{index}/{len(plan)}] {converter.name} {precision} ({where})")
    result = convert_one(job, checker, converter, precision, placement, out_dir, options.strict)
    job.progress(f"  -> {summary_line(result)}")
    return result


def raise_if_strict(results: List[ConversionResult], strict: bool) -> None:
    failed = [r for r in results if r.status == Status.PARITY_FAILED]
    if strict and failed:
        names = ", ".join(
            f"{r.target} {r.precision} ({r.parity.get('agreement', 0):.2%})" for r in failed
        )
        raise ParityError(f"below the parity tolerance (not written): {names}")


def unavailable_results(targets, precisions) -> List[ConversionResult]:
    """Results saying "not available" for the targets that "all" skipped on this machine."""
    if ALL not in _as_list(targets, "targets"):
        return []
    wanted = _as_list(precisions, "precisions")
    results = []
    for name, cls in CONVERTERS.items():
        ok, why = cls.available()
        for precision in cls.precisions if not ok else ():
            if precision in wanted or (ALL in wanted and precision in _everything([precision])):
                results.append(
                    ConversionResult(name, precision, status=Status.NOT_AVAILABLE, reason=why)
                )
    return results


def _placement(converter: Converter, precision: str, head: Optional[str], resolution: Optional[str]) -> HeadPlacement:
    """The requested head placement, else the target's default for the precision (its fastest
    unless `Converter.default_placements` says otherwise). Feature-resolution output defaults
    to logits: a class map at 1/16 of the input size would come back blocky."""
    if head is None and resolution is None and precision in converter.default_placements:
        return HeadPlacement(*converter.default_placements[precision])
    resolution = resolution or converter.default_resolution
    if head is None:
        head = "logits" if resolution == "feature" else converter.default_head
    return HeadPlacement(head, resolution)


def _check_options(head, resolution, io_dtype, calib_size, parity_images) -> None:
    if head is not None and head not in OUTPUT_HEADS:
        raise InvalidInputError(f"head must be one of {', '.join(OUTPUT_HEADS)}; got {head!r}")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise InvalidInputError(
            f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}"
        )
    if io_dtype not in IO_DTYPES:
        raise InvalidInputError(f"io dtype must be one of {', '.join(IO_DTYPES)}; got {io_dtype!r}")
    if int(calib_size) < 1:
        raise InvalidInputError(f"--calib-size must be >= 1, got {calib_size}")
    if int(parity_images) < 1:
        raise InvalidInputError(f"parity images must be >= 1, got {parity_images}")

"""One artifact: convert, check parity, embed the metadata once, then rename it into place.

The artifact is written in a private staging folder inside the output folder. Its own
engine checks it configured by the metadata it will carry (`load_runtime(metadata=)`), so
the metadata is embedded once, with the parity figures and the self-test (an ONNX embed is
a full load and save of the model). Only when it is complete and its parity report written
are its files renamed into the output folder (an OpenVINO .bin before its .xml).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from edge_deeplab.errors import EdgeDeeplabError
from edge_deeplab.imageio import fsync_folder, fsync_tree
from edge_deeplab.status import Status

from .base import ConversionResult, Converter
from .job import ConversionJob
from .parity import ParityChecker, format_parity
from .placement import HeadPlacement
from .validation import float_layers, measured


def convert_one(
    job: ConversionJob,
    checker: ParityChecker,
    converter: Converter,
    precision: str,
    placement: HeadPlacement,
    out_dir: Path,
    strict: bool,
) -> ConversionResult:
    """Convert, check parity, embed the metadata, then rename the files into `out_dir`."""
    final = converter.artifact_path(out_dir, precision)
    result = ConversionResult(
        converter.name, precision, head=placement.head, resolution=placement.resolution
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=job.workdir))
    tmp = staging / final.name
    try:
        start = time.perf_counter()
        converter.convert(job, precision, placement, tmp)
        result.seconds = round(time.perf_counter() - start, 2)
        meta = _artifact_metadata(job, converter, precision, placement)
        meta = _accuracy_control(job, converter, tmp, meta, result)
        result.parity, selftest = converter.measure_parity(checker, tmp, meta) or _parity(checker, converter, tmp, meta)
        # Embedded once, with the parity result: the checks ran the engine on `meta` as it will
        # read it (the registry's round-trip test proves each format reads back what it wrote).
        converter.embed_metadata(tmp, meta.replace(parity=result.parity, selftest=selftest))
        result.client = converter.client if converter.client_ready(meta) else ""
    except EdgeDeeplabError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return _failed(result, Status.CONVERSION_FAILED, exc)
    result.size_mb = round(sum(f.stat().st_size for f in converter.files(tmp)) / 2**20, 3)
    if result.status == Status.OK and not result.parity["passed"]:
        result.status, result.reason = Status.PARITY_FAILED, format_parity(result.parity)
        if strict:
            shutil.rmtree(staging, ignore_errors=True)
            return result
    report = {**result.to_dict(), "path": str(final)}
    # Staging is private, so a plain write is enough: the rename below is what is atomic.
    (staging / (final.name + ".parity.json")).write_text(
        json.dumps(report, indent=2), encoding="utf-8"
    )
    for path in [*converter.files(tmp), staging / (final.name + ".parity.json")]:
        fsync_tree(path)  # on disk before the name: a power cut leaves the old file or this one
        os.replace(path, out_dir / path.name)  # OpenVINO: .bin before .xml (which checks the .bin)
    fsync_folder(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    result.path = final
    return result


def _accuracy_control(job: ConversionJob, converter: Converter, path: Path, meta, result: ConversionResult):
    """int8-mixed: measure the written artifact's mIoU drop; record it with the search's
    record in the metadata (source["accuracy_control"]) and the result; "budget missed"
    when it is over the budget (the artifact is still the best the search found)."""
    record = job.records.get((converter.name, meta.precision))
    if record is None:
        return meta
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    validation = job.validation()
    with load_runtime(path, backend=converter.runtime, metadata=meta) as runtime:
        drop = validation.drop(Segmenter(runtime))
    record = measured(record, validation.budget, drop)
    result.accuracy = record
    if not record["budget_met"]:
        result.status = Status.BUDGET_MISSED
        result.reason = f"mIoU drop {drop:.2f} points > budget {validation.budget:g} with {float_layers(record)}"
    job.progress(f"  mIoU drop {drop:.2f} points (budget {validation.budget:g}), {float_layers(record)}")
    return meta.replace(source={**meta.source, "accuracy_control": record})


def _failed(result: ConversionResult, status: Status, exc: Exception) -> ConversionResult:
    result.status, result.reason = status, str(exc)
    return result


def _artifact_metadata(job: ConversionJob, converter: Converter, precision: str, placement: HeadPlacement):
    meta = job.source.metadata
    source = {
        **meta.source,
        "converted_with": "edge-deeplab convert",
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if precision == "int8" and converter.name == "tflite":
        source["io_dtype"] = job.io_dtype
    return meta.replace(
        format=converter.name,
        precision=precision,
        head=placement.head,
        output_resolution=placement.resolution,
        input_kind="pixels" if converter.takes_pixels(job, precision, placement) else "normalized",
        source=source,
        parity={},
    )


def _parity(checker: ParityChecker, converter: Converter, path: Path, meta):
    """Open the artifact in its own engine, configured by `meta` as it will be by the embedded
    copy, and compare: (parity figures, the self-test it will carry)."""
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(path, backend=converter.runtime, metadata=meta) as runtime:
        segmenter = Segmenter(runtime)
        figures = checker.check(segmenter, meta.precision)
        return figures, checker.selftest(segmenter, figures["tolerance"])


def summary_line(result: ConversionResult) -> str:
    """One line per artifact: status, file, size, time and parity."""
    if not result.status.written:
        return f"{result.target} {result.precision}: {result.status}: {result.reason}"
    where = result.path.name if result.path else "(not written)"
    line = (
        f"{result.status:<13} {where:<22} {result.size_mb:7.2f} MB {result.seconds:6.1f} s  "
        f"{format_parity(result.parity)}"
    )
    accuracy = result.accuracy
    if accuracy:
        drop, budget = accuracy["miou_drop_points"], accuracy["budget_points"]
        line += f"  mIoU drop {drop:.2f} (budget {budget:g}), {float_layers(accuracy)}"
    if result.client:
        line += f"  [{result.client}-ready]"
    return line

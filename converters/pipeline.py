"""One artifact's conversion: three pure steps, each returning a frozen record.

    build   (the converter writes the artifact into staging)             -> Built
    check   (opened ONCE in its own engine: parity, self-test, mIoU drop) -> Checked
    publish (metadata embedded, parity report written, files renamed)     -> ConversionResult

The artifact is written in a private staging folder inside the output folder. Its own
engine checks it configured by the metadata it will carry (`load_runtime(metadata=)`), so
the metadata is embedded once, with the parity figures and the self-test (an ONNX embed is
a full load and save of the model). Only when it is complete and its parity report written
are its files renamed into the output folder (an OpenVINO .bin before its .xml). Staging
folders that killed runs left behind are removed by the next run into the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional

from edge_deeplab.errors import EdgeDeeplabError, InvalidInputError
from edge_deeplab.imageio import fsync_folder, fsync_tree
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.status import Status

from .base import ConversionResult, Converter
from .job import ConversionJob, HeadPlacement
from .parity import ParityChecker, format_parity
from .quant_settings import CALIBRATED
from .validation import describe, measured, missed, required

STAGING_PREFIX = ".edge-deeplab-convert-"  # + the pid of the run that owns the folder


@dataclass(frozen=True)
class Built:
    """What `build` made: the staged artifact, how long it took, and, for a budgeted precision,
    the search's record (`validation.accuracy_record`; its drop is measured by `check`)."""

    path: Path
    seconds: float
    search: Optional[Dict[str, object]] = None


@dataclass(frozen=True)
class Checked:
    """What `check` measured on the staged artifact, and the metadata it is to carry
    (parity figures, self-test and, for int8-mixed, source["accuracy_control"])."""

    metadata: ArtifactMetadata
    parity: Dict[str, object]
    accuracy: Dict[str, object] = field(default_factory=dict)


def convert_one(
    job: ConversionJob,
    checker: ParityChecker,
    converter: Converter,
    precision: str,
    placement: HeadPlacement,
    out_dir: Path,
    strict: bool,
) -> ConversionResult:
    """build -> check -> publish one target x precision into `out_dir`; a failing step is a
    "conversion failed" result, and nothing of it is left in staging or `out_dir`."""
    final = converter.artifact_path(out_dir, precision)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=job.workdir))
    try:
        built = build(job, converter, precision, placement, staging / final.name)
        checked = check(job, checker, converter, built, artifact_metadata(job, converter, precision, placement))
        return publish(converter, built, checked, final, strict)
    except EdgeDeeplabError as exc:
        return ConversionResult(converter.name, precision, head=placement.head, resolution=placement.resolution,
                                status=Status.CONVERSION_FAILED, reason=str(exc))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build(job: ConversionJob, converter: Converter, precision: str, placement: HeadPlacement, dest: Path) -> Built:
    """The converter writes the artifact of `precision` and `placement` at `dest` (in staging)."""
    start = time.perf_counter()
    search = converter.convert(job, precision, placement, dest)
    return Built(Path(dest), round(time.perf_counter() - start, 2), search)


def check(job: ConversionJob, checker: ParityChecker, converter: Converter, built: Built,
          meta: ArtifactMetadata) -> Checked:
    """Open the staged artifact once in its own engine, configured by `meta` as it will be by
    the embedded copy: its parity figures, its self-test and, after a budgeted search, its
    mIoU drop against float. An engine only its device runs is measured there
    (`Converter.measure_parity`)."""
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    accuracy: Dict[str, object] = {}
    remote = converter.measure_parity(checker, built.path, meta)
    if remote is not None:
        parity, selftest = remote
    else:
        with load_runtime(built.path, backend=converter.runtime, metadata=meta) as runtime:
            segmenter = Segmenter(runtime)
            if built.search is not None:
                accuracy = _accuracy(job, built.search, segmenter)
            parity = checker.check(segmenter, meta.precision)
            selftest = checker.selftest(segmenter, parity["tolerance"])
    source = {**meta.source, "accuracy_control": accuracy} if accuracy else meta.source
    return Checked(meta.replace(source=source, parity=parity, selftest=selftest), parity, accuracy)


def _accuracy(job: ConversionJob, search: dict, segmenter) -> dict:
    """The search's record completed with the drops (mean and worst class, one evaluation)
    measured on the artifact behind `segmenter`."""
    validation = required(job.validation)
    record = measured(search, validation, validation.drop(segmenter))
    job.progress(f"  {describe(record)}")
    return record


def publish(converter: Converter, built: Built, checked: Checked, final: Path, strict: bool) -> ConversionResult:
    """Embed the metadata, then rename the artifact's files and its parity report to `final`
    (OpenVINO: .bin before .xml); with `strict`, an artifact below its parity bar is not written.

    int8-mixed over its budget is "budget missed" and still written (the best the search found).
    """
    meta = checked.metadata
    # Embedded once, with the parity result: the check ran the engine on `meta` as it will
    # read it (the registry's round-trip test proves each format reads back what it wrote).
    converter.embed_metadata(built.path, meta)
    status, reason = _verdict(checked)
    result = ConversionResult(
        converter.name, meta.precision, status=status, reason=reason, parity=checked.parity,
        seconds=built.seconds, size_mb=round(sum(f.stat().st_size for f in converter.files(built.path)) / 2**20, 3),
        head=meta.head, resolution=meta.output_resolution, accuracy=checked.accuracy,
        client=converter.client if converter.client_ready(meta) else "",
    )
    if strict and status == Status.PARITY_FAILED:
        return result
    report = built.path.with_name(final.name + ".parity.json")
    # Staging is private, so a plain write is enough: the rename below is what is atomic.
    report.write_text(json.dumps({**result.to_dict(), "path": str(final)}, indent=2), encoding="utf-8")
    for path in [*converter.files(built.path), report]:
        fsync_tree(path)  # on disk before the name: a power cut leaves the old file or this one
        os.replace(path, final.parent / path.name)  # OpenVINO: .bin before .xml (which checks the .bin)
    fsync_folder(final.parent)
    return replace(result, path=final)


def _verdict(checked: Checked):
    """(status, reason): a missed budget (mIoU, then a class) first, then the parity bar."""
    accuracy = checked.accuracy
    if accuracy and not accuracy["budget_met"]:
        return Status.BUDGET_MISSED, missed(accuracy)
    if not checked.parity["passed"]:
        return Status.PARITY_FAILED, format_parity(checked.parity)
    return Status.OK, ""


def artifact_metadata(job: ConversionJob, converter: Converter, precision: str, placement: HeadPlacement):
    """The metadata an artifact is checked under (and, with its figures, carries)."""
    meta = job.source.metadata
    source = {
        **meta.source,
        "converted_with": "edge-deeplab convert",
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if precision == "int8" and converter.name == "tflite":
        source["io_dtype"] = job.io_dtype
    if precision in CALIBRATED:  # how it was quantized: what a report row or a user asks first
        source["quantization"] = f"{job.quant.describe(converter)}, {len(job.calibration_pixels())} calibration images"
    return meta.replace(
        format=converter.name,
        precision=precision,
        head=placement.head,
        output_resolution=placement.resolution,
        input_kind="pixels" if converter.takes_pixels(job, precision, placement) else "normalized",
        source=source,
        parity={},
    )


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
        line += f"  {describe(accuracy)}"
    if result.client:
        line += f"  [{result.client}-ready]"
    return line


# -- the output folder ----------------------------------------------------------------------

def prepare_out_dir(out_dir) -> Path:
    """Create the output folder and prove it is writable (before any work)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=".edge-deeplab-probe-", dir=out_dir)
        os.rmdir(probe)
    except OSError as exc:
        raise InvalidInputError(f"--out {out_dir}: cannot write there ({exc.strerror})") from None
    return out_dir


def remove_stale_staging(out_dir: Path, say=print) -> int:
    """Delete staging folders that killed runs left in `out_dir`; returns how many.

    A folder belongs to a dead run when the pid in its name is not running. Folders of live
    runs (concurrent converts into one folder) are left alone.
    """
    removed = 0
    for folder in out_dir.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-")[0]
        if not folder.is_dir() or (pid.isdigit() and _alive(int(pid))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
        say(f"removed {folder.name}, left by a conversion that was killed")
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True

"""`convert --to tensorrt --target T`: TensorRT engines built on the device they will run on.

An engine runs only on the GPU and TensorRT version it was built with. The host has the
Keras model (and TensorFlow); the device has the GPU and TensorRT (and no TensorFlow). So:

1. the device's `edge-deeplab build-engine --probe` says its TensorRT version, its GPU and,
   per precision, the typing its TensorRT builds (one line naming the install when it has
   no TensorRT or no GPU);
2. the host makes what that TensorRT needs: the fp32 ONNX (and, for a weakly typed int8
   build, the calibration input as a .npy) for TensorRT 10, the fp16 or symmetric Q/DQ ONNX
   for TensorRT 11 (`converters/tensorrt_onnx.py`), and uploads it through the content cache;
3. `build-engine` builds it there into `<cache>/built/<key>.engine` (the key: what the local
   engine cache keys on, the device's TensorRT and GPU included), and `Device.download`
   brings it back, size and SHA-256 checked;
4. the parity is measured there too: the engine's sidecar carries the self-test made from
   the Keras model, as every artifact's does, and the device's `verify` runs it; its
   agreement is the parity figure (`measured_on` names the device; no mIoU or logit
   difference: only the self-test ran), and the self-test keeps it as `at_conversion`.

The artifact then lands in --out as a local conversion's does (`convert_plan`): engine,
sidecar and parity report renamed into place together, nothing partial on a failure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from .. import deps
from ..converters.api import ConvertOptions, convert_plan, raise_if_strict
from ..converters.base import ConversionResult
from ..converters.parity import measured_selftest
from ..converters.tensorrt import TensorRTConverter, calibration_digest, engine_key, export_digest
from ..errors import InvalidInputError, MissingDependencyError
from .cli import Uploads
from .remote import JSON_OUT, Device, built
from .ssh import TargetError

ENGINE_PRECISIONS = ("fp16", "int8")


class DeviceTensorRT(TensorRTConverter):
    """TensorRT engines built by a device's own TensorRT (not registered: `convert_on_target` plans it).

    Args:
        device: the open device.
        found: its `build-engine --probe` record: "tensorrt", "gpu" and "typing" per precision.
    """

    def __init__(self, device: Device, found: dict):
        self.device, self.found = device, found

    def convert(self, job, precision: str, placement, dest: Path) -> None:
        typing = self.found["typing"][precision]
        uploads = Uploads()
        words = [uploads.file(self._onnx(job, placement, precision, typing)), "--precision", precision,
                 "--typing", typing]
        calibration = ""
        if typing == "weak" and precision == "int8":
            words += ["--calib", uploads.file(_calibration_file(job))]
            calibration = calibration_digest(job)
        key = engine_key(export_digest(job, placement), self.found["tensorrt"], self.found["gpu"], precision,
                         (1, *job.source.input_size, 3), calibration, typing)
        name = f"{key}.engine"
        job.progress(f"  TensorRT {self.found['tensorrt']} on {self.device.name} ({self.found['gpu']}): "
                     f"building a {typing}ly typed {precision} engine there")
        self.device.upload(uploads.bundles.values())
        record = self.device.run("build-engine", [*words, "--out", built(name), "--json", JSON_OUT]).result
        if not isinstance(record, dict) or "sha256" not in record:
            raise TargetError(f"on {self.device.name}: build-engine wrote no engine record")
        self.device.download(name, dest, int(record["bytes"]), str(record["sha256"]))

    @staticmethod
    def _onnx(job, placement, precision: str, typing: str) -> Path:
        if typing == "strong":
            from ..converters.tensorrt_onnx import strongly_typed_onnx

            return Path(strongly_typed_onnx(job, placement, precision))
        return Path(job.onnx_model(placement))

    def measure_parity(self, checker, path: Path, meta) -> Tuple[dict, dict]:
        """The self-test run by the device's `verify` on the engine: (parity figures, self-test)."""
        tolerance = checker.tolerance(meta.precision)
        entry = checker.selftest_entry(meta, tolerance)
        self.embed_metadata(path, meta.replace(selftest=entry))  # rewritten with the figures once measured
        uploads = Uploads()
        ref = uploads.artifact(path)
        self.device.upload(uploads.bundles.values())
        record = self.device.run("verify", [ref, "--json", JSON_OUT]).result  # exit 1 below the bar: still a figure
        if not isinstance(record, dict) or "agreement" not in record:
            raise TargetError(f"on {self.device.name}: verify wrote no result for the engine")
        agreement = float(record["agreement"])
        figures = {
            "images": len(entry["inputs"]), "agreement": agreement, "miou": None, "max_abs_diff": None,
            "tolerance": tolerance, "passed": bool(agreement >= tolerance), "measured_on": self.device.name,
            "measured_by": "the self-test, run by verify on the device", "engine": record.get("engine"),
            "device": record.get("device"), "tensorrt": self.found["tensorrt"], "gpu": self.found["gpu"],
        }
        return figures, measured_selftest(entry, agreement)


def _calibration_file(job) -> Path:
    """The job's normalised calibration input as a .npy (made once per conversion)."""
    path = job.workdir / "tensorrt-calibration.npy"
    if not path.is_file():
        np.save(path, np.ascontiguousarray(job.calibration(), np.float32), allow_pickle=False)
    return path


def engine_precisions(targets: Sequence[str], precisions: Sequence[str]) -> List[str]:
    """The precisions to build, or one line saying why --target cannot convert this."""
    if [t.lower() for t in targets] != ["tensorrt"]:
        raise InvalidInputError("--target builds TensorRT engines on the device (--to tensorrt); the other formats "
                                "run anywhere: convert them here, then check them there with verify --target")
    wanted = list(ENGINE_PRECISIONS) if "all" in precisions else [p.lower() for p in precisions]
    unknown = [p for p in wanted if p not in ENGINE_PRECISIONS]
    if unknown or not wanted:
        raise InvalidInputError(f"tensorrt does not make {', '.join(unknown) or 'nothing'}; "
                                f"tensorrt precisions: {', '.join(ENGINE_PRECISIONS)}")
    return list(dict.fromkeys(wanted))


def convert_on_target(target: str, model, targets: Sequence[str], precisions: Sequence[str], out_dir,
                      options: ConvertOptions) -> List[ConversionResult]:
    """TensorRT engines for `model` built on `target`, each checked there; results as `convert()`'s.

    Raises:
        InvalidInputError: not --to tensorrt, or another precision.
        MissingDependencyError: this machine cannot make the ONNX (TensorFlow, tf2onnx, ...).
        TargetError: the device is unreachable, or has no TensorRT or GPU (the line says what to install).
    """
    wanted = engine_precisions(targets, precisions)
    missing = [(module, extra) for module, extra in TensorRTConverter.requires
               if extra != "tensorrt" and not deps.available(module)]
    if missing:
        raise MissingDependencyError(", ".join(m for m, _ in missing), ",".join(sorted({e for _, e in missing})),
                                     "making the ONNX a device's TensorRT builds from")
    with Device(target) as device:
        found = device.run("build-engine", ["--probe", "--precision", ",".join(wanted), "--json", JSON_OUT]).result
        if not isinstance(found, dict) or not isinstance(found.get("typing"), dict):
            raise TargetError(f"on {device.name}: build-engine --probe wrote no record")
        logging.getLogger(__name__).info(f"{device.name}: TensorRT {found['tensorrt']} on {found['gpu']}")
        converter = DeviceTensorRT(device, found)
        results = convert_plan(model, [(converter, precision) for precision in wanted], out_dir, options)
    raise_if_strict(results, options.strict)
    return results

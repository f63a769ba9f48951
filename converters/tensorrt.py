"""TensorRT engines (FP16, INT8) from the ONNX export, built where TensorRT and a GPU exist.

TensorRT 10 builds weakly typed (builder flags, entropy calibrator), TensorRT 11 strongly
typed from an fp16 or a symmetric Q/DQ int8 ONNX (`tensorrt_build.py`,
`tensorrt_onnx.py`). An engine is specific to the TensorRT version and the GPU it was built
on, so built engines are cached under a key of what they depend on (ONNX export, TensorRT
version, GPU name, precision, typing, input shape and, for INT8, the calibration images)
in `$EDGE_DEEPLAB_CACHE/tensorrt` (default ~/.cache/edge_deeplab); a rebuild with the same
key copies the cached engine. Any TensorRT or CUDA failure is this target's conversion
error, so `convert --to all` goes on with the next. The metadata is the default JSON file
beside the engine (`model_fp16.engine.json`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from edge_deeplab import deps
from edge_deeplab.cache import cache_root
from edge_deeplab.errors import ConversionError, EdgeDeeplabError, first_line
from edge_deeplab.nvidia import gpu_name

from .base import CONVERTERS, Converter
from .job import OPSET, ConversionJob, HeadPlacement
from .tensorrt_build import build_engine, typing_for

NEEDS = "needs TensorRT and an NVIDIA GPU (a Jetson, or a desktop GPU with the tensorrt package)"


def cache_dir() -> Path:
    return cache_root() / "tensorrt"


@CONVERTERS.register
class TensorRTConverter(Converter):
    """Serialized TensorRT engines (.engine) for the TensorRT runtime."""

    # Fixed by the TensorRT version, not chosen here: 10 builds with its entropy calibrator, 11
    # (strongly typed) from onnxruntime's symmetric min/max Q/DQ.
    calib_methods = ()
    default_calib_method = "the TensorRT version's"
    name = "tensorrt"
    suffix = ".engine"
    precisions = ("fp16", "int8")
    extra = "tensorrt"
    requires = (
        ("tensorflow", "train"),
        ("tf2onnx", "onnx"),
        ("onnx", "onnx"),
        ("onnxruntime", "onnx"),  # the Q/DQ quantizer and the fp16 rewrite (onnxruntime-gpu on a Jetson)
        ("tensorrt", "tensorrt"),
        ("cuda", "tensorrt"),  # cuda-python: device memory for int8 calibration
    )
    runtime = "tensorrt"
    libraries = ("tensorrt",)
    order = 50
    # Not measured (no GPU here): logits out keep the engine free of TensorRT's uint8
    # casting limits; the host argmax is the Segmenter's.
    default_head = "logits"

    @classmethod
    def available(cls):
        if not deps.available("tensorrt") or not gpu_name():
            return False, NEEDS
        return super().available()

    def convert(self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path) -> None:
        ok, why = self.available()
        if not ok:
            raise ConversionError(f"tensorrt: {why}")
        trt = deps.optional("tensorrt", "tensorrt", "building TensorRT engines")
        try:
            cached = cached_engine(trt, job, precision, placement)
        except EdgeDeeplabError:
            raise
        # The bindings raise whatever pybind11 maps a C++ failure to (TypeError, RuntimeError,
        # AttributeError on a removed API...): each is this target's error, not a traceback.
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(
                f"TensorRT {getattr(trt, '__version__', '?')}: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        shutil.copyfile(cached, dest)


def cached_engine(trt, job: ConversionJob, precision: str, placement: HeadPlacement) -> Path:
    """The cached engine for this job, built first when the cache has none."""
    typing = typing_for(trt, precision)
    calibration = calibration_digest(job) if precision == "int8" else ""
    shape = (1, *job.source.input_size, 3)
    key = engine_key(export_digest(job, placement), trt.__version__, gpu_name(), precision, shape, calibration,
                     typing)
    cached = cache_dir() / f"{key}.engine"
    if cached.is_file():
        job.progress(f"  TensorRT: cached engine {cached.name}")
        return cached
    job.progress(f"  TensorRT {trt.__version__}: building a {typing}ly typed {precision} engine on {gpu_name()}")
    data = _build(trt, job, precision, placement, typing, cached.with_suffix(".calib"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, cached)
    return cached


def _build(trt, job: ConversionJob, precision: str, placement: HeadPlacement, typing: str, calib: Path) -> bytes:
    if typing == "strong":
        from .tensorrt_onnx import strongly_typed_onnx

        onnx_bytes = strongly_typed_onnx(job, placement, precision).read_bytes()
        return build_engine(trt, onnx_bytes, precision, typing, progress=job.progress)
    onnx_bytes = Path(job.onnx_model(placement)).read_bytes()
    if precision != "int8":
        return build_engine(trt, onnx_bytes, precision, typing, progress=job.progress)
    from .tensorrt_calibrator import entropy_calibrator

    batches = job.calibration()
    calibrator = entropy_calibrator(trt, batches, calib, job.progress.count("calibrating (TensorRT)", len(batches)))
    try:
        data = build_engine(trt, onnx_bytes, precision, typing, calibrator, job.progress)
    finally:
        calibrator.free()
    if calibrator.error is not None:
        raise ConversionError(f"TensorRT int8 calibration stopped: {calibrator.error}")
    return data


def export_digest(job: ConversionJob, placement: HeadPlacement) -> bytes:
    """What the ONNX export depends on: the model, the placement, the exporter. (Not the
    export's bytes: tf2onnx's generated names differ from one export to the next.)"""
    import tf2onnx

    model = job.source.model
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    digest.update(repr((placement.head, placement.resolution, OPSET, tf2onnx.__version__)).encode())
    return digest.digest()


def calibration_digest(job: ConversionJob) -> str:
    """What the INT8 calibration depends on: the images and the normalisation they get."""
    meta = job.source.metadata
    digest = hashlib.sha256(job.calibration_pixels().tobytes())
    digest.update(repr((tuple(meta.mean), tuple(meta.std))).encode())
    return digest.hexdigest()


def engine_key(
    source: bytes, trt_version: str, gpu: str, precision: str, shape, calibration: str = "", typing: str = ""
) -> str:
    """A file-name-safe cache key: what an engine depends on (`source`: the model's digest)."""
    text = "|".join(
        [hashlib.sha256(source).hexdigest(), trt_version, gpu, precision, "x".join(map(str, shape)),
         calibration, typing]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]

"""TensorRT engines (FP16, INT8) from the ONNX export, built where TensorRT and a GPU exist.

An engine is specific to the TensorRT version and the GPU it was built on, so built
engines are cached under a key of (ONNX export hash, TensorRT version, GPU name,
precision, input shape) in `$EDGE_DEEPLAB_CACHE/tensorrt` (default ~/.cache/edge_deeplab);
a rebuild with the same key copies the cached engine. INT8 uses TensorRT's entropy
calibrator on the shared calibration images, with its calibration cache kept beside the
engine cache. The metadata is the default JSON file beside the engine (`model_fp16.engine.json`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, MissingDependencyError

from .base import CONVERTERS, Converter
from .job import ConversionJob
from .placement import HeadPlacement

NEEDS = "needs TensorRT and an NVIDIA GPU (a Jetson, or a desktop GPU with the tensorrt package)"


def gpu_name() -> str:
    """The NVIDIA GPU's name, or "" when there is none."""
    model = Path("/proc/device-tree/model")  # Jetson boards name themselves here
    if Path("/dev/nvhost-ctrl-gpu").exists() and model.is_file():
        return model.read_text(errors="ignore").strip("\0 \n")
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""


def cache_dir() -> Path:
    root = os.environ.get("EDGE_DEEPLAB_CACHE") or Path.home() / ".cache" / "edge_deeplab"
    return Path(root) / "tensorrt"


@CONVERTERS.register
class TensorRTConverter(Converter):
    """Serialized TensorRT engines (.engine) for the TensorRT runtime."""

    name = "tensorrt"
    suffix = ".engine"
    precisions = ("fp16", "int8")
    extra = "tensorrt"
    requires = (
        ("tensorflow", "train"),
        ("tf2onnx", "onnx"),
        ("onnx", "onnx"),
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

    def convert(
        self, job: ConversionJob, precision: str, placement: HeadPlacement, dest: Path
    ) -> None:
        ok, why = self.available()
        if not ok:
            raise ConversionError(f"tensorrt: {why}")
        trt = deps.optional("tensorrt", "tensorrt", "building TensorRT engines")
        onnx_path = Path(job.onnx_model(placement))
        shape = (1, *job.source.input_size, 3)
        key = engine_key(onnx_path.read_bytes(), trt.__version__, gpu_name(), precision, shape)
        cached = cache_dir() / f"{key}.engine"
        if cached.is_file():
            job.progress(f"  TensorRT: cached engine {cached.name}")
        else:
            job.progress(
                f"  TensorRT {trt.__version__}: building {precision} engine on {gpu_name()}"
            )
            data = build_engine(trt, onnx_path, precision, job, cached.with_suffix(".calib"))
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        shutil.copyfile(cached, dest)


def engine_key(onnx_bytes: bytes, trt_version: str, gpu: str, precision: str, shape) -> str:
    """A file-name-safe cache key: what an engine depends on."""
    text = "|".join(
        [
            hashlib.sha256(onnx_bytes).hexdigest(),
            trt_version,
            gpu,
            precision,
            "x".join(map(str, shape)),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def build_engine(
    trt, onnx_path: Path, precision: str, job: ConversionJob, calib_cache: Path
) -> bytes:
    """Parse the ONNX export and build a serialized engine (FP16 or INT8 + FP16 fallback)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # TensorRT 8 (JetPack 5) defaults to implicit batch
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT cannot parse the ONNX export: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, job, calib_cache)
    if hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _progress_monitor(trt, job)
    data = builder.build_serialized_network(network, config)
    if data is None:
        raise ConversionError(f"TensorRT could not build a {precision} engine (see its log above)")
    return bytes(data)


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise MissingDependencyError(
                "cuda-python", "tensorrt", "TensorRT int8 calibration"
            ) from None
    return cudart


def _calibrator(trt, job: ConversionJob, cache: Path):
    """An entropy calibrator feeding the shared calibration images one at a time."""
    cudart = _cudart()
    batches = job.calibration()
    tick = job.progress.count("calibrating (TensorRT)", len(batches))

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.index = 0
            _, self.buffer = cudart.cudaMalloc(batches[0:1].nbytes)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(batches):
                return None
            host = np.ascontiguousarray(batches[self.index : self.index + 1])
            cudart.cudaMemcpy(
                self.buffer,
                host.ctypes.data,
                host.nbytes,
                cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            )
            self.index += 1
            tick(self.index)
            return [int(self.buffer)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data):
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(bytes(data))

    return Calibrator()


def _progress_monitor(trt, job: ConversionJob):
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            super().__init__()

        def phase_start(self, phase_name, parent_phase, num_steps):
            job.progress(f"  TensorRT: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # keep building

        def phase_finish(self, phase_name):
            pass

    return Monitor()

"""ONNX models through ONNX Runtime, on the CPU, CUDA or TensorRT execution provider."""

from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, ModelLoadError
from edge_deeplab.metadata import ArtifactMetadata

from .base import RUNTIMES, Runtime, TensorSpec

# `device` values -> the execution providers to ask for, best first (CPU is always the fallback).
DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "gpu": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
# ONNX type strings -> numpy dtypes, for the tensors a segmentation model has.
_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


@RUNTIMES.register("onnxruntime")
class ONNXRuntime(Runtime):
    """An .onnx model on an ONNX Runtime InferenceSession.

    Args:
        path: .onnx file.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        device: "cpu" (default), "cuda"/"gpu" or "tensorrt": picks the providers.
        providers: explicit provider list (overrides `device`), e.g. ["CUDAExecutionProvider"].
    """

    name = "onnxruntime"
    suffixes = (".onnx",)
    extra = "onnx"

    def __init__(
        self,
        path,
        *,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        providers: Optional[Sequence[str]] = None,
    ):
        super().__init__(path, threads=threads, device=device)
        ort = deps.onnxruntime()
        if self.path.is_dir():
            raise ModelLoadError(f"{self.path}: is a folder, expected an .onnx file")
        chosen = _providers(ort, device, providers)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(chosen)
            )
        except Exception as exc:  # ORT raises its own C++-bound exception types
            hint = " (truncated, or not an ONNX file?)" if "protobuf" in str(exc).lower() else ""
            raise ModelLoadError(
                f"{self.path}: ONNX Runtime cannot load it{hint}: {_first_line(exc)}"
            ) from None
        self._in = self._session.get_inputs()[0]
        self._out = self._session.get_outputs()[0]
        self._metadata = _read_metadata(self._session, self.path)

    @property
    def input_spec(self) -> TensorSpec:
        return _spec(self._in)

    @property
    def output_spec(self) -> TensorSpec:
        return _spec(self._out)

    @property
    def providers(self) -> list:
        """The execution providers the session actually uses, best first."""
        return self._session.get_providers()

    @property
    def device_name(self) -> str:
        first = self.providers[0]
        return {
            "CPUExecutionProvider": "CPU",
            "CUDAExecutionProvider": "CUDA",
            "TensorrtExecutionProvider": "TensorRT",
        }.get(first, first)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """NHWC batch of input_spec.dtype -> the raw output tensor."""
        dtype = np.dtype(self.input_spec.dtype)
        try:
            return self._session.run(
                [self._out.name], {self._in.name: np.ascontiguousarray(batch, dtype)}
            )[0]
        except Exception as exc:  # shape/type mismatches come back as ORT exceptions
            raise InvalidInputError(f"{self.path}: inference failed: {_first_line(exc)}") from None

    @classmethod
    def available(cls) -> bool:
        return deps.available("onnxruntime")

    def close(self) -> None:
        self._session = None


def _providers(ort, device: Optional[str], providers: Optional[Sequence[str]]) -> tuple:
    """The providers to use; unknown devices and providers not in this build are errors."""
    available = ort.get_available_providers()
    if providers:
        missing = [p for p in providers if p not in available]
        if missing:
            raise InvalidInputError(
                f"onnxruntime: providers {', '.join(missing)} are not in this build; "
                f"available: {', '.join(available)}"
            )
        return tuple(providers)
    key = (device or "cpu").lower()
    if key not in DEVICE_PROVIDERS:
        raise InvalidInputError(
            f"onnxruntime: unknown device {device!r}; valid devices: {', '.join(DEVICE_PROVIDERS)}"
        )
    wanted = DEVICE_PROVIDERS[key]
    if wanted[0] not in available:
        raise InvalidInputError(
            f"onnxruntime: device {device!r} needs {wanted[0]}, which this onnxruntime build lacks "
            f"(available: {', '.join(available)}; install onnxruntime-gpu for CUDA/TensorRT)"
        )
    return tuple(p for p in wanted if p in available)


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    dtype = _ONNX_TYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(
            f"tensor {node.name} has type {node.type}; expected a float or integer tensor"
        )
    return TensorSpec(node.name, shape, np.dtype(dtype))


def _read_metadata(session, path) -> Optional[ArtifactMetadata]:
    """`metadata_props["edge_deeplab"]`, read from the open session (no second parse)."""
    from edge_deeplab.converters.artifact_metadata import metadata_from_props

    return metadata_from_props(dict(session.get_modelmeta().custom_metadata_map), path)


def _first_line(exc: BaseException) -> str:
    """ORT's message without its source location and C++ signature."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return re.sub(r"/\S+\.(?:cc|h|cpp):\d+ [^()]*\([^()]*\)\s*", "", text)

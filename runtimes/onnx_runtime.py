"""ONNX models through ONNX Runtime, on the CPU, CUDA or TensorRT execution provider."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, ModelLoadError, first_line
from edge_deeplab.metadata import ArtifactMetadata

from . import model_api_info, onnx_metadata
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


@RUNTIMES.register
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
    libraries = ("onnxruntime",)
    order = 30

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
        # `metadata_props["edge_deeplab"]`, read from the open session (no second parse).
        custom = dict(self._session.get_modelmeta().custom_metadata_map)
        self._metadata = onnx_metadata.from_props(custom, self.path)
        # model_api's layout (model_api_info): NCHW in and out, presented and fed as NHWC;
        # pixels it takes as float32 are presented as the uint8 they hold.
        self._planar = model_api_info.planar_in_props(custom)
        self._feed = _spec(self._in).dtype

    def assume_metadata(self, metadata: ArtifactMetadata) -> None:
        super().assume_metadata(metadata)
        self._planar = model_api_info.planar_in_props(model_api_info.onnx_props(metadata))

    @property
    def input_spec(self) -> TensorSpec:
        spec = _spec(self._in)
        if not self._planar:
            return spec
        pixels = self._metadata is not None and self._metadata.input_kind == "pixels"
        return model_api_info.nhwc_spec(dataclasses.replace(spec, dtype=np.dtype(np.uint8)) if pixels else spec)

    @property
    def output_spec(self) -> TensorSpec:
        spec = _spec(self._out)
        return model_api_info.nhwc_spec(spec) if self._planar else spec

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
        batch = np.asarray(batch, self._feed)
        batch = model_api_info.to_nchw(batch) if self._planar and batch.ndim == 4 else np.ascontiguousarray(batch)
        try:
            output = self._session.run([self._out.name], {self._in.name: batch})[0]
        except Exception as exc:  # shape/type mismatches come back as ORT exceptions
            raise InvalidInputError(f"{self.path}: inference failed: {_first_line(exc)}") from None
        return model_api_info.to_nhwc(output) if self._planar else output

    @classmethod
    def read_metadata(cls, path) -> Optional[ArtifactMetadata]:
        """`metadata_props["edge_deeplab"]` without a session (`onnx_metadata.read`)."""
        return onnx_metadata.read(path)

    @classmethod
    def available(cls) -> bool:
        return deps.available("onnxruntime")

    @classmethod
    def jetson_options(cls, model) -> Optional[dict]:
        """ONNX Runtime's TensorRT provider; FP16 and an engine cache beside the model (set
        in the environment, where the provider reads them) make every start after the first
        take seconds instead of minutes."""
        os.environ.setdefault("ORT_TENSORRT_FP16_ENABLE", "1")
        os.environ.setdefault("ORT_TENSORRT_ENGINE_CACHE_ENABLE", "1")
        os.environ.setdefault("ORT_TENSORRT_CACHE_PATH", str(Path(model).resolve().parent))
        return {"device": "tensorrt"}

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


def _first_line(exc: BaseException) -> str:
    """ORT's message without its source location and C++ signature."""
    return re.sub(r"/\S+\.(?:cc|h|cpp):\d+ [^()]*\([^()]*\)\s*", "", first_line(exc))

"""Serialized TensorRT engines (.engine / .plan) on a Jetson or a desktop NVIDIA GPU.

Needs the `tensorrt` Python package (JetPack ships it; on a desktop `pip install
tensorrt`) and `cuda-python` for device memory. An engine is built for one GPU and one
TensorRT version: build it on the device that runs it (`edge-deeplab convert --to tensorrt`).
Uses the TensorRT 10 tensor-name API. Metadata lives in a JSON file beside the engine.
"""

from __future__ import annotations

import importlib
from typing import Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, MissingDependencyError, ModelLoadError

from .base import RUNTIMES, Runtime, TensorSpec


def _cudart():
    """cuda-python's runtime module (new and old import paths)."""
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise MissingDependencyError("cuda-python", "tensorrt", "running TensorRT engines")


def _check(result, what: str):
    """cuda-python returns (error, *values); raise on a non-zero error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelLoadError(f"CUDA error in {what}: {err}")
    return values[0] if len(values) == 1 else values


@RUNTIMES.register
class TensorRTRuntime(Runtime):
    """A TensorRT engine with one image input and one segmentation output.

    Args:
        path: .engine or .plan file, built on this GPU with this TensorRT version.
        threads: ignored (the GPU runs it); kept for the common interface.
        device: "cuda" / "cuda:N" / "gpu:N" (default GPU 0).
    """

    name = "tensorrt"
    suffixes = (".engine", ".plan")
    extra = "tensorrt"
    libraries = ("tensorrt",)
    order = 50

    def __init__(self, path, *, threads: Optional[int] = None, device: Optional[str] = None):
        super().__init__(path, threads=threads, device=device)
        if not deps.available("tensorrt"):
            raise MissingDependencyError(
                "tensorrt", "tensorrt", "running TensorRT engines (needs an NVIDIA GPU)"
            )
        trt = importlib.import_module("tensorrt")
        self._cuda = _cudart()
        self._gpu = _gpu_index(self._cuda, device)
        _check(self._cuda.cudaSetDevice(self._gpu), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelLoadError(
                f"{self.path}: TensorRT {trt.__version__} cannot deserialize it (not an engine, "
                "truncated, or built for another GPU / TensorRT version)"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise ModelLoadError(f"{self.path}: expected one input and an output, found {names}")
        self._in_name, self._out_name = inputs[0], outputs[0]
        self._trt = trt
        self._stream = _check(self._cuda.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers = {}
        self._metadata = self.read_metadata(self.path)

    def _tensor_spec(self, name: str) -> TensorSpec:
        shape = tuple(None if d < 0 else int(d) for d in self._engine.get_tensor_shape(name))
        dtype = np.dtype(self._trt.nptype(self._engine.get_tensor_dtype(name)))
        return TensorSpec(name, shape, dtype)

    @property
    def input_spec(self) -> TensorSpec:
        return self._tensor_spec(self._in_name)

    @property
    def output_spec(self) -> TensorSpec:
        return self._tensor_spec(self._out_name)

    @property
    def device_name(self) -> str:
        return f"GPU:{self._gpu} (TensorRT)"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """NHWC batch of input_spec.dtype -> the raw output tensor (copied to the host)."""
        cuda = self._cuda
        batch = np.ascontiguousarray(batch, dtype=self.input_spec.dtype)
        if not self._context.set_input_shape(self._in_name, tuple(batch.shape)):
            raise InvalidInputError(
                f"{self.path}: the engine does not take a batch of shape {batch.shape}"
            )
        out_shape = tuple(self._context.get_tensor_shape(self._out_name))
        out = np.empty(out_shape, self.output_spec.dtype)
        d_in = self._device_buffer(self._in_name, batch.nbytes)
        d_out = self._device_buffer(self._out_name, out.nbytes)
        h2d, d2h = (
            cuda.cudaMemcpyKind.cudaMemcpyHostToDevice,
            cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        _check(
            cuda.cudaMemcpyAsync(d_in, batch.ctypes.data, batch.nbytes, h2d, self._stream),
            "copy in",
        )
        self._context.set_tensor_address(self._in_name, d_in)
        self._context.set_tensor_address(self._out_name, d_out)
        if not self._context.execute_async_v3(self._stream):
            raise ModelLoadError(f"{self.path}: TensorRT execution failed")
        _check(
            cuda.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self._stream), "copy out"
        )
        _check(cuda.cudaStreamSynchronize(self._stream), "synchronize")
        return out

    def _device_buffer(self, name: str, nbytes: int) -> int:
        """A device allocation for `name`, grown when a larger batch needs it."""
        pointer, size = self._buffers.get(name, (None, 0))
        if size < nbytes:
            if pointer is not None:
                self._cuda.cudaFree(pointer)
            pointer = _check(self._cuda.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers[name] = (pointer, nbytes)
        return int(pointer)

    @classmethod
    def available(cls) -> bool:
        """True only with tensorrt and cuda-python installed and a GPU present."""
        if not deps.available("tensorrt"):
            return False
        try:
            count = _check(_cudart().cudaGetDeviceCount(), "cudaGetDeviceCount")
        except (MissingDependencyError, ModelLoadError):
            return False
        return int(count) > 0

    @classmethod
    def jetson_options(cls, model) -> Optional[dict]:
        return {}  # an engine runs on the GPU it was built for

    def close(self) -> None:
        for pointer, _ in getattr(self, "_buffers", {}).values():
            self._cuda.cudaFree(pointer)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            self._cuda.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = self._engine = None


def _gpu_index(cuda, device: Optional[str]) -> int:
    count = int(_check(cuda.cudaGetDeviceCount(), "cudaGetDeviceCount"))
    valid = [f"cuda:{i}" for i in range(count)]
    text = (device or "cuda:0").lower().replace("gpu", "cuda")
    index_text = text.split(":", 1)[1] if ":" in text else "0"
    if not text.startswith("cuda") or not index_text.isdigit() or int(index_text) >= count:
        raise InvalidInputError(
            f"tensorrt: device {device!r} does not exist; "
            f"valid devices: {', '.join(valid) or 'none (no GPU)'}"
        )
    return int(index_text)

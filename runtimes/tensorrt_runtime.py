"""Serialized TensorRT engines (.engine / .plan) on a Jetson or a desktop NVIDIA GPU.

Needs the `tensorrt` Python package (JetPack ships it; on a desktop `pip install
'edge-deeplab[tensorrt]'`) and `cuda-python` for device memory. An engine is built for one
GPU and one TensorRT version: build it on the device that runs it (`edge-deeplab convert
--to tensorrt`). Uses the tensor-name API that TensorRT 10 and 11 share; every CUDA call is
checked (`cuda.py`). Metadata lives in a JSON file beside the engine.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from typing import Dict, Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, MissingDependencyError, ModelLoadError

from .base import RUNTIMES, Runtime, TensorSpec
from .cuda import CudaError, DeviceBuffer, call, cudart


@RUNTIMES.register
class TensorRTRuntime(Runtime):
    """A TensorRT engine with one image input and one segmentation output.

    Args:
        path: .engine or .plan file, built on this GPU with this TensorRT version.
        threads: ignored (the GPU runs it); kept for the common interface.
        device: "cuda" / "cuda:N" / "gpu:N" (default GPU 0).

    CUDA's current device belongs to a thread, so `run` selects the engine's GPU on each
    thread that calls it (the demo opens the engine on one thread and infers on another).
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
        self._buffers: Dict[str, DeviceBuffer] = {}
        self._stream = None
        self._on_thread = threading.local()
        trt = importlib.import_module("tensorrt")
        self._trt = trt
        self._cuda = cudart()
        try:
            self._gpu = _gpu_index(self._cuda, device)
            self._use_device()
            self._open_engine(trt)
            self._stream = call(self._cuda, "cudaStreamCreate")
        except CudaError as exc:
            self.close()
            raise ModelLoadError(f"{self.path}: {exc}") from None
        self._metadata = self.read_metadata(self.path)

    def _open_engine(self, trt) -> None:
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

    def _use_device(self) -> None:
        """cudaSetDevice on the calling thread, once per thread."""
        if getattr(self._on_thread, "gpu", None) != self._gpu:
            call(self._cuda, "cudaSetDevice", self._gpu)
            self._on_thread.gpu = self._gpu

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
        if self._stream is None:
            raise ModelLoadError(f"{self.path}: the engine was closed")
        batch = np.ascontiguousarray(batch, dtype=self.input_spec.dtype)
        try:
            self._use_device()
            return self._execute(batch)
        except CudaError as exc:
            raise ModelLoadError(f"{self.path}: {exc}") from None

    def _execute(self, batch: np.ndarray) -> np.ndarray:
        context = self._context
        if not context.set_input_shape(self._in_name, tuple(batch.shape)):
            raise InvalidInputError(
                f"{self.path}: the engine does not take a batch of shape {batch.shape}"
            )
        out = np.empty(tuple(context.get_tensor_shape(self._out_name)), self.output_spec.dtype)
        d_in = self._device_buffer(self._in_name, batch.nbytes)
        d_out = self._device_buffer(self._out_name, out.nbytes)
        d_in.upload(batch, self._stream)
        context.set_tensor_address(self._in_name, d_in.pointer)
        context.set_tensor_address(self._out_name, d_out.pointer)
        if not context.execute_async_v3(self._stream):
            raise ModelLoadError(f"{self.path}: TensorRT execution failed")
        d_out.download(out, self._stream)
        call(self._cuda, "cudaStreamSynchronize", self._stream)
        return out

    def _device_buffer(self, name: str, nbytes: int) -> DeviceBuffer:
        """The device allocation for `name`, replaced when a larger batch needs more."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.nbytes < nbytes:
            self._buffers.pop(name, None)
            if buffer is not None:
                buffer.free()
            buffer = self._buffers[name] = DeviceBuffer(self._cuda, nbytes)
        return buffer

    @classmethod
    def available(cls) -> bool:
        """True only with tensorrt and cuda-python installed and a GPU present."""
        if not deps.available("tensorrt"):
            return False
        try:
            return int(call(cudart(), "cudaGetDeviceCount")) > 0
        except (MissingDependencyError, CudaError):
            return False

    @classmethod
    def jetson_options(cls, model) -> Optional[dict]:
        return {}  # an engine runs on the GPU it was built for

    def close(self) -> None:
        """Free the device buffers and the stream; a second call does nothing."""
        failures = []
        buffers, self._buffers = getattr(self, "_buffers", {}), {}
        for buffer in buffers.values():
            try:
                buffer.free()
            except CudaError as exc:
                failures.append(str(exc))
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            try:
                call(self._cuda, "cudaStreamDestroy", stream)
            except CudaError as exc:
                failures.append(str(exc))
        self._context = self._engine = None
        if failures:  # closing must not raise (it runs in finally blocks); say what leaked
            warnings.warn(f"{self.path}: closing the engine: {'; '.join(failures)}", RuntimeWarning, stacklevel=2)


def _gpu_index(cuda, device: Optional[str]) -> int:
    count = int(call(cuda, "cudaGetDeviceCount"))
    valid = [f"cuda:{i}" for i in range(count)]
    text = (device or "cuda:0").lower().replace("gpu", "cuda")
    index_text = text.split(":", 1)[1] if ":" in text else "0"
    if not text.startswith("cuda") or not index_text.isdigit() or int(index_text) >= count:
        raise InvalidInputError(
            f"tensorrt: device {device!r} does not exist; "
            f"valid devices: {', '.join(valid) or 'none (no GPU)'}"
        )
    return int(index_text)

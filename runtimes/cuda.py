"""cuda-python's runtime API, with every call checked and device memory owned by an object.

cuda-python returns `(error, *values)` from every call instead of raising, so an
unchecked `cudaMalloc` hands back a null pointer that TensorRT later dereferences.
`call()` raises a CudaError naming the call and CUDA's own error name; `DeviceBuffer`
frees its memory exactly once. Both the TensorRT runtime and the int8 calibrator use it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from edge_deeplab.errors import EdgeDeeplabError, MissingDependencyError


class CudaError(EdgeDeeplabError):
    """A CUDA runtime call failed (no driver, out of memory, a bad pointer...)."""


def cudart(purpose: str = "running TensorRT engines") -> ModuleType:
    """cuda-python's runtime module: `cuda.bindings.runtime` (12.6+), else `cuda.cudart`."""
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise MissingDependencyError("cuda-python", "tensorrt", purpose)


def call(cuda: ModuleType, name: str, *args):
    """`cuda.<name>(*args)` with its error checked: the returned value(s), else CudaError."""
    result = getattr(cuda, name)(*args)
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise CudaError(f"CUDA error in {name}: {_error_name(cuda, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _error_name(cuda: ModuleType, err) -> str:
    try:
        _, name = cuda.cudaGetErrorName(err)
        return name.decode() if isinstance(name, bytes) else str(name)
    except (AttributeError, TypeError, ValueError):
        return str(err)


def host_to_device(cuda: ModuleType) -> object:
    return cuda.cudaMemcpyKind.cudaMemcpyHostToDevice


def device_to_host(cuda: ModuleType) -> object:
    return cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost


class DeviceBuffer:
    """`nbytes` of device memory; `free()` (or `with`) releases it once, however often called."""

    def __init__(self, cuda: ModuleType, nbytes: int):
        self._cuda = cuda
        self.nbytes = int(nbytes)
        self._pointer: Optional[int] = int(call(cuda, "cudaMalloc", self.nbytes))

    @property
    def pointer(self) -> int:
        if self._pointer is None:
            raise CudaError("device buffer used after it was freed")
        return self._pointer

    def upload(self, host, stream=None) -> None:
        """Copy the contiguous numpy array `host` (at most nbytes) to the device."""
        if host.nbytes > self.nbytes:
            raise CudaError(f"copy of {host.nbytes} bytes into a {self.nbytes}-byte device buffer")
        if stream is None:
            call(self._cuda, "cudaMemcpy", self.pointer, host.ctypes.data, host.nbytes, host_to_device(self._cuda))
        else:
            call(self._cuda, "cudaMemcpyAsync", self.pointer, host.ctypes.data, host.nbytes,
                 host_to_device(self._cuda), stream)

    def download(self, host, stream) -> None:
        """Queue a copy of the device memory into the contiguous numpy array `host`."""
        call(self._cuda, "cudaMemcpyAsync", host.ctypes.data, self.pointer, host.nbytes,
             device_to_host(self._cuda), stream)

    def free(self) -> None:
        pointer, self._pointer = self._pointer, None
        if pointer is not None:
            call(self._cuda, "cudaFree", pointer)

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.free()

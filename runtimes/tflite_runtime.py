"""TFLite models through LiteRT (`ai_edge_litert`), `tflite_runtime` or `tf.lite`.

LiteRT is the engine of choice (PITFALLS: `tflite_runtime` 2.14 only runs with numpy 1.x);
the others are fallbacks for old devices and for machines that have only TensorFlow.
XNNPACK (LiteRT's default CPU delegate) is on unless `xnnpack=False`: without it fp32 is
about 6x and int8 about 11x slower on a desktop CPU.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edge_deeplab.errors import (
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    first_line,
)
from edge_deeplab.metadata import ArtifactMetadata

from . import tflite_metadata
from .base import RUNTIMES, Runtime, TensorSpec

# Interpreter modules in order of preference, with the package that provides each.
_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)
_FLATBUFFER_ID = b"TFL3"
# `device` values other than CPU load the delegate library of that hardware (the library
# name the vendor ships; override with EDGE_DEEPLAB_TFLITE_<DEVICE>_DELEGATE=/path).
DELEGATE_LIBRARIES = {
    "GPU": "libtensorflowlite_gpu_delegate.so",
    "EDGETPU": "libedgetpu.so.1",
}
DEVICES = ("CPU", *DELEGATE_LIBRARIES)


def interpreter_module():
    """The first importable TFLite interpreter module (LiteRT, tflite_runtime, tf.lite)."""
    for module, _package in _INTERPRETERS:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if module == "tensorflow.lite":
            mod = _TFLiteShim(mod)
        return mod
    raise MissingDependencyError("ai-edge-litert", "tflite", "running .tflite models")


class _TFLiteShim:
    """tf.lite exposes Interpreter and load_delegate under `tf.lite` / `tf.lite.experimental`."""

    def __init__(self, lite):
        self.Interpreter = lite.Interpreter
        self.load_delegate = lite.experimental.load_delegate
        self.OpResolverType = lite.experimental.OpResolverType


@RUNTIMES.register
class TFLiteRuntime(Runtime):
    """A .tflite model on the LiteRT interpreter.

    Args:
        path: .tflite file.
        threads: interpreter threads (None: LiteRT's default).
        device: "CPU" (default), or "GPU" / "EDGETPU" to load that hardware's delegate
            library (it must be installed, e.g. on a Jetson or with an Edge TPU).
        delegates: delegate shared libraries (paths, loaded with `load_delegate`) or
            already-loaded delegate objects, e.g. the GPU delegate on a Jetson or an Edge TPU.
        xnnpack: keep LiteRT's default XNNPACK delegate (True) or use the plain kernels.
    """

    name = "tflite"
    suffixes = (".tflite",)
    extra = "tflite"
    libraries = ("ai-edge-litert", "tflite-runtime")
    order = 20

    def __init__(
        self,
        path,
        *,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        delegates: Sequence = (),
        xnnpack: bool = True,
    ):
        super().__init__(path, threads=threads, device=device)
        delegates = list(delegates) + _device_delegates(device)
        content = _read_flatbuffer(self.path)
        lite = interpreter_module()
        self.interpreter_name = lite.__name__ if hasattr(lite, "__name__") else "tensorflow.lite"
        loaded = [_load_delegate(lite, d) for d in delegates]
        kwargs = {"model_content": content, "num_threads": threads}
        if loaded:
            kwargs["experimental_delegates"] = loaded
        if not xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self._interp = lite.Interpreter(**kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"{self.path}: the TFLite interpreter cannot load it: {first_line(exc)}"
            ) from None
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._delegates = loaded
        self._metadata = self.read_metadata(self.path)

    @property
    def input_spec(self) -> TensorSpec:
        return _spec(self._in)

    @property
    def output_spec(self) -> TensorSpec:
        return _spec(self._out)

    @property
    def device_name(self) -> str:
        return "CPU+delegate" if self._delegates else "CPU"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """NHWC batch of input_spec.dtype -> the raw output tensor (a copy)."""
        batch = np.ascontiguousarray(batch, dtype=self._in["dtype"])
        if tuple(batch.shape) != tuple(self._in["shape"]):
            self._resize(batch.shape)
        self._interp.set_tensor(self._in["index"], batch)
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])

    def _resize(self, shape) -> None:
        signature = tuple(self._in.get("shape_signature", self._in["shape"]))
        if len(shape) != len(signature) or any(s not in (-1, d) for s, d in zip(signature, shape)):
            raise InvalidInputError(
                f"{self.path}: batch of shape {tuple(shape)}; "
                f"the model takes {tuple(self._in['shape'])}"
            )
        self._interp.resize_tensor_input(self._in["index"], list(shape))
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]

    @classmethod
    def read_metadata(cls, path) -> Optional[ArtifactMetadata]:
        """The `edge_deeplab.json` appended to the flatbuffer (pure Python), or None."""
        return tflite_metadata.read(path)

    @classmethod
    def available(cls) -> bool:
        from edge_deeplab import deps

        return any(deps.available(m.split(".")[0]) for m, _ in _INTERPRETERS)

    def close(self) -> None:
        self._interp = None
        self._delegates = []


def _read_flatbuffer(path: Path) -> bytes:
    """The model bytes, refusing files that are not TFLite flatbuffers (a renamed PNG...)."""
    try:
        content = path.read_bytes()
    except IsADirectoryError:
        raise ModelLoadError(f"{path}: is a folder, expected a .tflite file") from None
    if len(content) < 8 or content[4:8] != _FLATBUFFER_ID:
        raise ModelLoadError(
            f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier; "
            "truncated or another format?)"
        )
    return content


def _device_delegates(device: Optional[str]) -> list:
    """The delegate library a `device` name stands for (none for the CPU)."""
    key = (device or "CPU").upper()
    if key not in DEVICES:
        raise InvalidInputError(
            f"tflite: unknown device {device!r}; valid devices: {', '.join(DEVICES)} "
            "(GPU and EDGETPU through their delegate libraries)"
        )
    if key == "CPU":
        return []
    return [os.environ.get(f"EDGE_DEEPLAB_TFLITE_{key}_DELEGATE", DELEGATE_LIBRARIES[key])]


def _load_delegate(lite, delegate):
    if not isinstance(delegate, (str, Path)):
        return delegate  # already a delegate object
    try:
        # Open the library first: LiteRT's Delegate raises from __del__ when it cannot.
        ctypes.CDLL(str(delegate))
        return lite.load_delegate(str(delegate))
    except (ValueError, OSError, RuntimeError) as exc:
        raise ModelLoadError(
            f"cannot load TFLite delegate {delegate}: {first_line(exc)} "
            "(valid devices: CPU, unless that delegate library is installed)"
        ) from None


def _spec(detail: dict) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale:
        scale, zero_point = None, None
    else:
        scale, zero_point = float(scale), int(zero_point)
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), scale, zero_point)

"""One Runtime interface over every engine; `load_runtime` picks one by file suffix.

Engines register themselves when their module is imported; the modules are small and
import their framework lazily, so importing them all costs nothing on an edge device.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edge_deeplab.errors import ModelLoadError
from edge_deeplab.runs import resolve_model_path

from .base import RUNTIMES, Runtime, TensorSpec

# One module per engine; adding an engine adds a line here.
_ENGINE_MODULES = (
    "keras_runtime",
    "tflite_runtime",
    "onnx_runtime",
    "openvino_runtime",
    "tensorrt_runtime",
)

for _module in _ENGINE_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_module}")
    except ModuleNotFoundError as exc:  # an engine file not written yet is not fatal
        if exc.name != f"{__name__}.{_module}":
            raise


def runtime_for_path(path: Path) -> str:
    """The registry name of the engine that opens `path`, by suffix."""
    suffix = path.suffix.lower() if path.is_file() else ""
    if path.is_dir() and (path / "saved_model.pb").is_file():
        suffix = "saved_model"
    for name, cls in RUNTIMES.items():
        if suffix and suffix in cls.suffixes:
            return name
    known = sorted({s for _, cls in RUNTIMES.items() for s in cls.suffixes})
    raise ModelLoadError(
        f"{path}: cannot tell which engine opens this file; known model files: {', '.join(known)}"
    )


def load_runtime(path, backend: str = "auto", **options) -> Runtime:
    """Open a model with the engine `backend` ("auto": chosen by the file suffix).

    Args:
        path: an artifact file, a SavedModel folder, or a training run folder (its final
            model is used).
        backend: a runtime registry name or "auto".
        **options: passed to the engine (threads, device, and engine-specific ones).
    """
    path = resolve_model_path(path)
    name = runtime_for_path(path) if backend == "auto" else backend
    cls = RUNTIMES.get(name)
    if path.is_file() and path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty")
    return cls(path, **options)


def available_runtimes() -> list:
    return [name for name, cls in RUNTIMES.items() if cls.available()]


__all__ = ["RUNTIMES", "Runtime", "TensorSpec", "load_runtime", "available_runtimes"]

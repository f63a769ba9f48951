"""One Runtime interface over every engine; `load_runtime` picks one by file suffix.

Every module of this package is imported when the package is (`RUNTIMES.discover`), and
each engine registers itself under its class's `name`. The modules are small and import
their framework lazily, so finding them all costs nothing on an edge device; a module that
fails to import is an error, not a silently missing engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from edge_deeplab.errors import ModelLoadError
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runs import resolve_model_path
from edge_deeplab.trust import is_saved_model, require_trusted

from .base import RUNTIMES, Runtime, TensorSpec

RUNTIMES.discover(__name__)


def model_suffixes() -> Tuple[str, ...]:
    """Every model file suffix some engine opens (".tflite", ".onnx", ...), in registry order."""
    suffixes = [s for cls in RUNTIMES.values() for s in cls.suffixes if s.startswith(".")]
    return tuple(dict.fromkeys(suffixes))


def runtime_for_path(path: Path) -> str:
    """The registry name of the engine that opens `path`, by suffix."""
    suffix = path.suffix.lower() if path.is_file() else ""
    if path.is_dir() and (path / "saved_model.pb").is_file():
        suffix = "saved_model"
    for name, cls in RUNTIMES.items():
        if suffix and suffix in cls.suffixes:
            return name
    known = sorted({s for cls in RUNTIMES.values() for s in cls.suffixes})
    raise ModelLoadError(
        f"{path}: cannot tell which engine opens this file; known model files: {', '.join(known)}"
    )


def read_metadata(path) -> Optional[ArtifactMetadata]:
    """The metadata of any artifact, read by the engine that opens its suffix (no session)."""
    return RUNTIMES.get(runtime_for_path(Path(path))).read_metadata(path)


def load_runtime(path, backend: str = "auto", *, metadata: Optional[ArtifactMetadata] = None,
                 trust_model: bool = False, **options) -> Runtime:
    """Open a model with the engine `backend` ("auto": chosen by the file suffix).

    Args:
        path: an artifact file, a SavedModel folder, or a training run folder (its final
            model is used).
        backend: a runtime registry name or "auto".
        metadata: use this instead of what the file embeds (`Runtime.assume_metadata`).
        trust_model: open a SavedModel folder, whose graph can read and write files
            (`edge_deeplab.trust`); refused otherwise.
        **options: passed to the engine (threads, device, and engine-specific ones).
    """
    path = resolve_model_path(path)
    name = runtime_for_path(path) if backend == "auto" else backend
    cls = RUNTIMES.get(name)
    if path.is_file() and path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty")
    if is_saved_model(path):
        require_trusted(path, trust_model)
        options["trust_model"] = trust_model
    runtime = cls(path, **options)
    if metadata is not None:
        runtime.assume_metadata(metadata)
    return runtime


__all__ = [
    "RUNTIMES",
    "Runtime",
    "TensorSpec",
    "load_runtime",
    "model_suffixes",
    "read_metadata",
    "runtime_for_path",
]

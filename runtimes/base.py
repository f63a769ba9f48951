"""The thin engine adapter: tensor in, tensor out.

A Runtime knows how to load one kind of file and run raw tensors through it. It does no
resizing, normalising or argmax: that is `Segmenter`'s job, for every engine alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional, Tuple

import numpy as np

from edge_deeplab.errors import ModelLoadError
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.metadata_io import read_sidecar_metadata
from edge_deeplab.registry import Registry


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    shape: NHWC for images; None where a dimension is dynamic (usually the batch).
    dtype: numpy dtype the engine takes or returns (float32, float16, int8, uint8, int64...).
    scale, zero_point: affine quantisation, real = scale * (q - zero_point); None if float.
    """

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: np.dtype
    scale: Optional[float] = None
    zero_point: Optional[int] = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.issubdtype(np.dtype(self.dtype), np.integer)


class Runtime(ABC):
    """Base class of every engine.

    Subclasses declare, as class attributes, `name` (the registry key and CLI value),
    `suffixes` (files it opens; `load_runtime(backend="auto")` picks by them), `extra` (the
    pip extra that installs the engine), `libraries` (the pip distributions whose versions
    a report records) and `order` (where it is listed), register with
    `@RUNTIMES.register`, and implement `run`. A format whose converter embeds metadata in
    the artifact overrides `read_metadata`; the default reads the JSON beside the file.

    Args:
        path: model file (or folder, for formats stored as folders); None for a model held
            in memory, which an engine wraps through a named constructor
            (`KerasRuntime.from_model`, `OpenVINORuntime.from_compiled`) that gives its metadata.
        threads: CPU threads for the engine; None leaves the engine's default.
        device: engine-specific device name ("CPU", "GPU", "cuda", ...); None = default.
    """

    name: ClassVar[str]
    suffixes: ClassVar[Tuple[str, ...]] = ()
    extra: ClassVar[str]
    libraries: ClassVar[Tuple[str, ...]] = ()
    order: ClassVar[int] = 100

    def __init__(self, path, *, threads: Optional[int] = None, device: Optional[str] = None):
        self.path: Optional[Path] = None if path is None else Path(path)
        if self.path is not None and not self.path.exists():
            raise ModelLoadError(f"{self.path}: no such model file")
        self.threads = threads
        self.device = device

    @property
    @abstractmethod
    def input_spec(self) -> TensorSpec:
        """The image input tensor."""

    @property
    @abstractmethod
    def output_spec(self) -> TensorSpec:
        """The segmentation output tensor (logits or class map)."""

    # Engines that read the metadata from their open session set it; else it is read once
    # through `read_metadata` on first use.
    _metadata = _UNREAD = object()

    @property
    def metadata(self) -> Optional[ArtifactMetadata]:
        """The metadata embedded in the artifact, or None for a foreign model."""
        if self._metadata is Runtime._UNREAD:
            self._metadata = type(self).read_metadata(self.path)
        return self._metadata

    def assume_metadata(self, metadata: ArtifactMetadata) -> None:
        """Run as if `metadata` were embedded: the converter checks an artifact before it
        embeds its metadata, so it embeds it once, with the parity result. An engine whose
        behaviour follows embedded keys (ONNX's model_api layout) re-derives it here."""
        self._metadata = metadata

    @classmethod
    def read_metadata(cls, path) -> Optional[ArtifactMetadata]:
        """The metadata of the artifact at `path` without opening an engine session, or None.

        Default: the JSON file beside the artifact (what `Converter.embed_metadata` writes).
        """
        return read_sidecar_metadata(path)

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch: NHWC array of input_spec.dtype in, the raw output array out."""

    @property
    def device_name(self) -> str:
        """Where it runs, for reports ("CPU", "GPU:0", ...)."""
        return self.device or "CPU"

    @classmethod
    def available(cls) -> bool:
        """Whether the engine can be imported on this machine."""
        return True

    @classmethod
    def jetson_options(cls, model: Path) -> Optional[dict]:
        """How the Jetson demo runs `model` on the GPU with this engine ({"device": ...},
        {} for the engine's default device), or None when this engine has no GPU path."""
        return None

    def close(self) -> None:  # noqa: B027 (optional hook: most engines free on GC)
        """Release the engine (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path) if self.path else 'in memory'!r})"


RUNTIMES: Registry[type] = Registry("runtime")

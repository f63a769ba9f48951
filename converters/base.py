"""The Converter base class, its registry, and what a conversion shares across targets.

A target is declared as data (name, suffix, precisions, pip extra, default head
placement): the CLI choices, `edge-deeplab formats`, the parametrised tests and the
benchmark all read the registry. A converter only turns the shared intermediates (the
SavedModel export, the ONNX export, the calibration batches) into its artifact.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from edge_deeplab import deps
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.registry import Registry

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")  # every precision any target knows
IO_DTYPES = ("int8", "uint8", "float32")


@dataclass(frozen=True)
class Variant:
    """Where the segmentation head sits: "logits"/"argmax", at "full"/"feature" resolution."""

    head: str = "logits"
    resolution: str = "full"


@dataclass
class ConversionResult:
    """The outcome of one target x precision.

    status: "ok", "conversion failed", "parity failed" or "not available".
    parity: {"agreement", "miou", "max_abs_diff", "images", "passed", ...} or {}.
    """

    target: str
    precision: str
    path: Optional[Path] = None
    status: str = "ok"
    reason: str = ""
    parity: Dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0
    size_mb: float = 0.0
    head: str = "logits"
    resolution: str = "full"

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["path"] = str(self.path) if self.path else None
        return data


class Progress:
    """One-line progress messages on stderr (silent when disabled)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(message, file=self.stream, flush=True)

    def count(self, what: str, total: int, every: Optional[int] = None) -> Callable[[int], None]:
        """A callback `tick(done)` printing "what done/total" every `every` items."""
        every = every or max(1, total // 4)

        def tick(done: int) -> None:
            if done == total or done % every == 0:
                self(f"  {what}: {done}/{total}")

        return tick


class ConversionJob:
    """What the converters of one `convert()` call share, built lazily and cached.

    Args:
        source: the SourceModel (Keras model + metadata).
        workdir: a private temporary folder for intermediates (SavedModels, ONNX exports).
        calibration: a callable returning float32 (N, H, W, 3) normalised batches.
        progress: the Progress reporter.
        io_dtype: TFLite int8 input/output dtype ("int8", "uint8", "float32").
    """

    def __init__(
        self,
        source,
        workdir: Path,
        calibration: Callable[[], np.ndarray],
        progress: Progress,
        io_dtype: str = "int8",
    ):
        self.source = source
        self.workdir = Path(workdir)
        self._calibration = calibration
        self._calib_cache: Optional[np.ndarray] = None
        self.progress = progress
        self.io_dtype = io_dtype
        self._cache: Dict[Tuple, object] = {}

    def calibration(self) -> np.ndarray:
        """float32 (N, H, W, 3) normalised calibration images (computed once)."""
        if self._calib_cache is None:
            self._calib_cache = self._calibration()
        return self._calib_cache

    def keras_model(self, variant: Variant):
        """The Keras model at the variant's resolution (logits out)."""
        from .savedmodel import variant_model

        return self._cached(
            ("keras", variant.resolution),
            lambda: variant_model(self.source.model, variant.resolution),
        )

    def saved_model(self, variant: Variant) -> Path:
        """The SavedModel export of `variant` (the common intermediate)."""
        from .savedmodel import export_saved_model

        def build():
            self.progress(
                f"  exporting SavedModel ({variant.head}, {variant.resolution} resolution)"
            )
            folder = self.workdir / f"saved_model_{variant.head}_{variant.resolution}"
            return export_saved_model(self.keras_model(variant), variant.head, folder)

        return self._cached(("saved_model", variant), build)

    def onnx_model(self, variant: Variant) -> Path:
        """The fp32 ONNX export of the SavedModel (for ONNX, OpenVINO and TensorRT)."""
        from .onnx import export_onnx

        def build():
            path = self.workdir / f"onnx_{variant.head}_{variant.resolution}.onnx"
            return export_onnx(self, variant, path)

        return self._cached(("onnx", variant), build)

    def _cached(self, key: Tuple, build: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


class Converter(ABC):
    """Base class of every target.

    Subclasses declare, as class attributes:
        name: registry key and CLI value ("tflite").
        suffix: artifact file suffix (".tflite").
        precisions: the precisions it makes, in CLI spelling.
        extra: the pip extra that installs what it needs.
        requires: (importable module, pip extra that installs it) pairs it needs, checked
            by `available()`.
        runtime: the runtime registry name that opens its artifacts.
        default_head, default_resolution: the head placement that runs fastest there.
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    precisions: ClassVar[Tuple[str, ...]]
    extra: ClassVar[str]
    requires: ClassVar[Tuple[Tuple[str, str], ...]] = ()
    runtime: ClassVar[str]
    # The in-graph argmax was the fastest placement end to end on every CPU target
    # (benchmarks/head_placement.py, 128x128, 11 classes, 360x480 frames, 2 threads:
    # TFLite int8 2.7 ms vs 6.5 logits/full and 5.1 logits/feature; the host's upsample +
    # argmax of C channels costs 2.5-5.6 ms, the uint8 map's nearest resize 0.1 ms).
    default_head: ClassVar[str] = "argmax"
    default_resolution: ClassVar[str] = "full"

    @classmethod
    def missing(cls) -> List[Tuple[str, str]]:
        """(module, extra) pairs of `requires` that cannot be imported here."""
        return [(module, extra) for module, extra in cls.requires if not deps.available(module)]

    @classmethod
    def available(cls) -> Tuple[bool, str]:
        """(True, "") when it can run on this machine, else (False, why not)."""
        missing = cls.missing()
        if missing:
            extras = ",".join(sorted({extra for _, extra in missing}))
            names = ", ".join(module for module, _ in missing)
            return False, f"needs {names}: pip install 'edge-deeplab[{extras}]'"
        return True, ""

    def artifact_path(self, out_dir: Path, precision: str) -> Path:
        return Path(out_dir) / f"model_{precision}{self.suffix}"

    def files(self, path: Path) -> List[Path]:
        """Every file of the artifact at `path`, in the order they are renamed into place."""
        return [Path(path)]

    @abstractmethod
    def convert(self, job: ConversionJob, precision: str, variant: Variant, dest: Path) -> None:
        """Write the artifact for `precision` at `dest` (a temporary path in the out dir)."""

    @abstractmethod
    def embed_metadata(self, path: Path, meta: ArtifactMetadata) -> None:
        """Store `meta` in (or beside) the artifact at `path`."""


CONVERTERS: Registry[type] = Registry("converter")


def timed(fn: Callable[[], object]) -> Tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start

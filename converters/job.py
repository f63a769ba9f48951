"""What the converters of one `convert()` call share: intermediates built once, and progress.

A target asks the job for the SavedModel export, the ONNX export or the calibration
batches of a head placement; each is built on first use and cached for the next target.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from edge_deeplab.data.preprocessing import normalize
from edge_deeplab.errors import InvalidInputError

from .onnx_export import export_onnx
from .placement import HeadPlacement
from .savedmodel import export_saved_model, variant_model


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
        calibration: a callable returning the uint8 (N, H, W, 3) calibration pixels.
        progress: the Progress reporter.
        io_dtype: int8 model input/output: "pixels" (uint8 RGB pixels in, normalised in
            the graph; TFLite, OpenVINO, ONNX), or TFLite's "int8", "uint8", "float32".
        validation: a callable returning the `Validation` of int8-mixed (its images and
            budget); called once, on first use.

    Converters of int8-mixed put their search's record in `records[(target, precision)]`.
    """

    def __init__(
        self,
        source,
        workdir: Path,
        calibration: Callable[[], np.ndarray],
        progress: Progress,
        io_dtype: str = "pixels",
        validation: Optional[Callable[[], object]] = None,
    ):
        self.source = source
        self.workdir = Path(workdir)
        self._calibration = calibration
        self._pixels: Optional[np.ndarray] = None
        self._calib_cache: Optional[np.ndarray] = None
        self.progress = progress
        self.io_dtype = io_dtype
        self._cache: Dict[Tuple, object] = {}
        self._validation = validation
        self.records: Dict[Tuple[str, str], dict] = {}

    def validation(self):
        """The int8-mixed budget's Validation (images loaded once)."""
        if self._validation is None:
            raise InvalidInputError("int8-mixed needs validation images (ConvertOptions.val_data)")
        return self._cached(("validation",), self._validation)

    def reference(self, placement: HeadPlacement):
        """A Segmenter over the in-memory Keras model with the head placement."""
        from edge_deeplab.segmenter import Segmenter

        from .parity import KerasReference

        def build():
            model = self.keras_model(placement)
            meta = self.source.metadata.replace(head=placement.head, output_resolution=placement.resolution)
            return Segmenter(KerasReference(model, self.source.path, placement.head), meta)

        return self._cached(("reference", placement), build)

    def calibration_pixels(self) -> np.ndarray:
        """uint8 (N, H, W, 3) calibration images at the model's input (read once)."""
        if self._pixels is None:
            self._pixels = self._calibration()
        return self._pixels

    def calibration(self) -> np.ndarray:
        """float32 (N, H, W, 3) normalised calibration input, for targets fed floats (made once)."""
        if self._calib_cache is None:
            meta = self.source.metadata
            self._calib_cache = normalize(self.calibration_pixels().astype(np.float32), meta.mean, meta.std)
        return self._calib_cache

    def pixel_calibration(self) -> np.ndarray:
        """The calibration images as uint8 pixels (N, H, W, 3) for pixel-input targets.

        Two pixels of the first image are set to 0 and 255 (in a copy of that image only) so
        the calibrated input range is exactly 0..255: uint8 input scale 1, zero point 0.
        """
        pixels = self.calibration_pixels()
        first = pixels[:1].copy()
        first[0, 0, 0], first[0, 0, -1] = 0, 255
        return np.concatenate([first, pixels[1:]])

    def keras_model(self, placement: HeadPlacement):
        """The Keras model at the placement's resolution (logits out)."""
        return self._cached(
            ("keras", placement.resolution),
            lambda: variant_model(self.source.model, placement.resolution),
        )

    def saved_model(self, placement: HeadPlacement, pixels: bool = False, label_dtype: str = "uint8") -> Path:
        """The SavedModel export of `placement` (the common intermediate); with `pixels`,
        one that takes pixel values 0..255 and normalises them in the graph; an argmax
        head's class map in `label_dtype`."""
        def build():
            kind = ", pixel input" if pixels else ""
            self.progress(
                f"  exporting SavedModel ({placement.head}, {placement.resolution} resolution{kind})"
            )
            name = f"saved_model_{placement.head}_{placement.resolution}{'_pixels' * pixels}_{label_dtype}"
            meta = self.source.metadata if pixels else None
            model = self.keras_model(placement)
            return export_saved_model(model, placement.head, self.workdir / name, meta, label_dtype)

        return self._cached(("saved_model", placement, pixels, label_dtype), build)

    def onnx_model(self, placement: HeadPlacement) -> Path:
        """The fp32 ONNX export of the SavedModel (for ONNX, OpenVINO and TensorRT)."""
        def build():
            path = self.workdir / f"onnx_{placement.head}_{placement.resolution}.onnx"
            return export_onnx(self, placement, path)

        return self._cached(("onnx", placement), build)

    def _cached(self, key: Tuple, build: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

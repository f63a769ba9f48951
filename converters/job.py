"""What the converters of one `convert()` call share: intermediates built once, and progress.

A target asks the job for the SavedModel export, the ONNX export or the calibration
batches of a head placement; each is built on first use and cached for the next target.
The job holds build products only: what a conversion measured comes back from its steps
(`pipeline.py`) as frozen records, never through the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import numpy as np

from edge_deeplab import deps
from edge_deeplab.data.preprocessing import normalize
from edge_deeplab.errors import ConversionError, first_line
from edge_deeplab.logs import ProgressLog

from .export_cache import ExportCache, model_fingerprint
from .quant_settings import QuantSettings
from .savedmodel import export_saved_model, variant_model

if TYPE_CHECKING:  # annotations only
    from .validation import Validation

# The ONNX export's opset. tf2onnx tests 14-18, and 17 is the newest that TensorRT 8.6
# (JetPack 5) parses. The ONNX, OpenVINO and TensorRT targets all start from this export.
OPSET = 17


@dataclass(frozen=True)
class HeadPlacement:
    """Where the segmentation head sits: "logits"/"argmax", at "full"/"feature" resolution."""

    head: str = "logits"
    resolution: str = "full"


class Progress(ProgressLog):
    """Conversion progress: INFO lines of this module's logger, a bar for counts on a terminal;
    silent when disabled (`--quiet`)."""

    def __init__(self, enabled: bool = True):
        super().__init__(enabled, logging.getLogger(__name__))


class KerasReferences:
    """The in-memory Keras model of `source` per head placement, each as a Segmenter (made once):
    what the parity check, the int8-mixed budget and the exports start from.

    Args:
        source: the SourceModel (Keras model + metadata).
    """

    def __init__(self, source):
        self.source = source
        self._cache: Dict[Tuple, object] = {}

    def keras_model(self, resolution: str):
        """The Keras model with its output at `resolution` (logits out)."""
        key = ("keras", resolution)
        if key not in self._cache:
            self._cache[key] = variant_model(self.source.model, resolution)
        return self._cache[key]

    def __call__(self, head: str, resolution: str):
        """A Segmenter over the Keras model with the head placement (head, resolution)."""
        from edge_deeplab.runtimes.keras_runtime import KerasRuntime
        from edge_deeplab.segmenter import Segmenter

        key = ("reference", head, resolution)
        if key not in self._cache:
            meta = self.source.metadata.replace(head=head, output_resolution=resolution)
            runtime = KerasRuntime.from_model(self.keras_model(resolution), meta, head=head, per_image=True)
            self._cache[key] = Segmenter(runtime)
        return self._cache[key]


class ConversionJob:
    """What the converters of one `convert()` call share, built lazily and cached.

    Args:
        source: the SourceModel (Keras model + metadata).
        workdir: a private temporary folder for intermediates (SavedModels, ONNX exports).
        calibration: a callable returning the uint8 (N, H, W, 3) calibration pixels.
        progress: the Progress reporter.
        io_dtype: int8 model input/output: "pixels" (uint8 RGB pixels in, normalised in
            the graph; TFLite, OpenVINO, ONNX), or TFLite's "int8", "uint8", "float32".
        references: the KerasReferences of `source` (None: made here).
        validation: int8-mixed's `Validation` (its images and budget), built before the
            job; None when no budgeted precision is made.
        quant: the QuantSettings of the calibrated precisions (calibration method, per-channel
            weights, bias correction).
    """

    def __init__(
        self,
        source,
        workdir: Path,
        calibration: Callable[[], np.ndarray],
        progress: Progress,
        io_dtype: str = "pixels",
        references: Optional[KerasReferences] = None,
        validation: Optional[Validation] = None,
        quant: Optional[QuantSettings] = None,
    ):
        self.source = source
        self.workdir = Path(workdir)
        self._calibration = calibration
        self._pixels: Optional[np.ndarray] = None
        self._calib_cache: Optional[np.ndarray] = None
        self.progress = progress
        self.io_dtype = io_dtype
        self._cache: Dict[Tuple, object] = {}
        self.references = references or KerasReferences(source)
        self.validation = validation
        self.quant = quant or QuantSettings()
        self._exports: Optional[ExportCache] = None

    def reference(self, placement: HeadPlacement):
        """A Segmenter over the in-memory Keras model with the head placement."""
        return self.references(placement.head, placement.resolution)

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
        return self.references.keras_model(placement.resolution)

    def saved_model(self, placement: HeadPlacement, pixels: bool = False, label_dtype: str = "uint8") -> Path:
        """The SavedModel export of `placement` (the common intermediate); with `pixels`,
        one that takes pixel values 0..255 and normalises them in the graph; an argmax
        head's class map in `label_dtype`."""
        name = f"saved_model_{placement.head}_{placement.resolution}{'_pixels' * pixels}_{label_dtype}"

        def build(dest: Path) -> Path:
            kind = ", pixel input" if pixels else ""
            self.progress(
                f"  exporting SavedModel ({placement.head}, {placement.resolution} resolution{kind})"
            )
            meta = self.source.metadata if pixels else None
            model = self.keras_model(placement)
            return export_saved_model(model, placement.head, dest, meta, label_dtype)

        normalisation = (self.source.metadata.mean, self.source.metadata.std) if pixels else None
        key = dict(export="saved_model", placement=placement, pixels=normalisation, label_dtype=label_dtype)
        return self._cached(("saved_model", placement, pixels, label_dtype),
                            lambda: self._exported(key, self.workdir / name, build))

    def onnx_model(self, placement: HeadPlacement) -> Path:
        """The fp32 ONNX export of the SavedModel (for ONNX, OpenVINO and TensorRT)."""
        name = f"onnx_{placement.head}_{placement.resolution}.onnx"
        key = dict(export="onnx", placement=placement, opset=OPSET)

        def build(dest: Path) -> Path:
            return _export_onnx(self, placement, dest)

        return self._cached(("onnx", placement), lambda: self._exported(key, self.workdir / name, build))

    def _cached(self, key: Tuple, build: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _exported(self, asked: dict, dest: Path, build: Callable[[Path], Path]) -> Path:
        """The export `build` writes to `dest`, copied there from the export cache where it
        holds one for this model and `asked` (the progress line says so), else built and kept."""
        if self._exports is None:
            self._exports = ExportCache(model_fingerprint(self.source.model))
        key = self._exports.key(**asked)
        if self._exports.restore(key, dest):
            self.progress(f"  {dest.name}: the same export reused from {self._exports.folder}")
            return dest
        made = build(dest)
        self._exports.keep(key, made)
        return made


def _export_onnx(job: ConversionJob, placement: HeadPlacement, path: Path) -> Path:
    """Export the SavedModel of `placement` to an fp32 ONNX file at `path`, through tf2onnx.

    Contract: input "image" float32 (1, H, W, 3); output "scores" float32 (1, H', W', C) or
    "labels" uint8 (1, H', W').
    """
    tf2onnx = deps.optional("tf2onnx", "onnx", "ONNX export")
    saved_model = str(job.saved_model(placement))
    job.progress(f"  tf2onnx: opset {OPSET} ({placement.head}, {placement.resolution} resolution)")
    try:
        # The Python API of `python -m tf2onnx.convert --saved-model`.
        graph_def, inputs, outputs, _tables, renames = tf2onnx.tf_loader.from_saved_model(
            saved_model,
            None,
            None,
            signatures=["serving_default"],
            return_initialized_tables=True,
            return_tensors_to_rename=True,
        )
        tf2onnx.convert.from_graph_def(
            graph_def,
            name="edge_deeplab",
            input_names=inputs,
            output_names=outputs,
            opset=OPSET,
            tensors_to_rename=renames,
            output_path=str(path),
        )
    except Exception as exc:  # tf2onnx raises anything from ValueError to its own errors
        raise ConversionError(f"tf2onnx failed: {first_line(exc)}") from exc
    return path

"""How many calibration images are enough: int8 accuracy against the calibration set's size.

Each point of the curve is a real conversion (`convert(..., calib_size=N)`, the same random
draw from the calibration source a user's `--calib-size N` gets), scored through the
Segmenter on validation images with masks: its mIoU, and the share of pixels whose class
agrees with the float Keras model. The curve flattens at the smallest size from which every
larger size scores within `tolerance` mIoU points of the largest; a calibration set below that
size is where a compiler loses accuracy to too few images (128 images cost one Hailo user 87%
of mAP), so `warning(chosen)` says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from edge_deeplab.errors import InvalidInputError

DEFAULT_SIZES = (16, 32, 64, 128, 256)
DEFAULT_TOLERANCE = 0.1  # mIoU points: below what two calibration draws of one size differ by


@dataclass(frozen=True)
class CurvePoint:
    """One calibration size: its artifact's mIoU (0..1), agreement with float, and status."""

    images: int
    miou: float
    agreement: float
    status: str


@dataclass(frozen=True)
class CalibrationCurve:
    """int8 accuracy against the number of calibration images, for one target."""

    target: str
    precision: str
    float_miou: float
    points: Tuple[CurvePoint, ...]
    tolerance_points: float

    @property
    def flat_at(self) -> int:
        """The smallest size from which every larger one is within the tolerance of the largest."""
        last = self.points[-1].miou
        flat = self.points[-1].images
        for point in reversed(self.points):
            if abs(point.miou - last) * 100 > self.tolerance_points:
                break
            flat = point.images
        return flat

    @property
    def flattened(self) -> bool:
        """Whether the curve reached its plateau before its largest size (else it may still rise)."""
        return len(self.points) > 1 and self.flat_at < self.points[-1].images

    def warning(self, chosen: int) -> Optional[str]:
        """A line when `chosen` calibration images are too few by this curve, else None."""
        if not self.flattened:
            return (f"{self.target} {self.precision}: the curve had not flattened by {self.points[-1].images} "
                    f"images; measure larger sizes before trusting --calib-size {chosen}")
        if chosen < self.flat_at:
            return (f"{self.target} {self.precision}: --calib-size {chosen} is below where the curve flattens "
                    f"({self.flat_at} images, within {self.tolerance_points:g} mIoU points of the largest)")
        return None

    def to_dict(self) -> dict:
        return {**asdict(self), "flat_at": self.flat_at, "flattened": self.flattened}


def calibration_curve(
    model,
    target: str,
    val_dataset,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    precision: str = "int8",
    calib_data=None,
    tolerance: float = DEFAULT_TOLERANCE,
    work: Optional[Path] = None,
) -> CalibrationCurve:
    """Convert `model` to `target` `precision` once per calibration size and score each.

    Args:
        model: a training run folder or a .keras file.
        target: a converter name (tflite, onnx, openvino, ...).
        val_dataset: validation items (RGB uint8, mask uint8) with labels, e.g. from
            `edge_deeplab.data.evaluation_set.load_data`.
        sizes: calibration set sizes, ascending.
        calib_data: what `convert --calib-data` takes (None: synthetic for a synthetic run).
        tolerance: mIoU points within which the curve counts as flat.
        work: a folder for the artifacts (a temporary one when None).
    """
    from edge_deeplab.converters import plan_conversions

    sizes = _checked_sizes(sizes)
    plan_conversions(target, precision)  # an unknown or unavailable one fails before any work
    reference = _float_predictions(model, val_dataset)
    with tempfile.TemporaryDirectory(prefix="edge-deeplab-calib-curve-") as scratch:
        folder = Path(work) if work is not None else Path(scratch)
        points = tuple(_point(model, target, precision, size, calib_data, val_dataset, reference, folder)
                       for size in sizes)
    return CalibrationCurve(target, precision, reference.miou, points, float(tolerance))


@dataclass(frozen=True)
class _Reference:
    miou: float
    labels: Tuple[np.ndarray, ...]


def _float_predictions(model, dataset) -> _Reference:
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(model) as runtime:
        segmenter = Segmenter(runtime)
        labels = tuple(segmenter.predict(dataset[i][0]).labels for i in range(len(dataset)))
        return _Reference(float(evaluate(segmenter, dataset).miou), labels)


def _point(model, target, precision, size, calib_data, dataset, reference: _Reference, folder: Path) -> CurvePoint:
    from edge_deeplab.converters import convert
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    (result,) = convert(model, target, precision, folder / f"calib-{size}", calib_data=calib_data,
                        calib_size=size, parity_images=4, progress=False)
    if result.path is None:
        return CurvePoint(size, float("nan"), float("nan"), str(result.status))
    with load_runtime(result.path) as runtime:
        segmenter = Segmenter(runtime)
        miou = float(evaluate(segmenter, dataset).miou)
        same = [np.mean(segmenter.predict(dataset[i][0]).labels == reference.labels[i]) for i in range(len(dataset))]
    return CurvePoint(size, miou, float(np.mean(same)), str(result.status))


def _checked_sizes(sizes: Sequence[int]) -> Tuple[int, ...]:
    try:
        checked = tuple(int(size) for size in sizes)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"calibration sizes must be whole numbers: {exc}") from None
    if not checked or any(size < 1 for size in checked) or list(checked) != sorted(set(checked)):
        raise InvalidInputError(f"calibration sizes must be ascending numbers >= 1, got {list(sizes)}")
    return checked

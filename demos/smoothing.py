"""Temporal smoothing of class probabilities, and the flicker figure that judges it.

Per-frame segmentation flickers at class boundaries. An exponential moving average of the
softmax probabilities steadies it, at the cost of a little lag; the average is reset when
the frame size changes or the scene cuts (averaging across a cut would smear the old scene
into the new one).
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError

THUMB = 32  # scene-cut detection compares 32x32 grey thumbnails: cheap and blind to noise


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """A (32, 32) float32 grey thumbnail in 0..1 of a uint8 (H, W, 3) or (H, W) frame."""
    cv2 = deps.cv2()
    grey = frame.mean(axis=2).astype(np.float32) if frame.ndim == 3 else frame.astype(np.float32)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA) / 255.0


def is_scene_cut(
    previous: Optional[np.ndarray], current: np.ndarray, threshold: float = 0.15
) -> bool:
    """True when two thumbnails differ by more than `threshold` (mean absolute, 0..1)."""
    if previous is None or previous.shape != current.shape:
        return False
    return float(np.mean(np.abs(previous - current))) > threshold


def check_smoothing(alpha: Optional[float]) -> None:
    """The rule for a smoothing weight (None: off), shared by the smoother and DemoOptions."""
    if alpha is not None and not 0.0 < float(alpha) <= 1.0:
        raise InvalidInputError(f"smoothing (--smooth) must be in (0, 1], got {alpha}")


class ProbabilitySmoother:
    """Exponential moving average of (H, W, C) class probabilities.

    smoothed = alpha * current + (1 - alpha) * smoothed_before; alpha = 1 is no smoothing.

    Args:
        alpha: weight of the newest frame, in (0, 1].
        cut_threshold: scene-cut threshold for `is_scene_cut` (None: never cut).

    `resets` counts the times the average restarted (size change or scene cut).
    """

    def __init__(self, alpha: float, cut_threshold: Optional[float] = 0.15):
        check_smoothing(alpha)
        self.alpha = float(alpha)
        self.cut_threshold = cut_threshold
        self.resets = 0
        self._state: Optional[np.ndarray] = None
        self._thumb: Optional[np.ndarray] = None
        self._frame_size = None

    def reset(self) -> None:
        self._state = None
        self._thumb = None
        self._frame_size = None

    def __call__(self, probabilities: np.ndarray, frame: Optional[np.ndarray] = None) -> np.ndarray:
        """A Segmenter score filter: `Segmenter(..., score_filters=[smoother])`."""
        return self.update(probabilities, frame)

    def update(self, probabilities: np.ndarray, frame: Optional[np.ndarray] = None) -> np.ndarray:
        """Fold in one frame's float (H, W, C) probabilities; returns the smoothed ones.

        `frame` (the image they came from) enables scene-cut detection.
        """
        probabilities = np.asarray(probabilities, np.float32)
        thumb = thumbnail(frame) if frame is not None and self.cut_threshold is not None else None
        # The probabilities may stay at the model's resolution when the input size changes
        # (upsample="labels"): the frame's own size must restart the average too.
        frame_size = None if frame is None else tuple(np.shape(frame)[:2])
        restart = self._state is None or self._state.shape != probabilities.shape
        restart = restart or (frame_size is not None and frame_size != self._frame_size)
        if (
            not restart
            and thumb is not None
            and is_scene_cut(self._thumb, thumb, self.cut_threshold)
        ):
            restart = True
        if restart:
            if self._state is not None:
                self.resets += 1
            self._state = probabilities.copy()
        else:
            # In place: at 768x432x21 this array is 28 MB; avoid allocating two more per frame.
            self._state *= 1.0 - self.alpha
            self._state += self.alpha * probabilities
        self._thumb, self._frame_size = thumb, frame_size
        return self._state

    def labels(self) -> np.ndarray:
        """Argmax of the current average, uint8 (H, W)."""
        if self._state is None:
            raise InvalidInputError("no probabilities smoothed yet")
        return np.argmax(self._state, axis=-1).astype(np.uint8)


class FlickerMeter:
    """Fraction of pixels whose class changes between consecutive frames, averaged.

    Pairs across a size change (or after `reset()`) are not counted.
    """

    def __init__(self):
        self._previous: Optional[np.ndarray] = None
        self._total = 0.0
        self.pairs = 0

    def reset(self) -> None:
        self._previous = None

    def update(self, labels: np.ndarray) -> Optional[float]:
        """Add one (H, W) class map; returns this pair's changed fraction, or None."""
        labels = np.asarray(labels)
        previous, self._previous = self._previous, labels.copy()
        if previous is None or previous.shape != labels.shape:
            return None
        changed = float(np.count_nonzero(previous != labels)) / max(1, labels.size)
        self._total += changed
        self.pairs += 1
        return changed

    @property
    def value(self) -> Optional[float]:
        """Mean changed fraction over the pairs seen, or None before the second frame."""
        return self._total / self.pairs if self.pairs else None


def flicker(sequence: Iterable[np.ndarray]) -> Optional[float]:
    """The mean flicker of a sequence of (H, W) class maps."""
    meter = FlickerMeter()
    for labels in sequence:
        meter.update(labels)
    return meter.value

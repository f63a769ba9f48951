"""Segmentation metrics from accumulated confusion matrices (numpy reference).

mIoU convention: the mean of per-class IoU over the classes that occur in the ground
truth or in the predictions of the evaluated images. A class absent from both has no IoU
(0/0) and is left out of the mean; it is reported as NaN (null in JSON). A class that is
predicted but never present counts with IoU 0, so false positives are punished.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..errors import InvalidInputError


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int = 255
) -> np.ndarray:
    """Pixel counts: rows are ground truth classes, columns predicted classes.

    Args:
        pred: integer class map (any shape).
        target: integer ground truth of the same shape; pixels equal to `ignore_label`
            are not counted.
        num_classes: C; predictions outside [0, C) are an error.

    Returns:
        int64 (C, C).
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise InvalidInputError(
            f"prediction shape {pred.shape} differs from ground truth {target.shape}"
        )
    keep = target != ignore_label
    p = pred[keep].astype(np.int64)
    t = target[keep].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise InvalidInputError(
            f"ground truth has labels outside 0..{num_classes - 1} (ignore {ignore_label})"
        )
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise InvalidInputError(f"prediction has classes outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """float64 (C,) IoU = TP / (TP + FP + FN); NaN where the class is absent from both."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def miou_from_confusion(confusion: np.ndarray) -> float:
    """Mean IoU over classes present in ground truth or prediction (see module docstring)."""
    ious = iou_per_class(confusion)
    return float(np.nanmean(ious)) if np.isfinite(ious).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Correct pixels / counted pixels (ignored pixels excluded)."""
    total = np.asarray(confusion).sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def named_ious(confusion: np.ndarray, labels: Sequence[str]) -> Dict[str, float]:
    """Class name -> IoU (NaN for classes absent from both)."""
    return {name: float(v) for name, v in zip(labels, iou_per_class(confusion))}

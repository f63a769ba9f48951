"""Scoring segmentation: numpy confusion-matrix metrics and `evaluate(segmenter, dataset)`.

Needs neither TensorFlow nor any particular engine: it talks only to a Segmenter.
"""

from .evaluate import EvalResult, evaluate
from .metrics import confusion_matrix, iou_per_class, miou_from_confusion, pixel_accuracy

__all__ = [
    "evaluate",
    "EvalResult",
    "confusion_matrix",
    "iou_per_class",
    "miou_from_confusion",
    "pixel_accuracy",
]

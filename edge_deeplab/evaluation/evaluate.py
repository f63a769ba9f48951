"""Run a Segmenter over a dataset and score it (optionally multi-scale + flip).

Multi-scale / flip inference averages class *probabilities*: each image is resized by
each scale (and mirrored), segmented with `probabilities=True` (the Segmenter restores the
scores to the size it was given), brought back to the original size and averaged before
the argmax. Models with an in-graph ArgMax have no probabilities: only scale 1 without
flip is possible for them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np

from ..data.preprocessing import resize
from ..errors import InvalidInputError
from ..logs import ProgressBar
from .metrics import confusion_matrix, miou_from_confusion, named_ious, pixel_accuracy

# Image scales multi-scale inference accepts: 1e6 would ask for petabytes of pixels.
SCALE_RANGE = (0.1, 4.0)
_log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Scores of one evaluation.

    miou: mean IoU over classes present in ground truth or prediction.
    pixel_accuracy: correct / counted pixels (ignore label excluded).
    per_class_iou: class name -> IoU (NaN where the class is absent from both).
    confusion: int64 (C, C), rows ground truth, columns prediction.
    """

    miou: float
    pixel_accuracy: float
    per_class_iou: Dict[str, float]
    confusion: np.ndarray
    num_images: int
    labels: tuple = ()
    scales: tuple = (1.0,)
    flip: bool = False
    extra: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""

        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "miou": clean(self.miou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "per_class_iou": {k: clean(v) for k, v in self.per_class_iou.items()},
            "num_images": self.num_images,
            "labels": list(self.labels),
            "scales": list(self.scales),
            "flip": self.flip,
            "confusion": np.asarray(self.confusion).tolist(),
            **self.extra,
        }


def evaluate(
    segmenter,
    dataset,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    limit: Optional[int] = None,
    batch_size: int = 8,
    progress: bool = True,
) -> EvalResult:
    """Score `segmenter` on `dataset` (a SegDataset or any sequence of (rgb, mask)).

    Args:
        segmenter: a Segmenter (any runtime).
        dataset: items (RGB uint8 (H, W, 3), mask uint8 (H, W)); uses its `labels` and
            `ignore_label` when it has them, else the segmenter's.
        scales: image scales for multi-scale inference (1.0 = as given).
        flip: also average the horizontally mirrored image.
        limit: evaluate only the first `limit` images.
        batch_size: images per engine call for plain (scale 1, no flip) inference.
        progress: show the images done (`edge_deeplab.logs.ProgressBar`); False where the
            caller logs its own line (a validation after each training epoch).
    """
    scales = tuple(float(s) for s in scales)
    if not scales or not all(SCALE_RANGE[0] <= s <= SCALE_RANGE[1] for s in scales):  # NaN fails too
        raise InvalidInputError(
            f"scales must be numbers from {SCALE_RANGE[0]:g} to {SCALE_RANGE[1]:g}, got "
            f"{', '.join(f'{s:g}' for s in scales) or 'none'}"
        )
    plain = scales == (1.0,) and not flip
    if not plain and segmenter.metadata.head == "argmax":
        raise InvalidInputError(
            "this model outputs a class map (in-graph ArgMax), not scores: multi-scale / flip "
            "inference needs probabilities; use --scales 1 without --flip"
        )
    labels = tuple(getattr(dataset, "labels", segmenter.labels))
    ignore = getattr(dataset, "ignore_label", segmenter.metadata.ignore_label)
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    if count < 1:
        raise InvalidInputError("nothing to evaluate: the dataset is empty (or --limit is 0)")
    num_classes = max(len(labels), segmenter.metadata.num_classes)
    with ProgressBar("evaluating", count, unit="images", enabled=progress, logger=_log) as bar:
        confusion = _confusion(segmenter, dataset, count, num_classes, ignore, batch_size if plain else 1,
                               None if plain else (scales, flip), bar)
    if num_classes > len(labels):  # a model with more classes than the dataset names
        labels = labels + tuple(f"class_{i}" for i in range(len(labels), num_classes))
    return EvalResult(
        miou=miou_from_confusion(confusion),
        pixel_accuracy=pixel_accuracy(confusion),
        per_class_iou=named_ious(confusion, labels),
        confusion=confusion,
        num_images=count,
        labels=labels,
        scales=scales,
        flip=flip,
    )


def _confusion(segmenter, dataset, count: int, num_classes: int, ignore: int, step: int, multi_scale,
               bar: ProgressBar) -> np.ndarray:
    """The confusion matrix of the first `count` items, `step` per engine call; `multi_scale`
    is (scales, flip), or None for plain inference."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for start in range(0, count, step):
        items = [dataset[i] for i in range(start, min(count, start + step))]
        if multi_scale is None:
            preds = [r.labels for r in segmenter.predict_batch([rgb for rgb, _ in items])]
        else:
            preds = [_multi_scale(segmenter, items[0][0], *multi_scale)]
        for pred, (_, mask) in zip(preds, items):
            confusion += confusion_matrix(pred, mask, num_classes, ignore)
        bar.update(len(items))
    return confusion


def _multi_scale(segmenter, rgb: np.ndarray, scales, flip: bool) -> np.ndarray:
    """Average the probabilities of every scale (and mirror) at the original size.

    Through the Segmenter's own steps, in one engine call where the model batches: every
    scaled (and mirrored) copy is preprocessed, inferred, and postprocessed with its
    placement pointing at the original size, so its scores are restored there directly
    (one resize each) before they are averaged and argmaxed.
    """
    h, w = rgb.shape[:2]
    copies, mirrored = [], []
    for scale in scales:
        scaled = resize(rgb, (max(2, round(h * scale)), max(2, round(w * scale))))
        copies.append(scaled)
        mirrored.append(False)
        if flip:
            copies.append(np.ascontiguousarray(scaled[:, ::-1]))
            mirrored.append(True)
    batch, placements, pixels = segmenter.preprocess(copies)
    placements = [dataclasses.replace(p, original=(h, w)) for p in placements]
    results = segmenter.postprocess(segmenter.infer(batch), placements, probabilities=True, images=pixels)
    total = None
    for result, is_mirrored in zip(results, mirrored):
        probs = result.probabilities
        if probs is None:
            raise InvalidInputError("the segmenter returned no probabilities for multi-scale inference")
        if probs.shape[:2] != (h, w):  # upsample="labels" keeps them at the model's resolution
            probs = resize(np.ascontiguousarray(probs), (h, w))
        probs = probs[:, ::-1] if is_mirrored else probs
        total = probs if total is None else total + probs
    return np.argmax(total, axis=-1).astype(np.uint8)

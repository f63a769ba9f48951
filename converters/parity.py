"""Does the artifact still segment like the Keras model it came from?

Both sides run through `Segmenter` (the one pre/post-processing): the artifact through its
own engine (`load_runtime`, configured by the metadata it will carry), the reference
through the in-memory Keras model at the same output resolution and head, called with
training=False (`KerasRuntime.from_model`, made by `job.KerasReferences`). Figures: argmax
pixel agreement, mIoU of the artifact's labels against the reference's labels, and max
|logit difference| for float formats that output scores.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from edge_deeplab.errors import InvalidInputError
from edge_deeplab.evaluation.metrics import confusion_matrix, miou_from_confusion
from edge_deeplab.segmenter import Segmenter

# The int8 parity bar: argmax pixel agreement with the Keras reference (help texts read it).
INT8_AGREEMENT = 0.97
# THE tolerance table: minimum argmax pixel agreement with the Keras reference.
TOLERANCES: Dict[str, Dict[str, float]] = {
    "fp32": {"agreement": 0.999},
    "fp16": {"agreement": 0.995},
    "dynamic": {"agreement": 0.99},
    "int8": {"agreement": INT8_AGREEMENT},
    # Tighter than int8's (only the weights are 8-bit): the tiny test model reached 99.75%
    # (TFLite) and 99.68% (ONNX) where its int8 reached 99.64% and 99.26%; --int8-agreement
    # does not relax it.
    "int16x8": {"agreement": 0.98},
    "int8-mixed": {"agreement": INT8_AGREEMENT},  # at least int8's: some layers are float
    "int8-mixed16": {"agreement": INT8_AGREEMENT},  # at least int8's: some layers are 16-bit
}


# What a device may lose against the host's own self-test agreement (another engine build's
# rounding flips a few boundary pixels of the small inputs).
SELFTEST_MARGIN = 0.005


class ParityChecker:
    """Compares artifacts with the Keras reference on a fixed set of images.

    Args:
        images: RGB uint8 images (any sizes).
        reference_for: (head, resolution) -> a Segmenter over the Keras model.
        int8_agreement: the agreement int8 and int8-mixed artifacts must reach; None: the
            table's.
    """

    def __init__(self, images: Sequence[np.ndarray], reference_for, int8_agreement: Optional[float] = None):
        if not images:
            raise InvalidInputError("no images for the parity check")
        self.images = list(images)
        self.int8_agreement = int8_agreement
        self._reference_for = reference_for
        self._labels: Dict[tuple, np.ndarray] = {}
        self._scores: Dict[str, np.ndarray] = {}
        self._selftests: Dict[tuple, dict] = {}

    def reference_labels(self, head: str, resolution: str) -> np.ndarray:
        if (head, resolution) not in self._labels:
            self._labels[head, resolution] = _labels(
                self._reference_for(head, resolution), self.images
            )
        return self._labels[head, resolution]

    def reference_scores(self, resolution: str) -> np.ndarray:
        if resolution not in self._scores:
            self._scores[resolution] = raw_scores(
                self._reference_for("logits", resolution), self.images
            )
        return self._scores[resolution]

    def selftest(self, segmenter: Segmenter, bar: float) -> dict:
        """The self-test the artifact behind `segmenter` carries (`selftest.py`). Its bar is
        the precision's, or, where the artifact already agrees less on these few small
        inputs here, what it reached here less SELFTEST_MARGIN: verify asks the device to
        do what the host did, not more."""
        from edge_deeplab import selftest

        entry = self.selftest_entry(segmenter.metadata, bar)
        return measured_selftest(entry, selftest.run(segmenter, entry).agreement)

    def selftest_entry(self, meta, bar: float) -> dict:
        """The self-test inputs for an artifact with `meta` (the Keras class maps of the parity
        images' thumbnails), with `bar`: what an engine that runs elsewhere is checked with there."""
        return {**self._selftest_inputs(meta), "bar": float(bar)}

    def tolerance(self, precision: str) -> float:
        """The agreement an artifact of `precision` must reach (the table's, or int8_agreement)."""
        if precision.startswith("int8") and self.int8_agreement is not None:
            return float(self.int8_agreement)
        return TOLERANCES[precision]["agreement"]

    def _selftest_inputs(self, meta) -> dict:
        """The thumbnails, the Keras maps for them and their input digests, once per head placement."""
        from edge_deeplab import selftest

        key = (meta.head, meta.output_resolution)
        if key not in self._selftests:
            self._selftests[key] = selftest.build(self._reference_for(*key), self.images, 0.0)
        return self._selftests[key]

    def check(self, segmenter: Segmenter, precision: str) -> dict:
        """Parity figures of `segmenter` (the artifact through its engine)."""
        meta = segmenter.metadata
        reference = self.reference_labels(meta.head, meta.output_resolution)
        labels = _labels(segmenter, self.images)
        agreement = float(np.mean(labels == reference))
        confusion = confusion_matrix(labels, reference, meta.num_classes, ignore_label=-1)
        figures = {
            "images": len(self.images),
            "agreement": agreement,
            "miou": miou_from_confusion(confusion),
            "max_abs_diff": None,
        }
        if meta.head == "logits" and not precision.startswith("int8"):
            scores = raw_scores(segmenter, self.images)
            figures["max_abs_diff"] = float(
                np.max(np.abs(scores - self.reference_scores(meta.output_resolution)))
            )
        figures["tolerance"] = self.tolerance(precision)
        figures["passed"] = bool(agreement >= figures["tolerance"])
        return figures


def measured_selftest(entry: dict, here: float) -> dict:
    """The self-test entry as the artifact carries it, after it reached `here` at conversion:
    its bar is the entry's, or, where the artifact already agrees less on these few small
    inputs, `here` less SELFTEST_MARGIN."""
    bar = float(entry["bar"])
    return {**entry, "at_conversion": float(here), "bar": bar if here >= bar else float(here) - SELFTEST_MARGIN}


def _labels(segmenter: Segmenter, images: Sequence[np.ndarray]) -> np.ndarray:
    """All images' class maps, flattened and concatenated (images may differ in size)."""
    return np.concatenate([r.labels.ravel() for r in segmenter.predict_batch(images)])


def raw_scores(segmenter: Segmenter, images: Sequence[np.ndarray]) -> np.ndarray:
    """The engine's dequantised output scores (N, H', W', C) before any resizing."""
    batch, _, _ = segmenter.preprocess(images)
    return segmenter.dequantize_output(segmenter.infer(batch))


def format_parity(figures: dict) -> str:
    """One line: agreement, mIoU, max |diff| and the verdict."""
    if not figures:
        return ""
    diff = figures.get("max_abs_diff")
    diff_text = "-" if diff is None else f"{diff:.2g}"
    verdict = "ok" if figures.get("passed") else f"BELOW {figures.get('tolerance', 0):.1%}"
    miou = figures.get("miou")  # None where only the self-test ran (an engine measured on its device)
    miou_text = "-" if miou is None else f"{miou:.4f}"
    where = f"  (self-test on {figures['measured_on']})" if figures.get("measured_on") else ""
    return (
        f"agreement {figures['agreement']:.2%}  mIoU {miou_text}  "
        f"max|diff| {diff_text}  [{verdict}]{where}"
    )

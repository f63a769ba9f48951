"""Sparse categorical cross-entropy from logits with an ignore label (needs TensorFlow)."""

from __future__ import annotations

from .. import deps

keras = deps.keras()


@keras.saving.register_keras_serializable(package="edge_deeplab")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over the pixels whose label is not `ignore_label`.

    y_true: (N, H, W) integer labels (the ignore label marks void / padding).
    y_pred: (N, H, W, C) float32 logits.

    Keras averages the returned per-pixel values over all N*H*W pixels; each valid pixel's
    loss is divided by the batch's fraction of valid pixels, so the result is the mean
    over valid pixels only and does not shrink when a batch holds a lot of void.

    `class_weights` (one per class) scale each pixel's loss by its true class's weight,
    normalised by the batch's mean weight so the loss keeps its scale.
    """

    def __init__(self, ignore_label: int = 255, class_weights=None, name: str = "masked_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        ops = keras.ops
        labels = ops.cast(y_true, "int32")
        valid = ops.not_equal(labels, self.ignore_label)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        ce = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=True)
        weight = ops.cast(valid, ce.dtype)
        if self.class_weights is not None:
            weight = weight * ops.take(ops.convert_to_tensor(self.class_weights, ce.dtype), safe)
        fraction = ops.maximum(ops.mean(weight), 1e-6)
        return ce * weight / fraction

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label, "class_weights": self.class_weights}


def balanced_class_weights(masks, num_classes: int, ignore_label: int, power: float):
    """(median frequency / frequency) ** power per class, from the training masks.

    power 1 is SegNet's median-frequency balancing; 0.5 a milder version that lifts thin,
    rare classes (poles, signs, pedestrians) without flooding the map with them. A class
    absent from the masks gets weight 1.
    """
    import numpy as np

    counts = np.zeros(num_classes, np.int64)
    for mask in masks:
        values = mask[mask != ignore_label]
        counts += np.bincount(values.ravel(), minlength=num_classes)[:num_classes]
    present = counts > 0
    freq = counts / max(1, counts.sum())
    median = float(np.median(freq[present])) if present.any() else 1.0
    weights = np.ones(num_classes)
    weights[present] = (median / freq[present]) ** power
    return [float(w) for w in weights]

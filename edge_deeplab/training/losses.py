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
    """

    def __init__(self, ignore_label: int = 255, name: str = "masked_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        ops = keras.ops
        labels = ops.cast(y_true, "int32")
        valid = ops.not_equal(labels, self.ignore_label)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        ce = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=True)
        weight = ops.cast(valid, ce.dtype)
        fraction = ops.maximum(ops.mean(weight), 1e-6)
        return ce * weight / fraction

    def get_config(self):
        return {**super().get_config(), "ignore_label": self.ignore_label}

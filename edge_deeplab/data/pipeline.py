"""tf.data input pipelines over an in-memory SegDataset (needs TensorFlow).

Training: random scale, pad (image with the mean pixel, mask with the ignore label),
random crop to the model input, horizontal flip, colour jitter, optional blur, then THE
normalisation (`preprocessing.normalize`), in parallel (AUTOTUNE) and prefetched.

Scale 1.0 means the evaluation geometry: the image stretched to the model input, as
`preprocessing.preprocess` does, so training and evaluation see objects at the same size;
the random scale multiplies that.

Validation: `preprocessing.preprocess_batch` (THE function) on the host, once, then
batched tensors.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .. import deps
from ..config import AugmentConfig
from ..metadata import ArtifactMetadata
from .datasets import SegDataset
from .preprocessing import normalize, preprocess_batch


def _source(tf, dataset: SegDataset):
    """A tf.data.Dataset of (uint8 (H, W, 3), uint8 (H, W)) from the in-memory arrays."""
    if dataset.same_size() is not None:
        return tf.data.Dataset.from_tensor_slices(
            (np.stack(dataset.images), np.stack(dataset.masks))
        )
    # Sizes differ (VOC): flatten each pair, keep the shapes, and restore them per element.
    shapes = np.array([image.shape[:2] for image in dataset.images], np.int32)
    images = tf.RaggedTensor.from_row_lengths(
        np.concatenate([i.reshape(-1) for i in dataset.images]), [i.size for i in dataset.images]
    )
    masks = tf.RaggedTensor.from_row_lengths(
        np.concatenate([m.reshape(-1) for m in dataset.masks]), [m.size for m in dataset.masks]
    )
    source = tf.data.Dataset.from_tensor_slices((images, masks, shapes))
    return source.map(lambda i, m, s: (tf.reshape(i, [s[0], s[1], 3]), tf.reshape(m, [s[0], s[1]])))


def _jitter(tf, image, augment: AugmentConfig):
    """Colour jitter on float pixels 0..255."""
    x = image / 255.0
    if augment.brightness:
        x = tf.image.random_brightness(x, augment.brightness)
    if augment.contrast:
        x = tf.image.random_contrast(x, 1 - augment.contrast, 1 + augment.contrast)
    if augment.saturation:
        x = tf.image.random_saturation(x, 1 - augment.saturation, 1 + augment.saturation)
    if augment.hue:
        x = tf.image.random_hue(x, augment.hue)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def _blur(tf, image, augment: AugmentConfig):
    """With probability augment.blur, a separable Gaussian blur of random sigma (reflected edges)."""
    radius = int(np.ceil(3 * augment.blur_sigma[1]))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    sigma = tf.random.uniform([], *augment.blur_sigma)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel /= tf.reduce_sum(kernel)

    def blurred():
        x = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
        x = tf.nn.depthwise_conv2d(x, tf.tile(kernel[:, None, None, None], [1, 1, 3, 1]), [1] * 4, "VALID")
        x = tf.nn.depthwise_conv2d(x, tf.tile(kernel[None, :, None, None], [1, 1, 3, 1]), [1] * 4, "VALID")
        return x[0]

    return tf.cond(tf.random.uniform([]) < augment.blur, blurred, lambda: image)


def augment_fn(
    input_size: Tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    augment: AugmentConfig,
    ignore_label: int,
    crop_size: Optional[Tuple[int, int]] = None,
):
    """The per-element training transform: (uint8 image, uint8 mask) ->
    (float32 (h, w, 3) normalised, int32 (h, w) labels with ignore_label where padded),
    h, w the crop size (default the input size); scale 1 is the image at `input_size`."""
    tf = deps.tensorflow()
    full_h, full_w = input_size
    h, w = crop_size or input_size
    mean_px = tf.constant(np.asarray(mean, np.float32))

    def transform(image, mask):
        scale = tf.random.uniform([], *augment.scale_range)
        size = tf.cast(tf.round(tf.constant([full_h, full_w], tf.float32) * scale), tf.int32)
        size = tf.maximum(size, 1)
        image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
        labels = tf.image.resize(tf.cast(mask, tf.int32)[..., None], size, method="nearest")
        # Pad to at least the input size: image with the mean pixel (normalises to 0),
        # mask with the ignore label (excluded from the loss), then crop at random.
        pad_h, pad_w = tf.maximum(h - size[0], 0), tf.maximum(w - size[1], 0)
        top, left = _randint(tf, pad_h), _randint(tf, pad_w)
        paddings = [[top, pad_h - top], [left, pad_w - left], [0, 0]]
        inside = tf.pad(tf.ones_like(image[:, :, :1]), paddings)  # 0 on the padding
        image = tf.pad(image - mean_px, paddings) + mean_px
        labels = tf.pad(labels - ignore_label, paddings) + ignore_label
        stacked = tf.concat([image, tf.cast(labels, tf.float32), inside], axis=-1)
        stacked = tf.image.random_crop(stacked, [h, w, 5])
        if augment.flip:
            stacked = tf.cond(
                tf.random.uniform([]) < 0.5, lambda: tf.reverse(stacked, [1]), lambda: stacked
            )
        # Jitter the crop, not the scaled photo: up to 5x fewer pixels, and the colour ops
        # (saturation, hue) are the costliest part of the pipeline on a 2-core CPU.
        inside = stacked[:, :, 4:]
        image = _jitter(tf, stacked[:, :, :3], augment)
        if augment.blur:
            image = _blur(tf, image, augment)
        image = image * inside + mean_px * (1.0 - inside)  # padding stays the mean
        image = normalize(image, mean, std)
        labels = tf.cast(tf.round(stacked[:, :, 3]), tf.int32)
        return image, labels

    return transform


def _randint(tf, high):
    """Uniform integer in [0, high] (high a scalar int32 tensor)."""
    return tf.cast(tf.floor(tf.random.uniform([]) * tf.cast(high + 1, tf.float32)), tf.int32)


def train_pipeline(
    dataset: SegDataset,
    meta: ArtifactMetadata,
    batch_size: int,
    augment: AugmentConfig,
    seed: int = 0,
    repeat: bool = True,
    crop_size: Optional[Tuple[int, int]] = None,
):
    """Shuffled, augmented, batched (drop remainder), prefetched training batches.

    Scale 1.0 stretches an image to the metadata's input size (the evaluation geometry);
    the random crop then takes `crop_size` (default: the input size) out of it.

    Yields:
        (float32 (B, h, w, 3) normalised images, int32 (B, h, w) labels) with h, w the
        crop size; ignored pixels carry `dataset.ignore_label`.
    """
    tf = deps.tensorflow()
    source = _source(tf, dataset).cache()
    source = source.shuffle(len(dataset), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        source = source.repeat()
    transform = augment_fn(meta.input_size, meta.mean, meta.std, augment, dataset.ignore_label, crop_size)
    batches = source.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    batches = batches.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return batches.with_options(_options(tf))


def val_arrays(dataset: SegDataset, meta: ArtifactMetadata) -> Tuple[np.ndarray, np.ndarray]:
    """Validation images through THE preprocessing, masks resized nearest to match.

    Returns:
        float32 (N, h, w, 3) normalised images and int32 (N, h, w) labels.
    """
    from .preprocessing import resize

    images, _ = preprocess_batch(dataset.images, meta)
    masks = np.stack([resize(m, meta.input_size, nearest=True) for m in dataset.masks]).astype(
        np.int32
    )
    return images, masks


def _options(tf):
    options = tf.data.Options()
    # In-memory tensors cannot be sharded by file: each worker takes every N-th element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options

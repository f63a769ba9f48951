"""Segmenter: the one place that turns images into class maps, for every engine.

It resizes (stretch or letterbox, as the metadata says), normalises, quantises the input
when the model takes int8/uint8, runs the Runtime, dequantises the output, upsamples
logits, and argmaxes: the three output kinds published models have (logits at the input
size, at the feature resolution, an in-graph ArgMax class map). The host part is lean
(`data.host_input`): uint8 pixels are resized and written into a reused input buffer in one
pass, raw where the model takes pixels (our "pixels" artifacts, Coral's uint8 models), else
through an exact per-channel table; no full-frame float array for uint8/int8 inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .data.host_input import SHRINK_MODES, dequantize, input_writer, quantize
from .data.preprocessing import (
    DEFAULT_SHRINK,
    Placement,
    preprocess_batch,
    region_scores,
    restore_labels,
    restore_scores,
    upsample_labels,
)
from .errors import InvalidInputError, ModelLoadError
from .imageio import read_image, to_rgb
from .metadata import ArtifactMetadata, read_labels_file
from .presets import PRESETS

ImageInput = Union[np.ndarray, str]
ScoreFilter = Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray]
UPSAMPLE_MODES = ("scores", "labels")


@dataclass
class SegmentationResult:
    """One image's segmentation.

    labels: uint8 (H, W) class index per pixel, at the image's own size.
    probabilities: float32 softmax scores, when asked for and the model has logits: (H, W, C)
        at the image size, or at the model's resolution with upsample="labels".
    timings: stage name -> milliseconds for the batch this image was part of.
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Image in, class map out, through any Runtime.

    Args:
        runtime: an opened Runtime.
        metadata: overrides the artifact's own metadata.
        preset: a preset name ("pascal-voc", "camvid") for models without metadata.
        labels: a labels file path or a sequence of names (overrides the preset's).
        mean, std: normalisation in pixel units (override the preset's).
        size: (height, width) input size for models with a dynamic input.
        upsample: "scores" (exact: logits upsampled bilinearly to the image size, then argmax)
            or "labels" (fast, for real time: argmax at the model's resolution, the class map
            upsampled nearest; probabilities then stay at the model's resolution).
        score_filters: post-processors of the class probabilities, run in order before the
            argmax, e.g. temporal smoothing: `filter(probabilities, image) -> probabilities`
            with float32 (H, W, C) softmax scores (at the resolution `upsample` gives) and
            the uint8 image they came from. Models with an in-graph ArgMax skip them.
        shrink: how an image larger than the input is shrunk: "reduce" (the default:
            average 2x2 pixel blocks while the image is twice the input, then bilinear,
            as Pillow's reducing_gap), "area" (exact pixel averaging, 10x slower) or
            "linear" (OpenCV's bilinear, aliased but cheapest; the demo uses it).
    """

    def __init__(self, runtime, metadata: Optional[ArtifactMetadata] = None, *, preset: Optional[str] = None,
                 labels=None, mean=None, std=None, size=None, upsample: str = "scores",
                 score_filters: Sequence[ScoreFilter] = (), shrink: str = DEFAULT_SHRINK):
        for value, valid, what in ((upsample, UPSAMPLE_MODES, "upsample"), (shrink, SHRINK_MODES, "shrink")):
            if value not in valid:
                raise InvalidInputError(f"{what} must be one of {', '.join(valid)}; got {value!r}")
        self.upsample = upsample
        self._shrink = shrink
        self.score_filters: List[ScoreFilter] = list(score_filters)
        self.runtime = runtime
        self.metadata = metadata or resolve_metadata(runtime, preset, labels, mean, std, size)
        self._input = runtime.input_spec
        self._output = runtime.output_spec
        _check_label_count(self.metadata, self._output, runtime.path)
        self._writer = input_writer(self.metadata, self._input, runtime.path, shrink)

    @property
    def takes_pixels(self) -> bool:
        """Whether the engine gets the uint8 pixels as they are (no normalisation on the host)."""
        return self._writer is not None and self._writer.raw

    @property
    def labels(self) -> tuple:
        return self.metadata.labels

    def close(self) -> None:
        """Release the runtime (idempotent)."""
        self.runtime.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def predict(self, image: ImageInput, *, order: str = "RGB", probabilities: bool = False) -> SegmentationResult:
        """Segment one image: an RGB/BGR uint8 array (say which with `order`) or a file path."""
        return self.predict_batch([image], order=order, probabilities=probabilities)[0]

    def predict_batch(self, images: Sequence[ImageInput], *, order: str = "RGB",
                      probabilities: bool = False) -> List[SegmentationResult]:
        """Segment several images (of any sizes) in one engine call when the model allows.

        The three public steps in order: `preprocess` -> `infer` -> `postprocess`, timed.
        """
        t0 = time.perf_counter()
        batch, placements, pixels = self.preprocess(images, order=order, reuse=True)
        t1 = time.perf_counter()
        raw = self.infer(batch)
        t2 = time.perf_counter()
        results = self.postprocess(raw, placements, probabilities=probabilities, images=pixels)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        for result in results:
            result.timings = dict(timings)
        return results

    def __call__(self, image: ImageInput, **kwargs) -> np.ndarray:
        return self.predict(image, **kwargs).labels

    def preprocess(self, images: Sequence[ImageInput], *, order: str = "RGB", reuse: bool = False):
        """Images -> the engine's input batch: resized, normalised, quantised if int8/uint8.

        Args:
            images: uint8 arrays (in channel `order`) or image files, of any sizes.
            order: "RGB" or "BGR". An image is flipped to the model's order after it is
                resized, so a camera's BGR frame is never flipped at full size.
            reuse: write into the Segmenter's own input buffer (valid until the next
                reusing call; `predict` does) instead of a new array the caller keeps.

        Returns:
            (batch of input_spec.dtype (N, h, w, 3), one Placement per image, the images
            as validated uint8 arrays, in their own order).
        """
        if len(images) == 0:
            raise InvalidInputError("no images to segment")
        pixels = [self._as_array(image, order) for image in images]
        orders = ["RGB" if _is_path(image) else order for image in images]
        if self._writer is not None:
            batch, placements = self._writer.write(pixels, orders, reuse)
            return batch, placements, pixels
        batch, placements = preprocess_batch(pixels, self.metadata, orders, self._shrink)
        return self.quantize_input(batch), placements, pixels

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the engine, one image at a time when its batch dimension is fixed to 1."""
        if self._input.shape and self._input.shape[0] == 1 and batch.shape[0] > 1:
            return np.concatenate([self.runtime.run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self.runtime.run(batch)

    def postprocess(self, raw: np.ndarray, placements: Sequence[Placement], *, probabilities: bool = False,
                    images: Optional[Sequence[np.ndarray]] = None) -> List[SegmentationResult]:
        """The engine's raw output batch -> one SegmentationResult per image.

        Dequantises, restores the image size (as `upsample` says), runs the score filters
        and argmaxes. `images` (as `preprocess` returned them) are what the filters see.
        """
        images = images if images is not None else [None] * len(placements)
        return [self._postprocess(raw[i], placements[i], probabilities, images[i]) for i in range(len(placements))]

    def quantize_input(self, batch: np.ndarray) -> np.ndarray:
        """Normalised float32 -> the dtype the model takes (quantised if int8/uint8; back to
        the pixels for a model that takes raw pixels)."""
        spec = self._input
        if self.takes_pixels:  # its input quantisation is the normalisation: zero point mean, 1/std
            meta = self.metadata
            return quantize(batch * np.asarray(meta.std, np.float32), 1.0, np.asarray(meta.mean, np.float32), np.uint8)
        if spec.quantized:
            return quantize(batch, spec.scale, spec.zero_point, spec.dtype)
        return batch.astype(spec.dtype, copy=False)

    def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 scores (logits heads) or integer class map (argmax heads)."""
        spec = self._output
        if self.metadata.head == "argmax":
            return raw.reshape(raw.shape[:2]) if raw.ndim == 3 and raw.shape[-1] == 1 else raw
        if spec.quantized:
            return dequantize(raw, spec.scale, spec.zero_point)
        return raw.astype(np.float32, copy=False)

    def _postprocess(self, raw: np.ndarray, placement: Placement, probabilities: bool, image) -> SegmentationResult:
        out = self.dequantize_output(raw)
        if self.metadata.head == "argmax":  # a class map: nothing to filter
            labels = restore_labels(out if out.dtype == np.uint8 else out.astype(np.uint8), placement)
            return SegmentationResult(labels=labels)
        fast = self.upsample == "labels"
        scores = region_scores(out, placement) if fast else restore_scores(out, placement)
        probs = softmax(scores) if probabilities or self.score_filters else None
        for score_filter in self.score_filters:
            probs = score_filter(probs, image)
        # The filtered probabilities decide; else the scores (argmax of the softmax could tie
        # where the logits do not).
        labels = np.argmax(probs if self.score_filters else scores, axis=-1).astype(np.uint8)
        if fast:
            labels = upsample_labels(labels, placement)
        return SegmentationResult(labels=labels, probabilities=probs if probabilities else None)

    def _as_array(self, image: ImageInput, order: str) -> np.ndarray:
        if _is_path(image):
            return read_image(image)
        return to_rgb(image, order="RGB")  # validates; the flip to `order` waits for the resize


def _is_path(image) -> bool:
    return isinstance(image, str) or hasattr(image, "__fspath__")


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def resolve_metadata(runtime, preset=None, labels=None, mean=None, std=None, size=None) -> ArtifactMetadata:
    """The artifact's metadata, or one built from a preset / flags and the model's tensors.

    Flags override the embedded metadata and the preset, field by field.
    """
    fields: dict = {}
    embedded = runtime.metadata
    if embedded is not None:
        fields.update(embedded.to_dict())
    if preset:
        fields.update(PRESETS.get(preset))
    if labels is not None:
        fields["labels"] = read_labels_file(labels) if isinstance(labels, str) else tuple(labels)
        if preset is None and embedded is None:
            fields.pop("palette", None)
    if mean is not None:
        fields["mean"] = mean
    if std is not None:
        fields["std"] = std
    fields.update(_tensor_derived(runtime, fields, size))
    if "labels" not in fields:
        raise InvalidInputError(
            f"{runtime.path}: carries no edge-deeplab metadata; give --preset "
            f"({', '.join(PRESETS.names())}) or --labels FILE with --mean/--std"
        )
    return ArtifactMetadata.from_dict(fields)


def _check_label_count(meta: ArtifactMetadata, output, path) -> None:
    """`head` matches the output tensor, and a logits output has one channel per label."""
    shape = tuple(output.shape)
    channels = shape[-1] if len(shape) == 4 else None
    if meta.head == "logits" and (len(shape) == 3 or (channels == 1 and meta.num_classes > 1)):
        raise ModelLoadError(f"{path}: metadata field head is 'logits' but the model outputs a class map {shape}")
    if meta.head == "argmax" and channels not in (None, 1):
        raise ModelLoadError(f"{path}: metadata field head is 'argmax' but the model outputs {channels} scores")
    if meta.head == "logits" and channels and channels != meta.num_classes:
        raise InvalidInputError(
            f"{path}: the model outputs {channels} class scores but {meta.num_classes} labels were "
            "given; check --preset/--labels"
        )


def _tensor_derived(runtime, fields: dict, size) -> dict:
    """Input size and head kind as the model's tensors show them."""
    in_shape = runtime.input_spec.shape
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise InvalidInputError(
            f"{runtime.path}: input {runtime.input_spec.name} has shape {in_shape}; "
            "expected an image tensor (N, H, W, 3)"
        )
    derived: dict = {}
    if size is not None:
        derived["input_size"] = tuple(size)
    elif in_shape[1] and in_shape[2]:
        derived["input_size"] = (in_shape[1], in_shape[2])
    elif "input_size" not in fields:
        raise InvalidInputError(f"{runtime.path}: dynamic input size; give --size HxW")
    if "head" not in fields or runtime.metadata is None:
        out = runtime.output_spec
        is_map = len(out.shape) == 3 or np.issubdtype(np.dtype(out.dtype), np.integer) and not out.quantized
        derived["head"] = "argmax" if is_map else "logits"
        ih = derived.get("input_size", fields.get("input_size"))[0]
        derived["output_resolution"] = "full" if out.shape[1] in (None, ih) else "feature"
    return derived

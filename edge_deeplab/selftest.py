"""The self-test every converted artifact carries: a few inputs and what Keras made of them.

`edge-deeplab convert` stores, in the artifact's metadata (`selftest`), the first parity
images shrunk to at most THUMBNAIL pixels a side, and the class maps the Keras reference
gave for exactly those images, both as zlib-compressed uint8 in base64. `edge-deeplab
verify` runs the artifact on them on the engine, delegate and machine where it is called
and compares ("fine on the host, garbage on the device" is what it catches). Numpy, zlib
and base64 only: it runs in the edge install, without TensorFlow.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

from .errors import InvalidInputError

INPUTS = 4  # stored inputs: about 40 KB of metadata at the 96-pixel size
THUMBNAIL = 96


@dataclass(frozen=True)
class SelftestResult:
    """Per-input agreement with the stored Keras class maps, and the verdict."""

    agreements: List[float]
    pixels: List[int]
    bar: float

    @property
    def agreement(self) -> float:
        """Pooled over every pixel of every input."""
        return float(np.dot(self.agreements, self.pixels) / max(sum(self.pixels), 1))

    @property
    def passed(self) -> bool:
        return self.agreement >= self.bar


def thumbnails(images: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The first INPUTS images, shrunk to at most THUMBNAIL pixels a side (the self-test's
    inputs; the reference is computed on these, so they are stored as they are)."""
    from .data.preprocessing import resize

    small = []
    for image in list(images)[:INPUTS]:
        h, w = image.shape[:2]
        scale = min(1.0, THUMBNAIL / max(h, w))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        small.append(np.ascontiguousarray(image if scale == 1.0 else resize(image, size)))
    return small


def build(inputs: Sequence[np.ndarray], reference_labels: Sequence[np.ndarray], bar: float) -> dict:
    """The metadata entry: inputs (RGB uint8) and the reference's class maps for them."""
    return {
        "version": 1,
        "bar": float(bar),
        "inputs": [
            {"image": _pack(image), "shape": list(image.shape), "labels": _pack(labels)}
            for image, labels in zip(inputs, reference_labels)
        ],
    }


def inputs_and_labels(selftest: dict):
    """(images, reference class maps) of a metadata entry; a damaged entry is an error."""
    try:
        images, maps = [], []
        for item in selftest["inputs"]:
            shape = tuple(int(v) for v in item["shape"])
            images.append(_unpack(item["image"], shape))
            maps.append(_unpack(item["labels"], shape[:2]))
        return images, maps
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise InvalidInputError(f"the self-test in the metadata is damaged ({exc})") from None


def run(segmenter, selftest: dict, bar: float = None) -> SelftestResult:
    """Segment the stored inputs with `segmenter` and compare with the stored maps."""
    images, maps = inputs_and_labels(selftest)
    agreements = [float(np.mean(r.labels == m)) for r, m in zip(segmenter.predict_batch(images), maps)]
    return SelftestResult(agreements, [m.size for m in maps], float(selftest["bar"] if bar is None else bar))


def compare(segmenter, reference, images: Sequence[np.ndarray], bar: float) -> SelftestResult:
    """Agreement of `segmenter` with another model's Segmenter on `images`."""
    ours = segmenter.predict_batch(images)
    theirs = reference.predict_batch(images)
    agreements = [float(np.mean(a.labels == b.labels)) for a, b in zip(ours, theirs)]
    return SelftestResult(agreements, [r.labels.size for r in theirs], bar)


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, np.uint8).tobytes(), 9)).decode("ascii")


def _unpack(text: str, shape) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).reshape(shape)

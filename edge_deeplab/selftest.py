"""The self-test every converted artifact carries: a few inputs and what Keras made of them.

`edge-deeplab convert` stores, in the artifact's metadata (`selftest`), the first parity
images shrunk to at most THUMBNAIL pixels a side, the class maps the Keras reference gave
for exactly those images, both as zlib-compressed uint8 in base64, and a digest of the
pixels the engine is fed for each. `edge-deeplab verify` runs the artifact on them on the
engine, delegate and machine where it is called and compares ("fine on the host, garbage on
the device" is what it catches). Numpy, zlib, hashlib and base64 only: it runs in the edge
install, without TensorFlow.

A check of the device must not depend on the device's image library: OpenCV builds differ
in their fixed-point bilinear (opencv-python-headless 5.1 on aarch64 moved one level on a
fifth of the upscaled values, and failed correct engines). So from version 2 the whole host
path of the self-test (upscaling the thumbnails, the letterbox, upsampling the scores) runs
in numpy (`preprocessing.numpy_only`), the same on every platform and library set, and the
stored digests say, when a check fails, whether the host made other input pixels than the
converter did or the engine answered differently to the same pixels.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidInputError

VERSION = 2  # 1: thumbnails and maps only, resized by whatever image library is installed
SUPPORTED_VERSIONS = (1, 2)
INPUTS = 4  # stored inputs: about 40 KB of metadata at the 96-pixel size
THUMBNAIL = 96


@dataclass(frozen=True)
class SelftestResult:
    """Per-input agreement with the stored Keras class maps, and the verdict.

    host_matches: per input, whether the pixels fed to the engine here are bit-identical to
        the converter's (None for version-1 self-tests and comparisons, which store none).
    """

    agreements: List[float]
    pixels: List[int]
    bar: float
    host_matches: Optional[List[bool]] = None

    @property
    def agreement(self) -> float:
        """Pooled over every pixel of every input."""
        return float(np.dot(self.agreements, self.pixels) / max(sum(self.pixels), 1))

    @property
    def passed(self) -> bool:
        return self.agreement >= self.bar

    @property
    def host_path_differed(self) -> bool:
        return self.host_matches is not None and not all(self.host_matches)

    def diagnosis(self) -> str:
        """Which side differed, for a failed check: the host's input pixels or the engine."""
        if self.host_matches is None:
            return "the host path is not recorded in this self-test: the engine or the image library differed"
        if self.host_path_differed:
            bad = ", ".join(str(i) for i, ok in enumerate(self.host_matches) if not ok)
            return (f"the host path differed: the input pixels made here differ from the converter's "
                    f"(inputs {bad}); the engine was fed other inputs and is not judged")
        return "the engine differed: it was fed the converter's input pixels bit for bit"


def thumbnails(images: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The first INPUTS images, shrunk to at most THUMBNAIL pixels a side (the self-test's
    inputs; the reference is computed on these, so they are stored as they are)."""
    from .data.preprocessing import numpy_only, resize

    small = []
    with numpy_only():
        for image in list(images)[:INPUTS]:
            h, w = image.shape[:2]
            scale = min(1.0, THUMBNAIL / max(h, w))
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            small.append(np.ascontiguousarray(image if scale == 1.0 else resize(image, size)))
    return small


def input_digest(image: np.ndarray, meta) -> str:
    """sha256 of the uint8 pixels the engine gets for `image` (resized into the model's
    input as `meta` says, by the numpy path): what must be equal on every platform."""
    from .data.preprocessing import input_pixels, numpy_only

    with numpy_only():
        pixels, _ = input_pixels(image, meta)
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def build(reference, images: Sequence[np.ndarray], bar: float) -> dict:
    """The metadata entry for `images`: their thumbnails (RGB uint8), the class maps the
    `reference` Segmenter (the Keras model) gives for them through the numpy host path, and
    the digests of the engine's input pixels."""
    from .data.preprocessing import numpy_only

    inputs = thumbnails(images)
    with numpy_only():
        maps = [result.labels for result in reference.predict_batch(inputs)]
    return {
        "version": VERSION,
        "bar": float(bar),
        "inputs": [
            {"image": _pack(image), "shape": list(image.shape), "labels": _pack(labels),
             "pixels_sha256": input_digest(image, reference.metadata)}
            for image, labels in zip(inputs, maps)
        ],
    }


def inputs_and_labels(selftest: dict) -> Tuple[List[np.ndarray], List[np.ndarray], List[Optional[str]]]:
    """(images, reference class maps, input digests) of a metadata entry; a damaged,
    empty or unknown entry is one error line."""
    version = selftest.get("version") if isinstance(selftest, dict) else None
    if version not in SUPPORTED_VERSIONS:
        raise InvalidInputError(
            f"the self-test in the metadata has version {version!r}; this edge-deeplab reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))} (a newer edge-deeplab wrote it: upgrade here)"
        )
    try:
        images, maps, digests = [], [], []
        for item in selftest["inputs"]:
            shape = _checked_shape(item["shape"])
            images.append(_unpack(item["image"], shape))
            maps.append(_unpack(item["labels"], shape[:2]))
            digests.append(item.get("pixels_sha256") if version >= 2 else None)
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as exc:
        raise InvalidInputError(f"the self-test in the metadata is damaged ({exc})") from None
    if not images:
        raise InvalidInputError("the self-test in the metadata holds no inputs: nothing can be checked")
    return images, maps, digests


def run(segmenter, selftest: dict, bar: Optional[float] = None) -> SelftestResult:
    """Segment the stored inputs with `segmenter` and compare with the stored maps."""
    from .data.preprocessing import numpy_only

    images, maps, digests = inputs_and_labels(selftest)
    bar = float(selftest.get("bar", 0.0) if bar is None else bar)
    if any(d is None for d in digests):  # version 1: the reference came through the host's own library
        return _agreement(segmenter.predict_batch(images), maps, bar, None)
    with numpy_only():
        matches = [input_digest(image, segmenter.metadata) == digest for image, digest in zip(images, digests)]
        return _agreement(segmenter.predict_batch(images), maps, bar, matches)


def compare(segmenter, reference, images: Sequence[np.ndarray], bar: float) -> SelftestResult:
    """Agreement of `segmenter` with another model's Segmenter on `images`."""
    ours = segmenter.predict_batch(images)
    theirs = reference.predict_batch(images)
    return _agreement(ours, [r.labels for r in theirs], bar, None)


def _agreement(results, maps, bar: float, matches) -> SelftestResult:
    agreements = [float(np.mean(r.labels == m)) for r, m in zip(results, maps)]
    return SelftestResult(agreements, [m.size for m in maps], bar, matches)


def _checked_shape(shape) -> tuple:
    """(h, w, 3) within the thumbnail size: what `build` stores (a larger claim is refused
    before anything is decompressed)."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or shape[2] != 3 or not all(1 <= v <= THUMBNAIL for v in shape[:2]):
        raise ValueError(f"input shape {list(shape)} is not (h, w, 3) within {THUMBNAIL} pixels a side")
    return shape


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(array, np.uint8).tobytes(), 9)).decode("ascii")


def _unpack(text: str, shape) -> np.ndarray:
    """Decompress at most the bytes `shape` holds (a crafted entry cannot inflate further)."""
    from .limits import bounded_decompress

    expected = int(np.prod(shape))
    data = bounded_decompress(base64.b64decode(text, validate=True), expected, "the self-test in the metadata")
    if len(data) != expected:
        raise ValueError(f"an entry holds {len(data)} bytes, not the {expected} of its shape")
    return np.frombuffer(data, np.uint8).reshape(shape)

"""THE preprocessing: the one place that turns pixels into model input and back.

Training (through `normalize`, on tf tensors), calibration, evaluation and every runtime
(through `Segmenter`) call these functions; nothing else resizes or normalises.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import deps
from ..errors import MissingDependencyError
from ..metadata import ArtifactMetadata

# How images larger than the model's input are shrunk by default: 2x2-block averaging while
# the image is twice the size, then bilinear. Against exact area averaging (INTER_AREA) to
# 257 wide: 45.7 dB PSNR on a 768x432 video frame (bilinear alone 39.4) at 0.19 ms instead of
# INTER_AREA's 2.1 ms; 47.9 dB at 1080p in 0.9 ms instead of 11.7 ms.
DEFAULT_SHRINK = "reduce"


def normalize(pixels, mean: Sequence[float], std: Sequence[float]):
    """(pixels - mean) / std for RGB pixel values in 0..255.

    Works on numpy arrays and on TensorFlow tensors alike (only arithmetic), which is how
    the tf.data pipeline shares it with the host-side preprocessing.
    """
    mean = np.asarray(mean, np.float32)
    inv_std = np.float32(1.0) / np.asarray(std, np.float32)
    return (pixels - mean) * inv_std


@dataclass(frozen=True)
class Placement:
    """Where an image sits inside the model input.

    original: (height, width) of the image as given.
    region: (top, left, height, width) of the resized image inside the model input; the
        rest is letterbox padding.
    input_size: (height, width) of the model input.
    """

    original: Tuple[int, int]
    region: Tuple[int, int, int, int]
    input_size: Tuple[int, int]


def place(image_size: Tuple[int, int], input_size: Tuple[int, int], mode: str) -> Placement:
    """Compute how an image of `image_size` maps into the model input."""
    h, w = image_size
    ih, iw = input_size
    if mode == "stretch":
        return Placement((h, w), (0, 0, ih, iw), (ih, iw))
    scale = min(ih / h, iw / w)
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (ih - rh) // 2, (iw - rw) // 2
    return Placement((h, w), (top, left, rh, rw), (ih, iw))


# Set inside `numpy_only()`: every resize of this context takes the numpy path.
_NUMPY_ONLY = contextvars.ContextVar("edge_deeplab_numpy_only", default=False)


@contextlib.contextmanager
def numpy_only():
    """Resize with numpy, never OpenCV, inside this block (this thread or task only).

    OpenCV's fixed-point bilinear differs between its builds (opencv-python-headless 5.1 on
    aarch64 moves one level on a fifth of the values that 5.0 and x86 agree on); numpy's
    float32 arithmetic is IEEE, rounded the same on every platform. The embedded self-test
    runs inside this block, so it judges the engine, not the image library.
    """
    token = _NUMPY_ONLY.set(True)
    try:
        yield
    finally:
        _NUMPY_ONLY.reset(token)


def cv2_or_none():
    """OpenCV when importable, else None (the numpy fallback of the edge install, and the
    path of every resize inside `numpy_only()`)."""
    if _NUMPY_ONLY.get():
        return None
    # Called a few times per frame: once imported, a dict lookup instead of the import
    # machinery (a None entry is an import Python refuses, as the no-OpenCV tests set up).
    if "cv2" in sys.modules:
        return sys.modules["cv2"]
    try:
        return deps.cv2()
    except MissingDependencyError:
        return None


def resize(array: np.ndarray, size: Tuple[int, int], nearest: bool = False, shrink: str = DEFAULT_SHRINK,
           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Resize (H, W[, C]) to size=(height, width): bilinear, or nearest; a uint8 image
    shrunk in both directions by pixel averaging (`shrink` "area"), by 2x2-block averaging
    while twice the size then bilinear ("reduce"), or bilinear ("linear").

    OpenCV does it when importable; without OpenCV, numpy (nearest, or bilinear with
    half-pixel centres as OpenCV's INTER_LINEAR). With `out` ((height, width[, C]), the
    array's dtype), the result is written there and `out` returned.
    """
    resized = _resize(array, size, nearest, shrink, out)
    return resized if out is None else write_into(out, resized)


def _resize(array: np.ndarray, size: Tuple[int, int], nearest: bool, shrink: str, out) -> np.ndarray:
    """`resize`'s result: a new array, `array` itself, or `out` where OpenCV wrote into it."""
    h, w = size
    if array.shape[:2] == (h, w):
        return array
    cv2 = cv2_or_none()
    if cv2 is None:
        return _numpy_resize(array, (h, w), nearest)
    mode = cv2.INTER_LINEAR
    shrinking = h < array.shape[0] and w < array.shape[1] and array.dtype == np.uint8
    if nearest and h > array.shape[0]:
        return _nearest_enlarge(cv2, array, (h, w))
    if nearest:
        mode = cv2.INTER_NEAREST
    elif shrinking and shrink == "area":
        mode = cv2.INTER_AREA
    elif shrinking and shrink == "reduce":
        array = _halve_while_twice(cv2, array, (h, w))
        if array.shape[:2] == (h, w):
            return array
    if out is None or not out.flags.c_contiguous:
        return _cv2_resize(cv2, array, (w, h), mode)
    return cv2.resize(array, (w, h), dst=out, interpolation=mode)


def write_into(out: np.ndarray, result: np.ndarray) -> np.ndarray:
    """`out` holding `result`. OpenCV writes into a `dst` it can use (contiguous, the right
    shape) and returns a new array otherwise: that one is copied."""
    written = result is out or (
        result.__array_interface__["data"][0] == out.__array_interface__["data"][0] and result.size == out.size
    )
    if not written:
        np.copyto(out, result.reshape(out.shape))
    return out


def _halve_while_twice(cv2, array: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Average 2x2 pixel blocks while the image is at least twice `size` in both directions.

    Pillow's `reducing_gap` idea, leaving the rest (under 2x) to bilinear, with OpenCV's
    SIMD 2x area path: other whole factors take its generic path, 3x slower at 3x (0.59
    ms on a 768x432 frame) and further from INTER_AREA than repeated halving at 7x (1080p).
    """
    h, w = size
    while array.shape[0] >= 2 * h and array.shape[1] >= 2 * w:
        # fx/fy (not a size) keep the fast path where a side is odd.
        array = _cv2_resize(cv2, array, None, cv2.INTER_AREA, 0.5)
    return array


def _cv2_resize(cv2, array: np.ndarray, size_wh, mode: int, scale: float = 0.0) -> np.ndarray:
    out = cv2.resize(array, size_wh, fx=scale, fy=scale, interpolation=mode)
    return out[:, :, None] if array.ndim == 3 and out.ndim == 2 else out  # cv2 drops a 1-channel axis


def _nearest_enlarge(cv2, array: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """OpenCV's nearest resize to more rows, done as OpenCV's columns on the source rows, then
    whole rows repeated: the same pixels, 1.7x (768x432) to 3.4x (1080p) faster for a class
    map, because OpenCV picks every output pixel where rows repeat 2-7 times."""
    h, w = size
    rows = _cv2_resize(cv2, array, (w, array.shape[0]), cv2.INTER_NEAREST)
    return np.take(rows, _nearest_rows(cv2, array.shape[0], h), axis=0)


@functools.lru_cache(maxsize=64)
def _nearest_rows(cv2, src: int, dst: int) -> np.ndarray:
    """The source row of each of `dst` output rows, by OpenCV's own nearest rule (exact by
    construction: it resizes the row numbers)."""
    numbers = np.arange(src, dtype=np.float32).reshape(-1, 1)
    return cv2.resize(numbers, (1, dst), interpolation=cv2.INTER_NEAREST).ravel().astype(np.intp)


def _numpy_resize(array: np.ndarray, size: Tuple[int, int], nearest: bool) -> np.ndarray:
    (h, w), (sh, sw) = size, array.shape[:2]
    if nearest:
        ys = np.minimum((np.arange(h) * (sh / h)).astype(np.intp), sh - 1)
        xs = np.minimum((np.arange(w) * (sw / w)).astype(np.intp), sw - 1)
        return array[ys[:, None], xs[None, :]]
    y0, y1, wy = _linear_taps(sh, h)
    x0, x1, wx = _linear_taps(sw, w)
    a = array.astype(np.float32)
    wy = wy.reshape((-1, 1) + (1,) * (array.ndim - 2))
    wx = wx.reshape((1, -1) + (1,) * (array.ndim - 2))
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    out = top * (1 - wy) + bottom * wy
    if array.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(array.dtype, copy=False)


def _linear_taps(src: int, dst: int):
    pos = np.clip((np.arange(dst, dtype=np.float32) + 0.5) * (src / dst) - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, src - 1), (pos - lo).astype(np.float32)


def input_pixels(
    image: np.ndarray, meta: ArtifactMetadata, order: str = "RGB", shrink: str = DEFAULT_SHRINK
) -> Tuple[np.ndarray, Placement]:
    """uint8 (H, W, 3) -> uint8 (h, w, 3) at the model's input size, and its Placement:
    resized (letterboxed with black), in the model's channel order, not normalised.

    What a pixel-input model takes, and what `preprocess` normalises. `order` is the
    image's channel order; it is flipped after the resize, where the image is smallest.
    """
    placement = place(image.shape[:2], meta.input_size, meta.resize)
    top, left, rh, rw = placement.region
    resized = resize(image, (rh, rw), shrink=shrink)
    if order != meta.channel_order:
        resized = resized[:, :, ::-1]
    if (rh, rw) != tuple(meta.input_size):
        canvas = np.zeros((*meta.input_size, 3), resized.dtype)  # letterbox: black pixels
        canvas[top : top + rh, left : left + rw] = resized
        resized = canvas
    return resized, placement


def preprocess(
    image: np.ndarray, meta: ArtifactMetadata, order: str = "RGB", shrink: str = DEFAULT_SHRINK
) -> Tuple[np.ndarray, Placement]:
    """uint8 (H, W, 3) -> float32 (h, w, 3) model input, normalised, and its Placement."""
    pixels, placement = input_pixels(image, meta, order, shrink)
    x = normalize(pixels.astype(np.float32), meta.mean, meta.std)
    return x.astype(np.float32, copy=False), placement


def preprocess_batch(
    images: Sequence[np.ndarray], meta: ArtifactMetadata, orders: Optional[Sequence[str]] = None,
    shrink: str = DEFAULT_SHRINK,
):
    """Several images (RGB, or each in its `orders` entry) -> float32 (N, h, w, 3), Placements."""
    orders = orders or ["RGB"] * len(images)
    pairs = [preprocess(image, meta, order, shrink) for image, order in zip(images, orders)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def restore_scores(scores: np.ndarray, placement: Placement) -> np.ndarray:
    """Model-output scores (h', w', C) -> (H, W, C) at the original image size.

    The output may be at the input size or smaller (feature resolution); the letterbox
    region is cut in output coordinates, then resized bilinearly to the original size.
    """
    return resize(_crop_region(scores, placement), placement.original)


def region_scores(scores: np.ndarray, placement: Placement) -> np.ndarray:
    """Model-output scores (h', w', C) -> (rh, rw, C) at the size the image had in the model.

    The cheap path for real-time use: upsampling C channels to the model's own resolution
    instead of the (often much larger) original image size.
    """
    _, _, rh, rw = placement.region
    return resize(_crop_region(scores, placement), (rh, rw))


def upsample_labels(labels: np.ndarray, placement: Placement) -> np.ndarray:
    """A class map at the model's resolution (rh, rw) -> (H, W) at the original size."""
    return resize(labels, placement.original, nearest=True)


def restore_labels(labels: np.ndarray, placement: Placement) -> np.ndarray:
    """A class map (h', w') -> (H, W) at the original size, nearest neighbour."""
    return resize(_crop_region(labels, placement), placement.original, nearest=True)


def _crop_region(array: np.ndarray, placement: Placement) -> np.ndarray:
    top, left, rh, rw = placement.region
    ih, iw = placement.input_size
    if (top, left, rh, rw) == (0, 0, ih, iw):
        return array
    sy, sx = array.shape[0] / ih, array.shape[1] / iw
    y0, x0 = int(round(top * sy)), int(round(left * sx))
    y1, x1 = max(y0 + 1, int(round((top + rh) * sy))), max(x0 + 1, int(round((left + rw) * sx)))
    return array[y0:y1, x0:x1]

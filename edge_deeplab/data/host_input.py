"""The lean host path: uint8 images straight into a preallocated engine input batch.

Per image: one resize of the uint8 pixels (OpenCV when importable, numpy otherwise), the
channel flip on the resized image, then one pass into the engine's buffer:
- raw pixels (models that take uint8 RGB 0..255 and normalise in their graph, and foreign
  uint8 models whose input quantisation is the normalisation, like Coral's): a copy;
- everything else: a per-channel 256-entry table, uint8 -> the engine's dtype, holding
  exactly what `normalize` (then quantisation, for int8/uint8 inputs) gives each pixel
  value, computed once with the same float32 arithmetic. No full-frame float temporary.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInputError
from ..metadata import ArtifactMetadata
from .preprocessing import DEFAULT_SHRINK, Placement, cv2_or_none, normalize, place, resize, write_into

# Input dtypes a table can produce directly (others take Segmenter's general path).
TABLE_DTYPES = (np.uint8, np.int8, np.int16, np.float32)
SHRINK_MODES = ("area", "reduce", "linear")


def input_writer(meta: ArtifactMetadata, spec, path, shrink: str = DEFAULT_SHRINK) -> Optional[InputWriter]:
    """The lean input path for a model, or None for inputs it does not cover (float16).

    Raw pixels go in where the metadata says the model takes them (input_kind "pixels")
    or where the input's quantisation is the normalisation (`raw_pixels_match`).
    """
    if meta.input_kind == "pixels":
        if np.dtype(spec.dtype) != np.uint8:
            raise InvalidInputError(
                f"{path}: its metadata says it takes uint8 pixels but its input is {np.dtype(spec.dtype)}"
            )
        return InputWriter(meta, spec, raw=True, shrink=shrink)
    if raw_pixels_match(meta, spec):
        return InputWriter(meta, spec, raw=True, shrink=shrink)
    return InputWriter(meta, spec, raw=False, shrink=shrink) if InputWriter.supports(spec) else None


def input_table(meta: ArtifactMetadata, spec) -> np.ndarray:
    """(256, 3) of spec.dtype: the engine's input value for each pixel value and channel."""
    values = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    normalised = normalize(values, meta.mean, meta.std).astype(np.float32, copy=False)
    if spec.quantized:
        return quantize(normalised, spec.scale, spec.zero_point, spec.dtype)
    return normalised.astype(spec.dtype)


def quantize(values: np.ndarray, scale, zero_point, dtype) -> np.ndarray:
    """Real values -> the integer `dtype`: round(values / scale + zero_point), clipped to its range.

    The one quantisation of the host side: the input table above and `Segmenter.quantize_input`
    (where `scale` and `zero_point` may be per channel) both go through it.
    """
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(raw: np.ndarray, scale, zero_point) -> np.ndarray:
    """An engine's integer output -> float32: (raw - zero_point) * scale (TensorSpec's affine rule)."""
    return (raw.astype(np.float32) - zero_point) * np.float32(scale)


def raw_pixels_match(meta: ArtifactMetadata, spec) -> bool:
    """Whether uint8 pixels can go in as they are: the input is uint8 and its quantisation
    (zero point, 1/scale: the mean and std it implies, in pixel units) is the metadata's
    normalisation within half a quantisation step (0.5) on every channel.

    Coral's DeepLab (scale 1/128, zero point 128) under the PASCAL preset (mean = std =
    127.5) is 0.5 off on both: fed raw, as Coral's own pipeline does.
    """
    if not spec.quantized or np.dtype(spec.dtype) != np.uint8:
        return False
    implied_std = 1.0 / float(spec.scale)
    return all(
        abs(spec.zero_point - m) <= 0.5 and abs(implied_std - s) <= 0.5
        for m, s in zip(meta.mean, meta.std)
    )


class InputWriter:
    """Writes uint8 images into the engine's input batch (reused from call to call).

    Args:
        meta: the model's metadata (input size, resize mode, channel order, normalisation).
        spec: the runtime's input TensorSpec.
        raw: True when the engine takes the uint8 pixels as they are.
        shrink: "area", "reduce" or "linear", how images larger than the input are shrunk.

    With `reuse`, the batch `write` returns is the writer's own buffer, valid until the
    next reusing `write` (a Segmenter's predict runs one batch at a time).
    """

    def __init__(self, meta: ArtifactMetadata, spec, raw: bool, shrink: str = DEFAULT_SHRINK):
        self.meta = meta
        self.raw = raw
        self.shrink = shrink
        self.table: Optional[np.ndarray] = None if raw else input_table(meta, spec)
        self.dtype = np.dtype(np.uint8 if raw else self.table.dtype)
        self.pad = np.zeros(3, self.dtype) if raw else self.table[0].copy()  # black pixels
        self._lut = None if raw else np.ascontiguousarray(self.table.reshape(1, 256, 3))
        self._buffers: Dict[int, np.ndarray] = {}
        self._padded: Dict[Tuple[int, int], tuple] = {}  # (n, i) -> the region its bands frame

    @staticmethod
    def supports(spec) -> bool:
        return np.dtype(spec.dtype) in [np.dtype(d) for d in TABLE_DTYPES]

    def write(self, images: Sequence[np.ndarray], orders: Sequence[str],
              reuse: bool = False) -> Tuple[np.ndarray, List[Placement]]:
        """uint8 (H, W, 3) images, each in its `orders` channel order -> (batch
        (N, h, w, 3) of the engine's dtype, one Placement per image)."""
        n = len(images)
        batch = self._buffer(n) if reuse else np.empty((n, *self.meta.input_size, 3), self.dtype)
        placements = []
        for i, (image, order) in enumerate(zip(images, orders)):
            placement = place(image.shape[:2], self.meta.input_size, self.meta.resize)
            if not reuse or self._padded.get((n, i)) != placement.region:
                self._pad(batch[i], placement)
                if reuse:
                    self._padded[n, i] = placement.region
            self._write_one(image, order, batch[i], placement)
            placements.append(placement)
        return batch, placements

    def _buffer(self, n: int) -> np.ndarray:
        if n not in self._buffers:
            self._buffers[n] = np.empty((n, *self.meta.input_size, 3), self.dtype)
        return self._buffers[n]

    def _pad(self, out: np.ndarray, placement: Placement) -> None:
        """Letterbox bands in black. A reused buffer keeps them while the region stays (a
        video's frames): no 200 KB fill per frame."""
        if placement.region[2:] != tuple(self.meta.input_size):
            out[...] = self.pad

    def _write_one(self, image: np.ndarray, order: str, out: np.ndarray, placement: Placement) -> None:
        # Every step past the resize writes straight into the buffer where it can: on a busy
        # machine each pass over memory costs several times its cached time.
        top, left, rh, rw = placement.region
        region = out[top : top + rh, left : left + rw]
        flip = order != self.meta.channel_order
        if self.raw and not flip:
            resize(image, (rh, rw), shrink=self.shrink, out=region)
            return
        resized = resize(image, (rh, rw), shrink=self.shrink)
        if self.raw:
            flip_channels(resized, out=region)
        else:
            apply_table(flip_channels(resized) if flip else resized, self._lut, region)


def flip_channels(image: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """RGB <-> BGR of a (small, resized) uint8 image: a new contiguous array, or into `out`."""
    cv2 = cv2_or_none()
    if cv2 is None:
        flipped = image[:, :, ::-1]
        return np.ascontiguousarray(flipped) if out is None else write_into(out, flipped)
    if out is None or not out.flags.c_contiguous:
        flipped = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        return flipped if out is None else write_into(out, flipped)
    return write_into(out, cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=out))


def apply_table(image: np.ndarray, lut: np.ndarray, out: np.ndarray) -> None:
    """out[y, x, c] = lut[0, image[y, x, c], c] for uint8 `image` (one pass)."""
    cv2 = cv2_or_none()
    if cv2 is not None and out.flags.c_contiguous and lut.dtype != np.int16:
        write_into(out, cv2.LUT(image, lut, dst=out))
        return
    for c in range(3):
        np.take(lut[0, :, c], image[:, :, c], out=out[:, :, c])

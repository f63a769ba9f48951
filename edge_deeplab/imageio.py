"""Reading and writing images with clear errors, through OpenCV.

Every reader returns RGB uint8 (H, W, 3) or a uint8 (H, W) label map, or raises an
InvalidInputError naming the file and what is wrong. Conversions that are safe are done
and documented: grayscale is repeated to three channels, an alpha channel is dropped.
16-bit images are refused (their scaling is ambiguous), and so is anything truncated.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from . import deps
from .errors import InvalidInputError, OutputError

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _read_bytes(path: PathLike) -> bytes:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: is a folder, expected an image file") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise InvalidInputError(f"{path}: file is empty")
    return data


def _decode(path: PathLike, data: bytes) -> np.ndarray:
    cv2 = deps.cv2()
    if data[:3] == b"\xff\xd8\xff" and not data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        raise InvalidInputError(f"{path}: JPEG is truncated (no end-of-image marker)")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise InvalidInputError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if array.dtype != np.uint8:
        raise InvalidInputError(
            f"{path}: {array.dtype} image; expected 8-bit (convert 16-bit images to 8-bit first)"
        )
    return array


def read_image(path: PathLike) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3). Grayscale is repeated, alpha dropped."""
    return to_rgb(_decode(path, _read_bytes(path)), source=str(path), order="BGR")


def to_rgb(array: np.ndarray, source: str = "image", order: str = "RGB") -> np.ndarray:
    """Normalise an in-memory image to RGB uint8 (H, W, 3).

    Args:
        array: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8.
        source: name used in error messages.
        order: channel order of a 3/4-channel `array` ("RGB" or "BGR").
    """
    if not isinstance(array, np.ndarray):
        raise InvalidInputError(f"{source}: expected a numpy image, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise InvalidInputError(f"{source}: {array.dtype} image; expected uint8")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidInputError(f"{source}: image of shape {array.shape}; expected (H, W, 3)")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise InvalidInputError(f"{source}: image is {array.shape[1]}x{array.shape[0]}; too small to segment")
    array = array[:, :, :3]
    if order == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def read_mask(path: PathLike) -> np.ndarray:
    """A label map as uint8 (H, W). Colour (3-channel) masks are refused."""
    array = _decode(path, _read_bytes(path))
    if array.ndim == 3:
        if array.shape[2] == 1:
            return array[:, :, 0]
        if array.shape[2] >= 3 and np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(
            array[:, :, 1], array[:, :, 2]
        ):
            return np.ascontiguousarray(array[:, :, 0])
        raise InvalidInputError(
            f"{path}: mask has {array.shape[2]} colour channels; expected a single-channel label map"
        )
    return array


def write_image(path: PathLike, rgb: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or label (H, W) uint8 image atomically."""
    cv2 = deps.cv2()
    path = Path(path)
    data = rgb if rgb.ndim == 2 else np.ascontiguousarray(rgb[:, :, ::-1])
    ok, encoded = cv2.imencode(path.suffix or ".png", data)
    if not ok:
        raise InvalidInputError(f"{path}: cannot encode image as {path.suffix}")
    atomic_write_bytes(path, encoded.tobytes())


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over `path`.

    Raises:
        OutputError: the folder or file cannot be written (a full disk, no permission),
            naming the path and the cause; no temporary file is left behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

"""Reading and writing images with clear errors, through OpenCV.

Every reader returns RGB uint8 (H, W, 3) or a uint8 (H, W) label map, or raises an
InvalidInputError naming the file and what is wrong. Conversions that are safe are done
and documented: grayscale is repeated to three channels, an alpha channel is dropped.
16-bit images are refused (their scaling is ambiguous), and so is anything truncated.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Union

import numpy as np

from . import deps
from .errors import InvalidInputError, OutputError
from .image_header import declared_size
from .limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _read_bytes(path: PathLike) -> bytes:
    """The bytes of a regular file, at most MAX_IMAGE_BYTES of them.

    Opened without blocking and checked on the open descriptor: a FIFO named `x.png` would
    block an ordinary open for ever, and a link to /dev/zero would be read until memory
    runs out.
    """
    limit = MAX_IMAGE_BYTES.value
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: is a folder, expected an image file") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InvalidInputError(f"{path}: is a folder, expected an image file")
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"{path}: not a regular file (a device, pipe or socket); only image files are read")
        MAX_IMAGE_BYTES.check(f"{path}: the file", info.st_size)
        try:
            data = handle.read(limit + 1)  # bounded even if the file grows while read
        except OSError as exc:
            raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    MAX_IMAGE_BYTES.check(f"{path}: the file", len(data))
    if not data:
        raise InvalidInputError(f"{path}: file is empty")
    return data


def _check_declared_size(path: PathLike, data: bytes) -> None:
    """Refuse an image whose header declares more than MAX_IMAGE_PIXELS, before decoding."""
    size = declared_size(data)
    if size is not None:
        width, height = size
        MAX_IMAGE_PIXELS.check(f"{path}: the image ({width}x{height})", width * height)


def _decode(path: PathLike, data: bytes) -> np.ndarray:
    cv2 = deps.cv2()
    if data[:3] == b"\xff\xd8\xff" and not data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        raise InvalidInputError(f"{path}: JPEG is truncated (no end-of-image marker)")
    _check_declared_size(path, data)
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV's own size limit (OPENCV_IO_MAX_IMAGE_PIXELS) refused it
        array = None
    if array is None or array.size == 0:
        raise InvalidInputError(
            f"{path}: not a readable image (corrupt, truncated, unknown format, or over "
            f"{MAX_IMAGE_PIXELS.env}={MAX_IMAGE_PIXELS.value} pixels)"
        )
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
    """Write to a temporary file in the same folder, then rename it over `path` durably.

    Raises:
        OutputError: the folder or file cannot be written (a full disk, no permission),
            naming the path and the cause; no temporary file is left behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        durable_replace(tmp, path, synced=True)
    except OSError as exc:
        _discard(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _discard(tmp)
        raise


def _create_temp(path: Path):
    """(fd, name) of a new hidden file beside `path`, with the usual mode (0666 less the
    umask, applied by the kernel: reading the umask would need a process-wide umask(0)
    window that races other threads creating files)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue


def durable_replace(tmp: PathLike, final: PathLike, synced: bool = False) -> None:
    """os.replace(tmp, final) that survives a power cut: the data reaches the disk before the
    rename, and the rename before this returns (without the fsyncs a crash can leave an
    empty or half-written file under the final name, or the old one back).

    Args:
        tmp: a file, or a folder (a SavedModel, a staged artifact) whose files are synced.
        final: where it goes; replaced if present (a file, or an empty folder).
        synced: `tmp` was already fsynced by its writer.
    """
    if not synced:
        fsync_tree(tmp)
    os.replace(tmp, final)
    fsync_folder(Path(final).parent)


def fsync_tree(path: PathLike) -> None:
    """fsync a file, or every file and folder under a folder."""
    path = Path(path)
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file() and not child.is_symlink():
                _fsync_path(child, os.O_RDONLY)
        for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
            fsync_folder(folder)
    else:
        _fsync_path(path, os.O_RDONLY)


def fsync_folder(folder: PathLike) -> None:
    """fsync a folder, so the names created or renamed in it are on disk."""
    try:
        _fsync_path(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # a filesystem without it
            raise


def _fsync_path(path: PathLike, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(tmp) -> None:
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

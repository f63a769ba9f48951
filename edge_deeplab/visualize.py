"""Turning class maps into pictures: colourised masks and overlays (numpy only).

Shared by `edge-deeplab predict`, the report and the camera demos, so a class has the
same colour everywhere. No OpenCV or TensorFlow needed.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .errors import InvalidInputError

Color = Tuple[int, int, int]


def palette_array(palette: Sequence[Color]) -> np.ndarray:
    """A palette (sequence of RGB triples) as a uint8 (256, 3) lookup table.

    Class indices beyond the palette (e.g. an ignore label of 255) are drawn black.
    """
    table = np.zeros((256, 3), np.uint8)
    colors = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if colors.size and (colors.min() < 0 or colors.max() > 255):
        raise InvalidInputError("palette colours must be RGB values in 0..255")
    count = min(len(colors), 256)
    table[:count] = colors[:count].astype(np.uint8)
    return table


def colorize(labels: np.ndarray, palette: Sequence[Color]) -> np.ndarray:
    """Class map -> colour image.

    Args:
        labels: integer (H, W) class indices (uint8 or any integer dtype, values 0..255).
        palette: one RGB colour per class index.

    Returns:
        uint8 (H, W, 3) RGB image.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(
            f"labels must be an integer (H, W) class map, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InvalidInputError("class indices must be in 0..255")
    return palette_array(palette)[labels.astype(np.uint8, copy=False)]


def overlay(
    rgb: np.ndarray, labels: np.ndarray, palette: Sequence[Color], alpha: float = 0.5
) -> np.ndarray:
    """Blend the colourised class map over the image.

    Args:
        rgb: uint8 (H, W, 3) RGB image.
        labels: integer (H, W) class map at the image's size.
        palette: one RGB colour per class index.
        alpha: weight of the mask colours, 0 (image only) .. 1 (mask only).

    Returns:
        uint8 (H, W, 3) RGB image.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InvalidInputError(f"alpha must be in 0..1, got {alpha}")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInputError(f"image must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] != np.shape(labels)[:2]:
        raise InvalidInputError(f"labels {np.shape(labels)} do not match the image {rgb.shape[:2]}")
    colors = colorize(labels, palette).astype(np.float32)
    blended = rgb.astype(np.float32) * (1.0 - alpha) + colors * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def legend(labels: np.ndarray, names: Sequence[str], palette: Sequence[Color]) -> list:
    """(name, colour, fraction of pixels) of the classes present, largest first."""
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=256)
    total = max(1, int(counts.sum()))
    table = palette_array(palette)
    rows = []
    for index in np.flatnonzero(counts):
        name = names[index] if index < len(names) else str(index)
        rows.append((name, tuple(int(v) for v in table[index]), float(counts[index] / total)))
    return sorted(rows, key=lambda row: -row[2])

"""The embedded synthetic dataset: seeded scenes whose classes differ by shape and texture.

Every object has a random colour, so no class can be told by colour alone: a class is a
shape drawn with its own texture (striped disks, checkered boxes, dotted triangles, ...).
Objects overlap, sit on textured backgrounds (smooth noise, gradients, faint stripes) and
the whole scene is lit unevenly, blurred and noised, so a model has to learn something and
quantization has something to lose.

Image `i` of seed `s` depends only on (s, i), never on how many images are asked for, so
`generate(10)[0][:5]` equals `generate(5)[0]`. Pure numpy plus OpenCV for drawing.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import deps
from ..errors import InvalidInputError

# Class k (k >= 1) is SHAPES[k - 1] drawn with TEXTURES[k - 1].
SHAPES = ("disk", "box", "triangle", "cross", "ring", "hexagon", "star")
TEXTURES = ("stripes", "checker", "dots", "grid", "solid", "zigzag", "stripes")
MAX_CLASSES = len(SHAPES) + 1


def labels(num_classes: int = 4) -> Tuple[str, ...]:
    """Class names of the synthetic dataset: "background" then one name per shape."""
    _check_classes(num_classes)
    return ("background",) + SHAPES[: num_classes - 1]


def generate(
    n: int, size: Tuple[int, int] = (128, 128), seed: int = 0, num_classes: int = 4
) -> Tuple[np.ndarray, np.ndarray]:
    """Generate `n` scenes.

    Args:
        n: number of images.
        size: (height, width) of each image.
        seed: dataset seed; image i is drawn from a generator seeded by (seed, i).
        num_classes: 2..MAX_CLASSES including background (class 0).

    Returns:
        images: uint8 (n, H, W, 3) RGB.
        masks: uint8 (n, H, W) class indices in [0, num_classes).
    """
    _check_classes(num_classes)
    if int(n) < 0:
        raise InvalidInputError(f"synthetic: n must be >= 0, got {n}")
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise InvalidInputError(f"synthetic: size must be at least 16x16, got {h}x{w}")
    images = np.empty((int(n), h, w, 3), np.uint8)
    masks = np.empty((int(n), h, w), np.uint8)
    for i in range(int(n)):
        images[i], masks[i] = scene(np.random.default_rng([int(seed), i]), (h, w), num_classes)
    return images, masks


def _check_classes(num_classes: int) -> None:
    if not 2 <= int(num_classes) <= MAX_CLASSES:
        raise InvalidInputError(
            f"synthetic: num_classes must be in 2..{MAX_CLASSES}, got {num_classes}"
        )


def scene(rng: np.random.Generator, size: Tuple[int, int], num_classes: int):
    """One scene from `rng`: (RGB uint8 (H, W, 3), mask uint8 (H, W))."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = _background(rng, yy, xx)
    mask = np.zeros((h, w), np.uint8)
    unit = min(h, w)
    count = int(rng.integers(2, 6))
    for _ in range(count):
        cls = int(rng.integers(1, num_classes))
        radius = unit * rng.uniform(0.15, 0.3)
        center = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
        region = _shape_mask(SHAPES[cls - 1], (h, w), center, radius, rng)
        if not region.any():
            continue
        image[region] = _texture(TEXTURES[cls - 1], rng, yy, xx, unit)[region]
        mask[region] = cls
    image = _lighting(rng, image, yy, xx)
    return _degrade(rng, image), mask


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _rotated(rng, yy, xx):
    theta = rng.uniform(0, np.pi)
    return xx * np.cos(theta) + yy * np.sin(theta), -xx * np.sin(theta) + yy * np.cos(theta)


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


def _background(rng, yy, xx) -> np.ndarray:
    """Float (H, W, 3): smooth noise, a gradient, or faint stripes between two colours."""
    h, w = yy.shape
    a, b = _colour(rng), _colour(rng)
    kind = rng.integers(0, 3)
    if kind == 0:  # smooth low-frequency noise
        coarse = rng.uniform(0, 1, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
        t = deps.cv2().resize(coarse, (w, h), interpolation=deps.cv2().INTER_CUBIC)
    elif kind == 1:  # linear gradient
        u, _ = _rotated(rng, yy, xx)
        t = (u - u.min()) / max(1e-6, float(np.ptp(u)))
    else:  # faint broad stripes: a distractor for the striped class
        u, _ = _rotated(rng, yy, xx)
        t = 0.5 + 0.2 * np.sin(u * 2 * np.pi / rng.uniform(14, 30))
    return _blend(a, b, np.clip(t, 0, 1))


def _texture(kind: str, rng, yy, xx, unit: int) -> np.ndarray:
    """Float (H, W, 3) texture of a class over the whole frame.

    The pattern is light and dark shades of one random colour, so the colour says
    nothing about the class while the pattern stays visible.
    """
    base = _colour(rng)
    if rng.uniform() < 0.5:  # darker pattern on the colour
        a, b = base, base * rng.uniform(0.15, 0.45)
    else:  # lighter pattern on a darkened colour
        a, b = base * rng.uniform(0.3, 0.6), base + (255 - base) * rng.uniform(0.5, 0.8)
    # Periods of 14-20 px at 128x128: coarse enough to survive the backbone's strides.
    period = unit * rng.uniform(0.11, 0.16)
    u, v = _rotated(rng, yy, xx)
    if kind == "stripes":
        t = (np.sin(u * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == "checker":
        t = ((np.floor(u / (0.6 * period)) + np.floor(v / (0.6 * period))) % 2).astype(np.float32)
    elif kind == "dots":
        # Small sparse dots (about 15% cover), unlike the half-covering checker.
        du, dv = np.mod(u, period * 0.8) - period * 0.4, np.mod(v, period * 0.8) - period * 0.4
        t = (du * du + dv * dv < (period * 0.18) ** 2).astype(np.float32)
    elif kind == "grid":
        t = (
            (np.mod(u, period * 1.5) < period * 0.35) | (np.mod(v, period * 1.5) < period * 0.35)
        ).astype(np.float32)
    elif kind == "zigzag":
        t = (
            np.sin((u + period * 0.6 * np.abs(np.mod(v / period, 2) - 1)) * 2 * np.pi / period) > 0
        ).astype(np.float32)
    else:  # "solid": a shaded flat colour, told apart by its shape alone
        t = 0.3 * (v - v.min()) / max(1e-6, float(np.ptp(v)))
    return _blend(a, b, t)


def _polygon(center, radius, angles) -> np.ndarray:
    cx, cy = center
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


def _shape_mask(kind: str, size, center, radius: float, rng) -> np.ndarray:
    """Boolean (H, W) region of one shape."""
    cv2 = deps.cv2()
    canvas = np.zeros(size, np.uint8)
    rot = rng.uniform(0, 2 * np.pi)
    c = tuple(int(round(v)) for v in center)
    if kind == "disk":
        cv2.circle(canvas, c, int(radius), 1, -1)
    elif kind == "ring":
        cv2.circle(canvas, c, int(radius), 1, -1)
        cv2.circle(canvas, c, int(radius * 0.55), 0, -1)
    else:
        if kind == "box":
            aspect = rng.uniform(0.5, 1.0)
            corners = (
                np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * radius * 0.9
            )
            rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
            points = corners @ rotation.T + np.asarray(center)
        elif kind == "triangle":
            points = _polygon(center, radius * 1.1, rot + np.arange(3) * 2 * np.pi / 3)
        elif kind == "hexagon":
            points = _polygon(center, radius, rot + np.arange(6) * np.pi / 3)
        elif kind == "star":
            radii = np.where(np.arange(10) % 2 == 0, radius * 1.1, radius * 0.45)
            angles = rot + np.arange(10) * np.pi / 5
            points = np.stack(
                [center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1
            )
        else:  # cross: two bars
            bar = np.array([[-1, -0.33], [1, -0.33], [1, 0.33], [-1, 0.33]]) * radius
            rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
            for extra in (0.0, np.pi / 2):
                r2 = rotation @ np.array(
                    [[np.cos(extra), -np.sin(extra)], [np.sin(extra), np.cos(extra)]]
                )
                cv2.fillPoly(
                    canvas, [np.round(bar @ r2.T + np.asarray(center)).astype(np.int32)], 1
                )
            return canvas.astype(bool)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    return canvas.astype(bool)


def _lighting(rng, image: np.ndarray, yy, xx) -> np.ndarray:
    """Global gain and an illumination gradient across the frame."""
    u, _ = _rotated(rng, yy, xx)
    ramp = (u - u.min()) / max(1e-6, float(np.ptp(u)))
    gain = rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.3, 0.3) * (ramp - 0.5))
    return image * gain[..., None] + rng.uniform(-20, 20)


def _degrade(rng, image: np.ndarray) -> np.ndarray:
    """Blur and sensor noise; returns uint8."""
    sigma = rng.uniform(0.0, 0.9)
    if sigma > 0.4:
        image = deps.cv2().GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0, rng.uniform(2, 8), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)

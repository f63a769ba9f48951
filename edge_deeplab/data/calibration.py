"""THE source of representative images: calibration, parity and mixed-precision input.

A source is "synthetic", a folder of images (or a dataset root), or an in-memory array.
`sample_images` draws up to N RGB uint8 images from it; how depends on the purpose:

- "calibration": synthetic images from seed 10000, a folder sampled at random (seeded; the
  first N of one permutation, so N images include the M < N of a smaller set);
- "parity": synthetic images from seed 20000 (so parity is measured on images the
  quantizer did not see), a folder spread evenly rather than its first files.

`calibration_batches` is the same images through THE preprocessing: model-ready float32
input (N, h, w, 3), normalised as the metadata says.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ..errors import InvalidInputError
from ..imageio import IMAGE_SUFFIXES, read_image
from ..metadata import ArtifactMetadata
from .preprocessing import input_pixels, normalize

# Folders under a dataset root that hold label maps, not photos.
_MASK_FOLDERS = ("masks", "segmentationclass", "segmentationobject")
# Synthetic images per purpose come from distinct seeds, so no purpose reuses another's.
SYNTHETIC_SEEDS = {"calibration": 10_000, "parity": 20_000}


def sample_images(
    source, meta: ArtifactMetadata, n: int, purpose: str = "calibration", seed: int = 0
) -> List[np.ndarray]:
    """Up to `n` RGB uint8 (H, W, 3) images from `source` (see the module docstring).

    Args:
        source: "synthetic", a folder (searched recursively, mask folders such as
            `masks/`, `*annot/`, `SegmentationClass/` skipped) or one image, or an array
            of images (its first `n` are taken).
        meta: the model's metadata (input size and classes of synthetic images).
        n: how many images at most.
        purpose: "calibration" or "parity": which seed and which folder sampling.
        seed: added to the synthetic seed; seeds the folder's random sampling.
    """
    if int(n) < 1:
        raise InvalidInputError(f"{purpose} size must be >= 1, got {n}")
    if isinstance(source, np.ndarray):
        return list(source[:n])
    if str(source) == "synthetic":
        from . import synthetic

        classes = min(max(meta.num_classes, 2), synthetic.MAX_CLASSES)
        first = SYNTHETIC_SEEDS[purpose] + seed
        images, _ = synthetic.generate(int(n), meta.input_size, seed=first, num_classes=classes)
        return list(images)
    files = image_files(Path(source))
    if len(files) > n and purpose == "parity":  # spread over the folder
        files = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    elif len(files) > n:
        # A prefix of one seeded permutation: a larger set holds every image of a smaller one,
        # so a calibration curve measures what more images add, not another draw.
        picks = np.random.default_rng(seed).permutation(len(files))[: int(n)]
        files = [files[i] for i in sorted(picks)]
    return [read_image(path) for path in files]


def calibration_batches(source, meta: ArtifactMetadata, n: int = 100, seed: int = 0) -> np.ndarray:
    """Up to `n` calibration images through THE preprocessing: float32 (N, h, w, 3).

    `source` is what `sample_images` takes; a float array is taken as input that is
    already preprocessed (its first `n`).
    """
    if isinstance(source, np.ndarray) and source.dtype != np.uint8:
        return np.asarray(source[:n], np.float32)
    pixels = calibration_pixels(source, meta, n, seed)
    return normalize(pixels.astype(np.float32), meta.mean, meta.std).astype(np.float32, copy=False)


def calibration_pixels(source, meta: ArtifactMetadata, n: int = 100, seed: int = 0) -> np.ndarray:
    """Up to `n` calibration images at the model's input, as uint8 pixels (N, h, w, 3):
    what a pixel-input model takes, and a quarter of the memory of their float32 input."""
    rgb = sample_images(source, meta, n, "calibration", seed)
    return np.stack([input_pixels(image, meta)[0] for image in rgb])


def image_files(root: Path) -> List[Path]:
    if not root.exists():
        raise InvalidInputError(f"{root}: no such calibration folder (or give 'synthetic')")
    if root.is_file():
        return [root]
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not _in_mask_folder(p, root)
    )
    if not files:
        raise InvalidInputError(f"{root}: no images (.png/.jpg/...) found for calibration")
    return files


def _in_mask_folder(path: Path, root: Path) -> bool:
    parts = [part.lower() for part in path.relative_to(root).parts[:-1]]
    return any(part in _MASK_FOLDERS or part.endswith("annot") for part in parts)

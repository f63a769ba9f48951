"""Representative inputs for post-training quantization, through THE preprocessing.

`calibration_batches` returns model-ready float32 input (N, h, w, 3), normalised as the
metadata says, drawn from the synthetic dataset or from the images of a folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ..errors import InvalidInputError
from ..imageio import IMAGE_SUFFIXES, read_image
from ..metadata import ArtifactMetadata
from .preprocessing import preprocess

# Folders under a dataset root that hold label maps, not photos.
_MASK_FOLDERS = ("masks", "segmentationclass", "segmentationobject")


def calibration_batches(source, meta: ArtifactMetadata, n: int = 100, seed: int = 0) -> np.ndarray:
    """Up to `n` preprocessed images.

    Args:
        source: "synthetic", a folder of images, or a dataset root (images are searched
            recursively; mask folders such as `masks/`, `*annot/`, `SegmentationClass/`
            are skipped).
        meta: the model's metadata (input size, mean/std, channel order, resize mode).
        n: how many images at most; a folder with more is sampled (seeded).
        seed: seed of the synthetic images or of the sampling.

    Returns:
        float32 (N, h, w, 3), N = min(n, images available).
    """
    if int(n) < 1:
        raise InvalidInputError(f"calibration size must be >= 1, got {n}")
    if str(source) == "synthetic":
        from . import synthetic

        num_classes = min(max(meta.num_classes, 2), synthetic.MAX_CLASSES)
        images, _ = synthetic.generate(
            int(n), meta.input_size, seed=10_000 + seed, num_classes=num_classes
        )
        rgb: List[np.ndarray] = list(images)
    else:
        files = image_files(Path(source))
        if len(files) > n:
            picks = np.random.default_rng(seed).choice(len(files), size=int(n), replace=False)
            files = [files[i] for i in sorted(picks)]
        rgb = [read_image(path) for path in files]
    return np.stack([preprocess(image, meta)[0] for image in rgb]).astype(np.float32)


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

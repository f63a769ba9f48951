"""The `folder` format: images and masks with matching file names.

Per split, the first layout that exists is used:

1. `ROOT/<split>/images/` + `ROOT/<split>/masks/`
2. `ROOT/<split>/` + `ROOT/<split>annot/` (CamVid as SegNet ships it)
3. `ROOT/images/` + `ROOT/masks/` (one unsplit folder; every split reads it)

An image and its mask share a file stem (`0001.png` and `0001.png`, or `a.jpg` and
`a.png`). Masks are single-channel label maps (uint8 class indices). An image without a
mask, or a mask without an image, is an error, never a skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from ..config import DataConfig
from ..errors import InvalidInputError
from ..imageio import list_images
from .dataset_base import DATASETS, SegDataset, load_pairs, require_folder, resolve_labels


def split_folders(root: Path, split: str) -> Tuple[Path, Path]:
    """(images folder, masks folder) of `split` under `root`; see the module docstring."""
    root = require_folder(root, "dataset root")
    candidates = [
        (root / split / "images", root / split / "masks"),
        (root / split, root / f"{split}annot"),
        (root / "images", root / "masks"),
    ]
    for images, masks in candidates:
        if images.is_dir() and masks.is_dir():
            return images, masks
    raise InvalidInputError(
        f"{root}: no {split!r} split found; expected {split}/images + {split}/masks, "
        f"{split}/ + {split}annot/, or images/ + masks/"
    )


def match_pairs(images_dir: Path, masks_dir: Path) -> List[Tuple[Path, Path]]:
    """Pair image files with mask files by stem; unmatched files are errors."""
    images = list_images(images_dir)
    masks: Dict[str, Path] = {}
    for mask in list_images(masks_dir):
        if mask.stem in masks:
            raise InvalidInputError(f"{mask}: two masks named {mask.stem!r} in {masks_dir}")
        masks[mask.stem] = mask
    if not images:
        raise InvalidInputError(f"{images_dir}: no images (.png/.jpg/...) in this folder")
    pairs = []
    for image in images:
        mask = masks.pop(image.stem, None)
        if mask is None:
            raise InvalidInputError(f"{image}: no mask named {image.stem}.* in {masks_dir}")
        pairs.append((image, mask))
    if masks:
        orphan = sorted(masks.values())[0]
        raise InvalidInputError(
            f"{orphan}: mask without an image in {images_dir} ({len(masks)} such masks)"
        )
    return pairs


@DATASETS.register("folder")
class FolderFormat:
    """Loads a `folder` dataset split into memory (see the module docstring)."""

    order = 20  # where `--format` lists it

    @staticmethod
    def load(config: DataConfig, split: str) -> SegDataset:
        images_dir, masks_dir = split_folders(Path(config.path), split)
        labels = resolve_labels(config)
        return load_pairs(match_pairs(images_dir, masks_dir), labels, config.ignore_label, split)

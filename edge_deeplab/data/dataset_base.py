"""What every dataset format shares: SegDataset, the DATASETS registry, pair validation.

The formats (`datasets.py`'s synthetic one, `folder.py`, `voc.py`) build on this module;
`datasets.py` gathers them, so no module needs an import at the bottom of a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..config import DataConfig
from ..errors import InvalidInputError
from ..imageio import read_image, read_mask
from ..registry import Registry

DATASETS: Registry[type] = Registry("dataset format")


class SegDataset:
    """In-memory images and masks of one split.

    Args:
        images: RGB uint8 (H, W, 3) arrays (sizes may differ between images).
        masks: uint8 (H, W) label maps, each the size of its image.
        labels: class names, index order; masks hold values < len(labels) or ignore_label.
        ignore_label: mask value excluded from loss and metrics.
        names: one name per image (file stem), for messages and reports.
        split: the split these images are.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        labels: Sequence[str],
        ignore_label: int = 255,
        names: Optional[Sequence[str]] = None,
        split: str = "",
    ):
        self.images: List[np.ndarray] = list(images)
        self.masks: List[np.ndarray] = list(masks)
        self.labels: Tuple[str, ...] = tuple(labels)
        self.ignore_label = int(ignore_label)
        self.names: List[str] = (
            list(names) if names is not None else [f"{split}_{i}" for i in range(len(self.images))]
        )
        self.split = split
        if len(self.images) != len(self.masks) or len(self.names) != len(self.images):
            raise InvalidInputError(
                f"dataset {split!r}: {len(self.images)} images, {len(self.masks)} masks, "
                f"{len(self.names)} names"
            )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.masks[index]

    def same_size(self) -> Optional[Tuple[int, int]]:
        """(H, W) shared by every image, or None when sizes differ."""
        sizes = {image.shape[:2] for image in self.images}
        return next(iter(sizes)) if len(sizes) == 1 else None

    def __repr__(self) -> str:
        return f"SegDataset(split={self.split!r}, images={len(self)}, classes={self.num_classes})"


def resolve_labels(config: DataConfig, default: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
    """Class names from the config (labels, or num_classes -> class_0...), else `default`."""
    if config.labels is not None:
        if config.num_classes is not None and config.num_classes != len(config.labels):
            raise InvalidInputError(
                f"--num-classes {config.num_classes} disagrees with "
                f"{len(config.labels)} label names"
            )
        return tuple(config.labels)
    if config.num_classes is not None:
        if default is not None and len(default) == config.num_classes:
            return tuple(default)
        return tuple(f"class_{i}" for i in range(config.num_classes))
    if default is None:
        raise InvalidInputError(
            f"dataset {config.path}: give the number of classes (--num-classes N) or their names "
            "(--labels FILE or a preset name such as camvid)"
        )
    return tuple(default)


def load_pairs(
    pairs: Sequence[Tuple[Path, Path]],
    labels: Sequence[str],
    ignore_label: int,
    split: str,
    mask_reader=read_mask,
) -> SegDataset:
    """Decode (image, mask) file pairs and validate them; see `check_pair`."""
    images, masks, names = [], [], []
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        mask = mask_reader(mask_path)
        check_pair(image, mask, image_path, mask_path, len(labels), ignore_label)
        images.append(image)
        masks.append(mask)
        names.append(Path(image_path).stem)
    return SegDataset(images, masks, labels, ignore_label, names, split)


def check_pair(
    image: np.ndarray, mask: np.ndarray, image_path, mask_path, num_classes: int, ignore_label: int
) -> None:
    """Raise InvalidInputError when a mask does not fit its image or the class range."""
    if mask.ndim != 2:
        raise InvalidInputError(
            f"{mask_path}: mask of shape {mask.shape}; expected a (H, W) label map"
        )
    if mask.shape != image.shape[:2]:
        raise InvalidInputError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} "
            f"but its image {Path(image_path).name} "
            f"is {image.shape[1]}x{image.shape[0]} (W x H)"
        )
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= num_classes and v != ignore_label]
    if bad:
        shown = ", ".join(str(v) for v in bad[:8])
        raise InvalidInputError(
            f"{mask_path}: label values {shown} are outside 0..{num_classes - 1} and are not the "
            f"ignore label {ignore_label} (set --num-classes / --labels / --ignore-label)"
        )


def require_folder(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InvalidInputError(f"{path}: no such folder ({what})")
    return path

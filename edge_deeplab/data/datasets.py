"""Dataset formats behind one registry, loaded and validated into memory once.

A dataset is a list of (RGB uint8 (H, W, 3), mask uint8 (H, W)) pairs plus its class
names and ignore label. Every format decodes all of its files when loaded, so a broken
file is reported up front, by name, with what is wrong (`InvalidInputError`) — never
skipped silently and never discovered halfway through training.

Documented conversions (done by `edge_deeplab.imageio.read_image`): a grayscale image is
repeated to three channels and an alpha channel is dropped. 16-bit images and colour
(3-channel) masks are refused.
"""

from __future__ import annotations

from ..config import DataConfig
from ..errors import InvalidInputError
from . import folder, synthetic_format, voc  # noqa: F401  (each registers its format)
from .dataset_base import (  # noqa: F401  (the dataset API, importable from here)
    DATASETS,
    SegDataset,
    check_pair,
    load_pairs,
    require_folder,
    resolve_labels,
)


def load_dataset(config: DataConfig, split: str) -> SegDataset:
    """Load and validate one split of the dataset `config` describes."""
    return DATASETS.get(config.format).load(config, split)


def load_splits(config: DataConfig, splits) -> SegDataset:
    """Several splits as one dataset (e.g. train + val for a final model), in the order given."""
    parts = [load_dataset(config, split) for split in splits]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for part in parts[1:]:
        if part.labels != first.labels or part.ignore_label != first.ignore_label:
            raise InvalidInputError(
                f"splits {first.split!r} and {part.split!r} disagree on their labels or ignore label"
            )
    return SegDataset(
        [im for p in parts for im in p.images], [m for p in parts for m in p.masks], first.labels,
        first.ignore_label, [n for p in parts for n in p.names], "+".join(p.split for p in parts),
    )

"""The embedded synthetic dataset as a dataset format (no files: generated, seeded)."""

from __future__ import annotations

from ..config import DataConfig
from ..errors import InvalidInputError
from .dataset_base import DATASETS, SegDataset, resolve_labels


@DATASETS.register("synthetic")
class SyntheticFormat:
    """The embedded seeded dataset (`edge_deeplab.data.synthetic`); nothing is cached on disk.

    The train and val splits come from different seeds, so they share no image.
    """

    order = 10  # where `--format` lists it

    @staticmethod
    def load(config: DataConfig, split: str) -> SegDataset:
        from . import synthetic

        counts = {
            config.train_splits[0]: config.synthetic_train,
            config.val_split: config.synthetic_val,
        }
        if split not in counts:
            raise InvalidInputError(f"synthetic dataset has splits {sorted(counts)}; got {split!r}")
        num_classes = config.num_classes or (len(config.labels) if config.labels else 4)
        labels = resolve_labels(
            config.replace(num_classes=num_classes), synthetic.labels(num_classes)
        )
        seed = config.seed * 2 + (0 if split == config.train_splits[0] else 1)
        images, masks = synthetic.generate(counts[split], config.synthetic_size, seed, num_classes)
        names = [f"synthetic_{split}_{i:05d}" for i in range(len(images))]
        return SegDataset(list(images), list(masks), labels, config.ignore_label, names, split)

"""The images a model is scored on: a dataset split checked against the model, cut to a limit.

The report, `eval` and accuracy-controlled int8 (`convert --precision int8-mixed`) all score
on what `load_data` returns.
"""

from __future__ import annotations

from typing import Optional, Union

from ..config import DataConfig
from ..errors import InvalidInputError


def load_data(data: Union[DataConfig, object], meta, split: str, limit: Optional[int]):
    """The evaluation images: a SegDataset from `data`, checked against the model, cut to
    `limit`."""
    from .datasets import load_dataset

    if isinstance(data, DataConfig):
        if data.labels is None and data.num_classes is None:
            data = data.replace(labels=meta.labels)  # the model says what its classes are
        dataset = load_dataset(data, split)
    else:
        dataset = data
    if dataset.num_classes != meta.num_classes:
        raise InvalidInputError(
            f"the dataset has {dataset.num_classes} classes "
            f"but the model predicts {meta.num_classes}"
        )
    if limit is not None:
        if limit < 1:
            raise InvalidInputError(f"--limit must be >= 1, got {limit}")
        keep = min(limit, len(dataset))
        dataset = subset(dataset, range(keep))
    if len(dataset) == 0:
        raise InvalidInputError("the dataset has no images to evaluate")
    return dataset


def subset(dataset, indices):
    """The items `indices` of a SegDataset, as a SegDataset (labels, ignore label, names kept)."""
    from .datasets import SegDataset

    indices = list(indices)
    return SegDataset(
        [dataset.images[i] for i in indices],
        [dataset.masks[i] for i in indices],
        dataset.labels,
        dataset.ignore_label,
        [dataset.names[i] for i in indices],
        dataset.split,
    )

"""What a report evaluates on: the dataset, the int8 calibration images, the protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..config import DataConfig
from ..errors import InvalidInputError


def default_calibration(data) -> Optional[str]:
    """Calibration images for int8 when none are given: the dataset's training images.

    Never the evaluated split, so int8 is not calibrated on the images it is scored on.
    None (the converter's own default) for the synthetic dataset and in-memory data.
    """
    if not isinstance(data, DataConfig) or data.format == "synthetic" or not data.path:
        return None
    if data.format == "folder":
        from ..data.folder import split_folders

        try:
            return str(split_folders(Path(data.path), data.train_splits[0])[0])
        except InvalidInputError:
            pass
    raise InvalidInputError(
        f"{data.path}: cannot tell which images to calibrate int8 on; give --calib-data FOLDER "
        "(a few hundred training images, not the evaluated split)"
    )


def protocol_of(meta, dataset, data, split: str, scales, flip: bool, calib_data=None) -> dict:
    """The evaluation protocol: everything that must match for two reports to compare."""
    source = (
        {"format": data.format, "path": data.path}
        if isinstance(data, DataConfig)
        else {"format": "in-memory"}
    )
    return {
        "dataset": {**source, "split": split},
        "num_images": len(dataset),
        "input_size": list(meta.input_size),
        "resize": meta.resize,
        "channel_order": meta.channel_order,
        "mean": list(meta.mean),
        "std": list(meta.std),
        "scales": list(scales),
        "flip": bool(flip),
        "ignore_label": dataset.ignore_label,
        "metadata_ignore_label": meta.ignore_label,
        "num_classes": meta.num_classes,
        "labels": list(meta.labels),
        "batch": 1,
        "int8_calibration": "the converter's default"
        if calib_data is None
        else ("an in-memory array" if isinstance(calib_data, np.ndarray) else str(calib_data)),
    }

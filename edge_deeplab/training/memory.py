"""A memory estimate of a training run, checked before anything is allocated.

An absurd `--input-size` (10000x10000) would otherwise take all of a machine's memory
before failing somewhere deep in TensorFlow or numpy. The estimate is deliberately simple:
activations kept for the backward pass grow with batch x pixels (about 10 KB per pixel at
alpha 1.0, output stride 16: measured ~5 GB at batch 8, 257x257), twice that at output
stride 8; decoded datasets take 4 bytes per pixel (RGB + mask); the validation model runs
on batches of 16 at the input size.
"""

from __future__ import annotations

import os
from typing import Optional

from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError

GB = 1024**3
_ACTIVATION_BYTES_PER_PIXEL = 10_000  # training, alpha 1.0, OS16
_FRAMEWORK_BYTES = 1.5 * GB  # TensorFlow itself, the model, the optimizer state


def physical_memory() -> Optional[int]:
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_training_bytes(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig,
                            dataset_pixels: Optional[int] = None) -> int:
    """Rough peak bytes of a run; `dataset_pixels` (all images) when known, else synthetic's."""
    crop = train_cfg.crop_size or model_cfg.input_size
    stride_factor = 2.0 if model_cfg.output_stride == 8 else 1.0
    width_factor = 0.5 + 0.5 * model_cfg.alpha
    per_pixel = _ACTIVATION_BYTES_PER_PIXEL * stride_factor * width_factor
    train = train_cfg.batch_size * crop[0] * crop[1] * per_pixel
    val = 16 * model_cfg.input_size[0] * model_cfg.input_size[1] * per_pixel / 20  # inference only
    if dataset_pixels is None and data_cfg.format == "synthetic":
        h, w = data_cfg.synthetic_size
        dataset_pixels = (data_cfg.synthetic_train + data_cfg.synthetic_val) * h * w
    data = 4 * (dataset_pixels or 0)
    return int(train + val + data + _FRAMEWORK_BYTES)


def check_training_memory(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig,
                          limit_gb: Optional[float] = None, dataset_pixels: Optional[int] = None) -> int:
    """The estimate in bytes; raises when it exceeds `limit_gb` (default 90% of this machine's RAM).

    Raises:
        InvalidInputError: naming the estimate, the limit and the flag that overrides it.
    """
    estimate = estimate_training_bytes(model_cfg, data_cfg, train_cfg, dataset_pixels)
    if limit_gb is not None and not limit_gb > 0:
        raise InvalidInputError(f"--memory-limit must be a positive number of GB, got {limit_gb}")
    total = physical_memory()
    limit = limit_gb * GB if limit_gb else (0.9 * total if total else None)
    if limit is not None and estimate > limit:
        crop = train_cfg.crop_size or model_cfg.input_size
        raise InvalidInputError(
            f"this run needs about {estimate / GB:.1f} GB of memory (batch {train_cfg.batch_size} at "
            f"{crop[0]}x{crop[1]}, input {model_cfg.input_size[0]}x{model_cfg.input_size[1]}) and the limit is "
            f"{limit / GB:.1f} GB; lower --input-size / --crop-size / --batch-size, or raise --memory-limit GB "
            "on a bigger machine"
        )
    return estimate

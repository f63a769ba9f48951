"""Where calibration and parity images come from, checked before any conversion starts.

The source is "synthetic", a folder of images (searched recursively, mask folders
skipped) or an array of RGB uint8 pixels; the images are drawn by THE one image source
(`edge_deeplab.data.calibration`) and calibration input goes through THE shared
preprocessing, exactly as the runtimes' Segmenter will feed the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_deeplab.errors import InvalidInputError

from .job import Progress


def calibration_source(calib_data, source):
    """The source: "synthetic", an existing folder/image Path, or checked uint8 (N, H, W, 3)."""
    if calib_data is None:
        if source.data_format == "synthetic":
            return "synthetic"
        raise InvalidInputError(
            f"{source.path}: was not trained on the synthetic dataset; give --calib-data PATH "
            "(a folder of a few hundred of your images) for calibration and the parity check"
        )
    if isinstance(calib_data, np.ndarray):
        if (
            calib_data.dtype != np.uint8
            or calib_data.ndim != 4
            or calib_data.shape[-1] != 3
            or not len(calib_data)
        ):
            raise InvalidInputError(
                f"calibration array is {calib_data.dtype} {calib_data.shape}; "
                "expected uint8 RGB pixels (N >= 1, H, W, 3)"
            )
        return calib_data
    if str(calib_data) == "synthetic":
        return "synthetic"
    path = Path(calib_data)
    if not path.exists():
        raise InvalidInputError(f"--calib-data {path}: no such folder or image")
    return path


def calibration(calib_source, source, n: int, say: Progress) -> np.ndarray:
    """uint8 (N, H, W, 3) calibration pixels at the model's input (THE resize), validated."""
    from edge_deeplab.data.calibration import calibration_pixels

    meta = source.metadata
    say(f"  calibration: up to {n} images from {_describe(calib_source)}")
    pixels = np.asarray(calibration_pixels(calib_source, meta, n))
    expected = (*meta.input_size, 3)
    if pixels.ndim != 4 or pixels.shape[0] == 0 or tuple(pixels.shape[1:]) != expected:
        raise InvalidInputError(
            f"calibration data has shape {pixels.shape}; "
            f"expected (N >= 1, {expected[0]}, {expected[1]}, 3)"
        )
    return pixels


def parity_image_set(calib_source, source, n: int):
    """RGB uint8 parity images from the calibration source (not the calibration images)."""
    from edge_deeplab.data.calibration import sample_images

    return sample_images(calib_source, source.metadata, n, "parity")


def _describe(calib_source) -> str:
    if isinstance(calib_source, np.ndarray):
        return f"an array {calib_source.shape} {calib_source.dtype}"
    return str(calib_source)

"""The `voc` format: PASCAL VOC's JPEGImages, SegmentationClass and split lists.

`ROOT/ImageSets/Segmentation/<split>.txt` lists image ids; each id has
`ROOT/JPEGImages/<id>.jpg` and `ROOT/SegmentationClass/<id>.png`. VOC masks are palette
PNGs; OpenCV expands the palette to colours, which are mapped back to indices through the
VOC colour map (255, the object borders, is the ignore label). A colour outside the map is
an error naming the file. Single-channel index masks are read as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..config import DataConfig
from ..errors import InvalidInputError
from ..imageio import _decode, _read_bytes
from ..metadata import voc_palette
from ..presets import PASCAL_VOC_LABELS
from .dataset_base import DATASETS, SegDataset, load_pairs, require_folder, resolve_labels

_COLOURS = {(r << 16) | (g << 8) | b: index for index, (r, g, b) in enumerate(voc_palette(256))}


def read_voc_mask(path) -> np.ndarray:
    """A VOC mask (palette PNG, colour PNG in the VOC map, or index PNG) -> uint8 (H, W)."""
    array = _decode(path, _read_bytes(path))
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    bgr = array[:, :, :3].astype(np.int32)
    packed = (bgr[:, :, 2] << 16) | (bgr[:, :, 1] << 8) | bgr[:, :, 0]
    colours, inverse = np.unique(packed, return_inverse=True)
    indices = np.empty(len(colours), np.uint8)
    for k, colour in enumerate(colours):
        if int(colour) not in _COLOURS:
            r, g, b = int(colour) >> 16, (int(colour) >> 8) & 255, int(colour) & 255
            raise InvalidInputError(
                f"{path}: colour ({r}, {g}, {b}) is not in the VOC colour map; "
                "expected a VOC palette PNG or a single-channel label map"
            )
        indices[k] = _COLOURS[int(colour)]
    return indices[inverse.reshape(packed.shape)]


@DATASETS.register("voc")
class VOCFormat:
    """Loads a PASCAL VOC-layout split into memory (see the module docstring)."""

    order = 30  # where `--format` lists it

    @staticmethod
    def load(config: DataConfig, split: str) -> SegDataset:
        deps.cv2()  # fail early, naming the extra, if OpenCV is missing
        root = require_folder(Path(config.path), "VOC root")
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise InvalidInputError(f"{list_file}: no such split list (VOC layout expects it)")
        ids = [
            line.strip().split()[0] for line in list_file.read_text().splitlines() if line.strip()
        ]
        if not ids:
            raise InvalidInputError(f"{list_file}: lists no images")
        images_dir = require_folder(root / "JPEGImages", "VOC images")
        masks_dir = require_folder(root / "SegmentationClass", "VOC masks")
        pairs = []
        for image_id in ids:
            image = images_dir / f"{image_id}.jpg"
            if not image.is_file():
                image = next(iter(sorted(images_dir.glob(f"{image_id}.*"))), image)
            mask = masks_dir / f"{image_id}.png"
            for path in (image, mask):
                if not path.is_file():
                    raise InvalidInputError(f"{path}: listed in {list_file.name} but missing")
            pairs.append((image, mask))
        labels = resolve_labels(config, PASCAL_VOC_LABELS)
        return load_pairs(pairs, labels, config.ignore_label, split, mask_reader=read_voc_mask)

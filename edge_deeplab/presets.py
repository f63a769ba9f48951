"""Presets for published models that carry no metadata of ours.

A preset fills the metadata fields a foreign model lacks (labels, normalisation, channel
order, palette); the input size and the head kind are read from the model's tensors.
"""

from __future__ import annotations

from typing import Any, Dict

from .metadata import voc_palette
from .registry import Registry

PASCAL_VOC_LABELS = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tv",
)

CAMVID_LABELS = (
    "sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car",
    "pedestrian", "bicyclist",
)

# SegNet's CamVid colours (the camvid11 palette), RGB.
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)

PRESETS: Registry[Dict[str, Any]] = Registry("preset")

PRESETS.register("pascal-voc")(
    {
        "labels": PASCAL_VOC_LABELS,
        "mean": (127.5, 127.5, 127.5),
        "std": (127.5, 127.5, 127.5),
        "channel_order": "RGB",
        "palette": voc_palette(21),
        "ignore_label": 255,
    }
)

PRESETS.register("camvid")(
    {
        "labels": CAMVID_LABELS,
        "mean": (127.5, 127.5, 127.5),
        "std": (127.5, 127.5, 127.5),
        "channel_order": "RGB",
        "palette": CAMVID_PALETTE,
        "ignore_label": 11,
    }
)

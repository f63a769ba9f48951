"""The metadata of an OpenVINO IR, written and read in one place (converter and runtime).

An IR's rt_info carries our `edge_deeplab` JSON and, for OpenVINO's own clients,
`model_info`: what openvino-model-api (OpenVINO's demos, Geti) reads to pick the model
wrapper and configure its pre/post-processing. model_api's SegmentationModel wants
per-class scores in NCHW (1, C, H, W) and takes images as OpenCV gives them (BGR), so a
logits IR outputs NCHW scores (`SCORES_LAYOUT`; our runtime hands them on as NHWC) and says
`reverse_input_channels`. Its class-map path (a 3-D output) fails in model_api 0.4.7
(`np.argmax(axis=2)` of a 2-D map), so an argmax IR names a model type model_api does not
have: it refuses the IR with that name instead of crashing or misreading it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Optional

from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.metadata_io import parse_metadata

MODEL_INFO = "model_info"
SCORES_LAYOUT = "NCHW"
NOT_FOR_MODEL_API = "edge-deeplab class map (for model_api convert with --head logits)"


def client_ready(meta: ArtifactMetadata) -> bool:
    """Whether model_api's SegmentationModel reads this IR right."""
    return meta.head == "logits"


def model_info(meta: ArtifactMetadata) -> Dict[str, str]:
    """model_api's parameters (strings, lists space-separated) for an IR with `meta`."""
    info = {
        "model_type": "Segmentation" if client_ready(meta) else NOT_FOR_MODEL_API,
        # A label with a space would split in two (model_api splits lists on whitespace).
        "labels": " ".join(label.replace(" ", "_") for label in meta.labels),
        "reverse_input_channels": str(meta.channel_order == "RGB"),
        "resize_type": "standard" if meta.resize == "stretch" else "fit_to_window_letterbox",
        "pad_value": "0",
        "blur_strength": "-1",  # a plain argmax of the scores, as our Segmenter does
        "soft_threshold": "-inf",
        "return_soft_prediction": "False",
    }
    if meta.input_kind == "normalized":  # pixel-input IRs normalise in their graph
        info["mean_values"] = " ".join(f"{v:g}" for v in meta.mean)
        info["scale_values"] = " ".join(f"{v:g}" for v in meta.std)
    return info


def embed(path, meta: ArtifactMetadata) -> None:
    """Rewrite rt_info/edge_deeplab and rt_info/model_info in the .xml (the .bin untouched)."""
    tree = ET.parse(path)
    root = tree.getroot()
    rt_info = _child(root, "rt_info")
    _child(rt_info, METADATA_KEY).set("value", meta.to_json())
    info = _child(rt_info, MODEL_INFO)
    for key, value in model_info(meta).items():
        _child(info, key).set("value", value)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def read(model, path="model") -> Optional[ArtifactMetadata]:
    """The metadata in an `openvino.Model`'s rt_info, or None."""
    if not model.has_rt_info(METADATA_KEY):
        return None
    value = model.get_rt_info(METADATA_KEY)
    text = value.astype(str) if hasattr(value, "astype") else str(value)
    return parse_metadata(text, Path(path))


def scores_are_planar(model) -> bool:
    """Whether the model's output is NCHW scores (model_api's layout) to hand on as NHWC."""
    from openvino import layout_helpers

    layout = layout_helpers.get_layout(model.outputs[0])
    return not layout.empty and layout.to_string() == f"[{','.join(SCORES_LAYOUT)}]"


def _child(parent, tag: str):
    node = parent.find(tag)
    return node if node is not None else ET.SubElement(parent, tag)

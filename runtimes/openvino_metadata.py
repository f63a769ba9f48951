"""The metadata of an OpenVINO IR, written and read in one place (converter and runtime).

An IR's rt_info carries our `edge_deeplab` JSON and, for OpenVINO's own clients,
`model_info` (`model_api_info.py`: what openvino-model-api reads, and why).
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from edge_deeplab.errors import ModelLoadError
from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.metadata_io import parse_metadata

from .model_api_info import MODEL_INFO, SCORES_LAYOUT, client_ready, model_info

__all__ = ["MODEL_INFO", "SCORES_LAYOUT", "client_ready", "embed", "model_info", "read", "scores_are_planar"]


def embed(path, meta: ArtifactMetadata) -> None:
    """Rewrite rt_info/edge_deeplab and rt_info/model_info in the .xml (the .bin untouched)."""
    tree = ET.parse(path)
    root = tree.getroot()
    rt_info = _child(root, "rt_info")
    _child(rt_info, METADATA_KEY).set("value", meta.to_json())
    info = _child(rt_info, MODEL_INFO)
    for key, value in model_info(meta).items():
        _child(info, key).set("value", value)
    weights = Path(path).with_suffix(".bin")
    if weights.is_file():
        _child(rt_info, WEIGHTS_KEY).set("value", weights_digest(weights))
    tree.write(path, encoding="utf-8", xml_declaration=True)


# The .xml names its .bin's size and SHA-256: the pair is published .bin first, .xml last,
# and a .bin that is not the one its .xml was written with (a crash between the renames
# over an older pair, a copy of one file) is refused on load instead of run as garbage.
WEIGHTS_KEY = "edge_deeplab_weights"


def weights_digest(weights: Path) -> str:
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{weights.stat().st_size}:{digest.hexdigest()}"


def check_weights(model, path: Path) -> None:
    """Refuse an IR whose .bin is not the one its .xml recorded (foreign IRs record none)."""
    if not model.has_rt_info(WEIGHTS_KEY):
        return
    value = model.get_rt_info(WEIGHTS_KEY)
    expected = value.astype(str) if hasattr(value, "astype") else str(value)
    weights = Path(path).with_suffix(".bin")
    if not weights.is_file() or weights_digest(weights) != expected:
        raise ModelLoadError(
            f"{path}: {weights.name} is not the weights file this .xml was written with (a conversion "
            "cut short, or one file of the pair copied); convert again"
        )


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

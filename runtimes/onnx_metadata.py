"""The metadata of an .onnx, written and read in one place (converter and runtime import it).

Two kinds of `metadata_props` entries: ours (`edge_deeplab`: the ArtifactMetadata JSON) and
OpenVINO model_api's `model_info ...` keys (`model_api_info.onnx_props`), which let its
SegmentationModel read labels and layout. The runtime reads them from its open session
(`from_props`); `read` reads them without one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from edge_deeplab import deps
from edge_deeplab.errors import ModelLoadError
from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.metadata_io import metadata_from_props

from . import model_api_info


def embed(path, meta: ArtifactMetadata) -> None:
    """Set our entry and model_api's keys, keep the others (rewrites the file in place)."""
    onnx = deps.optional("onnx", "onnx", "writing ONNX metadata")
    model = onnx.load(str(path))
    ours = {METADATA_KEY: meta.to_json(), **model_api_info.onnx_props(meta)}
    kept = [p for p in model.metadata_props if p.key not in ours]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in ours.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def from_props(props: Mapping[str, str], path) -> Optional[ArtifactMetadata]:
    """Our metadata from a model's `metadata_props` (None when a foreign model has none)."""
    return metadata_from_props(props, path)


def read(path) -> Optional[ArtifactMetadata]:
    """Through `onnx` (the graph only) or, without it, `onnxruntime`; None when absent."""
    path = Path(path)
    if deps.available("onnx"):
        import onnx

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
            raise ModelLoadError(f"{path}: not a readable ONNX model: {exc}") from None
        props = {p.key: p.value for p in model.metadata_props}
    else:
        ort = deps.onnxruntime("reading ONNX metadata")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        props = dict(session.get_modelmeta().custom_metadata_map)
    return from_props(props, path)

"""Embedding ArtifactMetadata in every artifact, and reading it back without TensorFlow.

Where each format keeps it (under the key `METADATA_KEY`, "edge_deeplab"):

- TFLite: an associated file `edge_deeplab.json` in a zip archive appended to the
  flatbuffer, the way TFLite metadata stores associated files (MediaPipe models do the
  same). The interpreter ignores the trailing bytes; `zipfile` finds the archive from the end.
- ONNX: `metadata_props["edge_deeplab"]`.
- OpenVINO IR: `rt_info["edge_deeplab"]` (a JSON string inside the .xml).
- TensorRT engine: a JSON file beside the engine (`model_fp16.engine.json`).

The readers import only the standard library, `onnx`/`onnxruntime` or `openvino`, never
TensorFlow, so the edge runtimes can use them.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Optional

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, ModelLoadError
from edge_deeplab.imageio import atomic_write_text
from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.runs import sidecar_metadata_path

TFLITE_ASSOCIATED_FILE = f"{METADATA_KEY}.json"


# --- TFLite -----------------------------------------------------------------------------


def embed_tflite_metadata(path, meta: ArtifactMetadata) -> None:
    """Append (or replace) the `edge_deeplab.json` associated-file zip of a .tflite file."""
    path = Path(path)
    content = _strip_appended_zip(path.read_bytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(TFLITE_ASSOCIATED_FILE, meta.to_json())
    path.write_bytes(content + buffer.getvalue())


def read_tflite_metadata(path) -> Optional[ArtifactMetadata]:
    """The metadata appended to a .tflite file, or None for a model without it.

    Pure Python (zipfile): no TensorFlow, no interpreter.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if TFLITE_ASSOCIATED_FILE not in archive.namelist():
                return None
            text = archive.read(TFLITE_ASSOCIATED_FILE).decode("utf-8")
    except zipfile.BadZipFile:
        return None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror})") from None
    return _parse(text, path)


def _strip_appended_zip(content: bytes) -> bytes:
    """The flatbuffer without the archive a previous embed appended."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            # zipfile shifts offsets by the bytes in front of the archive: the first local
            # header is where the model ends.
            starts = [info.header_offset for info in archive.infolist()]
    except zipfile.BadZipFile:
        return content
    return content[: min(starts)] if starts else content


# --- ONNX -------------------------------------------------------------------------------


def embed_onnx_metadata(path, meta: ArtifactMetadata) -> None:
    """Set `metadata_props["edge_deeplab"]` of an .onnx file (rewrites the file in place)."""
    onnx = deps._import("onnx", "onnx", "onnx", "writing ONNX metadata")
    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.save(model, str(path))


def read_onnx_metadata(path) -> Optional[ArtifactMetadata]:
    """`metadata_props["edge_deeplab"]` of an .onnx file through `onnx` (graph only) or
    `onnxruntime` (its model metadata), or None."""
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
    return metadata_from_props(props, path)


def metadata_from_props(props: dict, path="model") -> Optional[ArtifactMetadata]:
    """The metadata under METADATA_KEY of a key -> JSON string map (ONNX custom metadata)."""
    text = props.get(METADATA_KEY)
    return None if text is None else _parse(text, path)


# --- OpenVINO ---------------------------------------------------------------------------


def set_openvino_metadata(model, meta: ArtifactMetadata) -> None:
    """Store the metadata in an `openvino.Model`'s rt_info (saved into the .xml)."""
    model.set_rt_info(meta.to_json(), METADATA_KEY)


def openvino_model_metadata(model, path="model") -> Optional[ArtifactMetadata]:
    """The metadata in an `openvino.Model`'s rt_info, or None."""
    if not model.has_rt_info(METADATA_KEY):
        return None
    value = model.get_rt_info(METADATA_KEY)
    text = value.astype(str) if hasattr(value, "astype") else str(value)
    return _parse(text, path)


def read_openvino_metadata(path) -> Optional[ArtifactMetadata]:
    """rt_info["edge_deeplab"] of an OpenVINO IR .xml, or None."""
    ov = deps.openvino("reading OpenVINO metadata")
    try:
        model = ov.Core().read_model(str(path))
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{path}: not a readable OpenVINO IR: {str(exc).splitlines()[0]}"
        ) from None
    return openvino_model_metadata(model, path)


# --- TensorRT (and anything else): a JSON beside the artifact ---------------------------


def write_sidecar_metadata(path, meta: ArtifactMetadata) -> Path:
    target = sidecar_metadata_path(Path(path))
    atomic_write_text(target, json.dumps(meta.to_dict(), indent=2, sort_keys=True))
    return target


def read_sidecar_metadata(path) -> Optional[ArtifactMetadata]:
    target = sidecar_metadata_path(Path(path))
    if not target.is_file():
        return None
    return _parse(target.read_text(encoding="utf-8"), target)


def read_metadata(path) -> Optional[ArtifactMetadata]:
    """The embedded metadata of any artifact, chosen by suffix."""
    suffix = Path(path).suffix.lower()
    readers = {
        ".tflite": read_tflite_metadata,
        ".onnx": read_onnx_metadata,
        ".xml": read_openvino_metadata,
    }
    return readers.get(suffix, read_sidecar_metadata)(path)


def _parse(text: str, path) -> ArtifactMetadata:
    try:
        return ArtifactMetadata.from_json(text)
    except InvalidInputError as exc:
        raise ModelLoadError(
            f"{path}: embedded {METADATA_KEY} metadata is invalid: {exc}"
        ) from None

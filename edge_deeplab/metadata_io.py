"""Reading and writing ArtifactMetadata with the standard library only.

The edge path uses these: a runtime reads the metadata of the file it opens without
importing a converter or a framework. Formats that store the metadata inside the artifact
(TFLite, ONNX, OpenVINO) do so in their converter/runtime pair; every other format keeps it
in a JSON file beside the artifact (`model_fp16.engine.json`), written and read here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional

from .errors import InvalidInputError, ModelLoadError
from .imageio import atomic_write_text
from .limits import MAX_METADATA_BYTES
from .metadata import METADATA_KEY, ArtifactMetadata
from .runs import sidecar_metadata_path


def parse_metadata(text: str, path) -> ArtifactMetadata:
    """Metadata JSON -> ArtifactMetadata; invalid JSON is a ModelLoadError naming `path`."""
    MAX_METADATA_BYTES.check(f"{path}: the embedded {METADATA_KEY} metadata", len(text), ModelLoadError)
    try:
        return ArtifactMetadata.from_json(text)
    except InvalidInputError as exc:
        raise ModelLoadError(f"{path}: embedded {METADATA_KEY} metadata is invalid: {exc}") from None


def metadata_from_props(props: Mapping[str, str], path="model") -> Optional[ArtifactMetadata]:
    """The metadata under METADATA_KEY of a key -> JSON string map (ONNX custom metadata)."""
    text = props.get(METADATA_KEY)
    return None if text is None else parse_metadata(text, path)


def write_sidecar_metadata(path, meta: ArtifactMetadata) -> Path:
    """Write `meta` as the JSON file beside the artifact at `path`; returns its path."""
    target = sidecar_metadata_path(Path(path))
    atomic_write_text(target, json.dumps(meta.to_dict(), indent=2, sort_keys=True))
    return target


def read_sidecar_metadata(path) -> Optional[ArtifactMetadata]:
    """The JSON metadata beside the artifact at `path`, or None when there is none."""
    target = sidecar_metadata_path(Path(path))
    if not target.is_file():
        return None
    return read_metadata_file(target)


def read_metadata_file(path) -> ArtifactMetadata:
    """A metadata JSON file, read bounded (MAX_METADATA_BYTES); a bad one is a ModelLoadError."""
    limit = MAX_METADATA_BYTES.value
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror})") from None
    MAX_METADATA_BYTES.check(f"{path}", len(data), ModelLoadError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: metadata is not UTF-8 text") from None
    return parse_metadata(text, path)

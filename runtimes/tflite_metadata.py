"""The metadata of a .tflite, written and read in one place (converter and runtime import it).

A .tflite carries two things:
- our `edge_deeplab.json` and the label file `labels.txt`, as associated files in a zip
  appended to the flatbuffer (the way TFLite Metadata packs associated files; the
  interpreter ignores the trailing bytes, `zipfile` finds the archive from the end);
- TFLite Metadata (schema `metadata_schema.fbs`, identifier "M001") in the model buffer
  named "TFLITE_METADATA": what LiteRT's support library and MediaPipe's ImageSegmenter
  read: an RGB image input (NormalizationOptions when it is float), the output's meaning
  and the label file as its TENSOR_AXIS_LABELS.

The metadata flatbuffer is written with `flatbuffers` (a dependency of ai-edge-litert)
field by field from the published schema; the model is re-packed with LiteRT's own
generated schema. Both ship with `edge-deeplab[tflite]`, so no TensorFlow is needed.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Optional

from edge_deeplab.errors import ConversionError, ModelLoadError
from edge_deeplab.limits import MAX_METADATA_BYTES
from edge_deeplab.metadata import METADATA_KEY, ArtifactMetadata
from edge_deeplab.metadata_io import parse_metadata

ASSOCIATED_FILE = f"{METADATA_KEY}.json"
LABELS_FILE = "labels.txt"
TFLITE_METADATA = "TFLITE_METADATA"  # the model-metadata entry MediaPipe and LiteRT look up
# An in-graph argmax gives an int64 class map: MediaPipe's ImageSegmenter takes any uint8
# output for confidence masks (it loaded our uint8 class map without a word, and was
# wrong) but refuses int64 ("Unsupported output tensor type:INT64"). Logits artifacts are
# the ones it reads right (`client_ready`).
CLASS_MAP_DTYPE = "int64"
_MIN_PARSER_VERSION = "1.0.0"  # only fields of the schema's first version are written
_AXIS_LABELS, _RGB, _IMAGE_PROPERTIES, _FEATURE_PROPERTIES, _NORMALIZATION = 2, 1, 2, 1, 1


def client_ready(meta: ArtifactMetadata) -> bool:
    """Whether MediaPipe's ImageSegmenter reads an artifact with `meta` right: scores out,
    RGB in, stretched, and float or raw-pixel input (it feeds a uint8 input raw pixels, so
    a quantised normalised uint8 input would be misread; int8 inputs it refuses)."""
    plain_input = meta.input_kind == "pixels" or meta.source.get("io_dtype") in (None, "float32")
    return meta.head == "logits" and meta.channel_order == "RGB" and meta.resize == "stretch" and plain_input


def embed(content: bytes, meta: ArtifactMetadata) -> bytes:
    """`content` (a .tflite, with or without earlier metadata) with `meta` embedded."""
    model = _with_model_metadata(strip_appended_zip(content), meta)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_FILE, "\n".join(meta.labels) + "\n")
        archive.writestr(ASSOCIATED_FILE, meta.to_json())
    return model + buffer.getvalue()


def read(path) -> Optional[ArtifactMetadata]:
    """The `edge_deeplab.json` appended to the flatbuffer (pure Python), or None.

    The archive is someone else's file: its member is read only when stored or deflated and
    declared under MAX_METADATA_BYTES, and inflated with the same cap whatever it declares.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return None  # no archive appended: a foreign .tflite
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror})") from None
    with archive:
        if ASSOCIATED_FILE not in archive.namelist():
            return None
        try:
            data = _read_member(archive, archive.getinfo(ASSOCIATED_FILE), path)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ModelLoadError(f"{path}: embedded {ASSOCIATED_FILE} is damaged ({exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: embedded {ASSOCIATED_FILE} is not UTF-8 text") from None
    return parse_metadata(text, path)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelLoadError(
            f"{path}: embedded {ASSOCIATED_FILE} uses zip compression method {info.compress_type}; "
            "only stored (0) and deflated (8) are read"
        )
    MAX_METADATA_BYTES.check(f"{path}: embedded {ASSOCIATED_FILE} (declared size)", info.file_size, ModelLoadError)
    limit = MAX_METADATA_BYTES.value
    with archive.open(info) as member:
        data = member.read(limit + 1)  # zipfile inflates in chunks: bounded whatever is declared
    MAX_METADATA_BYTES.check(f"{path}: embedded {ASSOCIATED_FILE}", len(data), ModelLoadError)
    return data


def strip_appended_zip(content: bytes) -> bytes:
    """The flatbuffer without the metadata archive an earlier embed appended."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            # zipfile shifts offsets by the bytes in front of the archive: the first local
            # header is where the model ends.
            starts = [info.header_offset for info in archive.infolist()]
    except zipfile.BadZipFile:
        return content
    return content[: min(starts)] if starts else content


def _with_model_metadata(content: bytes, meta: ArtifactMetadata) -> bytes:
    """The model with TFLite Metadata for `meta` as its TFLITE_METADATA buffer (replacing
    an earlier one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    except (TypeError, ValueError, IndexError, struct.error) as exc:  # what flatbuffers raises
        raise ConversionError(f"not a TFLite flatbuffer LiteRT's schema reads ({exc})") from None
    graph = model.subgraphs[0]
    float_input = graph.tensors[graph.inputs[0]].type == schema.TensorType.FLOAT32
    metadata = _metadata_flatbuffer(meta, float_input)
    model.metadata = [m for m in (model.metadata or []) if _name(m) != TFLITE_METADATA]
    model.buffers = model.buffers or [schema.BufferT()]
    entry = schema.MetadataT()
    entry.name, entry.buffer = TFLITE_METADATA, len(model.buffers)
    data = schema.BufferT()
    data.data = bytearray(metadata)
    model.buffers.append(data)
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(content) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _name(entry) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _metadata_flatbuffer(meta: ArtifactMetadata, float_input: bool) -> bytes:
    """ModelMetadata (root of metadata_schema.fbs) describing the image in and the scores out."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    image = _input_tensor(b, meta, float_input)
    output = _output_tensor(b, meta)
    inputs, outputs = _vector(b, [image]), _vector(b, [output])
    name = b.CreateString("segmentation")
    b.StartObject(10)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraph = b.EndObject()
    strings = [b.CreateString(s) for s in (
        "edge-deeplab DeepLab v3 MobileNetV2",
        f"Semantic segmentation, {meta.num_classes} classes, {meta.format} {meta.precision}",
        str(meta.version), "edge-deeplab", _MIN_PARSER_VERSION)]
    subgraphs = _vector(b, [subgraph])
    b.StartObject(8)  # ModelMetadata
    for slot, value in zip((0, 1, 2, 4, 7), strings):
        b.PrependUOffsetTRelativeSlot(slot, value, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def _input_tensor(b, meta: ArtifactMetadata, float_input: bool) -> int:
    """TensorMetadata of the image: RGB, its size, and (float input) the normalisation."""
    b.StartObject(2)  # ImageSize
    b.PrependUint32Slot(0, meta.input_size[1], 0)
    b.PrependUint32Slot(1, meta.input_size[0], 0)
    size = b.EndObject()
    b.StartObject(2)  # ImageProperties
    b.PrependInt8Slot(0, _RGB, 0)
    b.PrependUOffsetTRelativeSlot(1, size, 0)
    content = _content(b, _IMAGE_PROPERTIES, b.EndObject())
    units = [_normalization(b, meta)] if float_input else []
    return _tensor(b, "image", "RGB image", content, units, [])


def _normalization(b, meta: ArtifactMetadata) -> int:
    mean, std = (_float_vector(b, values) for values in (meta.mean, meta.std))
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, mean, 0)
    b.PrependUOffsetTRelativeSlot(1, std, 0)
    options = b.EndObject()
    b.StartObject(2)  # ProcessUnit: options_type, options (a union takes two slots)
    b.PrependUint8Slot(0, _NORMALIZATION, 0)
    b.PrependUOffsetTRelativeSlot(1, options, 0)
    return b.EndObject()


def _output_tensor(b, meta: ArtifactMetadata) -> int:
    """TensorMetadata of the output: per-class scores with the label file, or a class map."""
    b.StartObject(0)  # FeatureProperties
    content = _content(b, _FEATURE_PROPERTIES, b.EndObject())
    name, description = b.CreateString(LABELS_FILE), b.CreateString("class names, index order")
    b.StartObject(5)  # AssociatedFile
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, description, 0)
    b.PrependInt8Slot(2, _AXIS_LABELS, 0)
    labels = b.EndObject()
    if meta.head == "argmax":
        return _tensor(b, "labels", "class index per pixel (1, H, W)", content, [], [])
    return _tensor(b, "scores", "per-class scores (1, H, W, classes); argmax is the class map",
                   content, [], [labels])


def _content(b, kind: int, properties: int) -> int:
    b.StartObject(3)  # Content: content_properties_type, content_properties, range
    b.PrependUint8Slot(0, kind, 0)
    b.PrependUOffsetTRelativeSlot(1, properties, 0)
    return b.EndObject()


def _tensor(b, name: str, description: str, content: int, units: list, files: list) -> int:
    name_off, description_off = b.CreateString(name), b.CreateString(description)
    units_off = _vector(b, units) if units else 0
    files_off = _vector(b, files) if files else 0
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, name_off, 0)
    b.PrependUOffsetTRelativeSlot(1, description_off, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if units_off:
        b.PrependUOffsetTRelativeSlot(4, units_off, 0)
    if files_off:
        b.PrependUOffsetTRelativeSlot(6, files_off, 0)
    return b.EndObject()


def _vector(b, offsets: list) -> int:
    b.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _float_vector(b, values) -> int:
    b.StartVector(4, len(values), 4)
    for value in reversed(values):
        b.PrependFloat32(float(value))
    return b.EndVector()

"""ArtifactMetadata: what a runtime needs to configure itself, embedded in every artifact.

TFLite carries it as an associated JSON file inside the flatbuffer, ONNX as
`metadata_props`, OpenVINO as `rt_info`, a Keras run and a TensorRT engine as a JSON file
beside the model. Published models without it get the same fields from a preset or flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from .errors import InvalidInputError
from .limits import MAX_INPUT_SIDE

METADATA_KEY = "edge_deeplab"  # key / associated-file stem under which artifacts carry it
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)  # schema versions this code reads; others are refused, not guessed at
# Pixel units: 0..255 in practice; far past that a mean or std is damage, not a choice.
MAX_NORMALIZATION = 1e5
OUTPUT_HEADS = ("logits", "argmax")  # logits out (argmax on the host) or a class map out
RESOLUTIONS = ("full", "feature")  # output at input size, or at the feature map's size
RESIZE_MODES = ("stretch", "letterbox")
CHANNEL_ORDERS = ("RGB", "BGR")
# What the model's input holds: normalised values ((pixel - mean) / std, quantised when the
# input is int8/uint8), or the uint8 pixels themselves with the normalisation in its graph.
INPUT_KINDS = ("normalized", "pixels")

Color = Tuple[int, int, int]
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (ESC, CSI)


def voc_palette(num_classes: int) -> Tuple[Color, ...]:
    """The PASCAL VOC colour map (bit-interleaved), extended to any number of classes."""
    colors = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


@dataclass(frozen=True)
class ArtifactMetadata:
    """Everything pre/post-processing needs to know about a model.

    Attributes:
        labels: class names, index order.
        input_size: (height, width) of the model input.
        mean, std: per-channel normalisation in pixel units, in the model's channel order:
            the model sees (pixel - mean) / std.
        channel_order: "RGB" or "BGR", what the model expects.
        resize: "stretch" (plain resize) or "letterbox" (keep aspect, pad).
        head: "logits" (N,H,W,C scores) or "argmax" (N,H,W class map).
        output_resolution: "full" (input size) or "feature" (upsampled on the host).
        input_kind: "normalized" (the host normalises, and quantises for int8/uint8
            inputs) or "pixels" (uint8 RGB 0..255 in, scale 1, zero point 0; the
            normalisation by mean/std is inside the graph).
        palette: one RGB colour per class.
        ignore_label: mask value excluded from metrics.
        format, precision: how the artifact was made ("tflite", "int8", ...).
        source: provenance (training run folder, git commit, dataset).
        parity: the conversion's parity figures against the Keras reference.
        selftest: inputs and the Keras reference's class maps for them, compressed, for
            `edge-deeplab verify` where the artifact runs (`selftest.py`); {} if none.
    """

    labels: Tuple[str, ...]
    input_size: Tuple[int, int]
    mean: Tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: Tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "RGB"
    resize: str = "stretch"
    head: str = "logits"
    output_resolution: str = "full"
    input_kind: str = "normalized"
    palette: Tuple[Color, ...] = ()
    ignore_label: int = 255
    format: str = "keras"
    precision: str = "fp32"
    source: Dict[str, Any] = field(default_factory=dict)
    parity: Dict[str, Any] = field(default_factory=dict)
    selftest: Dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def __post_init__(self):
        set_ = object.__setattr__
        _check_version(self.version)
        set_(self, "labels", _labels(self.labels))
        set_(self, "input_size", _ints(self.input_size, "input_size", 2, 1, MAX_INPUT_SIDE.value))
        set_(self, "mean", _triple(self.mean, "mean"))
        set_(self, "std", _triple(self.std, "std"))
        if not self.palette:
            set_(self, "palette", voc_palette(len(self.labels)))
        set_(self, "palette", _palette(self.palette))
        _one_of(self.channel_order, CHANNEL_ORDERS, "channel_order")
        _one_of(self.resize, RESIZE_MODES, "resize")
        _one_of(self.head, OUTPUT_HEADS, "head")
        _one_of(self.output_resolution, RESOLUTIONS, "output_resolution")
        _one_of(self.input_kind, INPUT_KINDS, "input_kind")
        set_(self, "ignore_label", _ints((self.ignore_label,), "ignore_label", 1, 0, 255)[0])
        for name in ("source", "parity", "selftest"):
            if not isinstance(getattr(self, name), dict):
                raise InvalidInputError(f"{name} must be a JSON object, got {type(getattr(self, name)).__name__}")
        _check_selftest(self.selftest)
        if len(self.palette) < len(self.labels):
            raise InvalidInputError(
                f"palette has {len(self.palette)} colours for {len(self.labels)} labels"
            )
        if any(not 0 < s for s in self.std):
            raise InvalidInputError(f"std must be positive, got {self.std}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def replace(self, **changes) -> ArtifactMetadata:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["palette"] = [list(c) for c in self.palette]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ArtifactMetadata:
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise InvalidInputError(f"metadata is incomplete: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> ArtifactMetadata:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"metadata is not valid JSON: {exc}") from None
        except RecursionError:  # "[[[[...": nesting deeper than any metadata of ours
            raise InvalidInputError("metadata JSON is nested too deeply") from None
        if not isinstance(data, dict):
            raise InvalidInputError("metadata JSON must be an object")
        return cls.from_dict(data)


def _check_version(version) -> None:
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise InvalidInputError(
            f"version {version!r} is not a schema this edge-deeplab reads (supported: {supported}); "
            "a newer edge-deeplab may have written it"
        )


def _labels(value) -> Tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"labels must be a list of class names, got {type(value).__name__}")
    labels = tuple(str(x) for x in value if isinstance(x, (str, int)) and not isinstance(x, bool))
    if len(labels) != len(value):
        raise InvalidInputError("labels must be class names (text)")
    if len(labels) < 1:
        raise InvalidInputError("metadata needs at least one label")
    for label in labels:  # printed to terminals: an escape sequence could rewrite the screen
        if CONTROL_CHARACTERS.search(label):
            raise InvalidInputError(f"labels must be printable text; {label!r} holds control characters")
    seen = set()
    for label in labels:
        if label in seen:
            raise InvalidInputError(f"labels must be unique; {label!r} appears more than once")
        seen.add(label)
    return labels


def _ints(value, what: str, count: int, low: int, high: int) -> Tuple[int, ...]:
    """`count` whole numbers in low..high (JSON gives lists; bools and fractions refused)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise InvalidInputError(f"{what} must be {count} whole numbers, got {value!r:.80}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high:
            raise InvalidInputError(f"{what} must hold whole numbers in {low}..{high}, got {value!r:.80}")
    return tuple(int(v) for v in value)


def _palette(colors) -> Tuple[Color, ...]:
    if not isinstance(colors, (list, tuple)):
        raise InvalidInputError(f"palette must be a list of [r, g, b] colours, got {type(colors).__name__}")
    return tuple(_ints(tuple(c) if isinstance(c, list) else c, "palette", 3, 0, 255) for c in colors)


def _triple(value: Sequence[float], what: str) -> Tuple[float, float, float]:
    if isinstance(value, (int, float)):
        value = (value, value, value)
    try:
        values = tuple(float(v) for v in value if not isinstance(v, (bool, str)))
    except (TypeError, ValueError):
        values = ()
    if not values or len(values) != len(value):
        raise InvalidInputError(f"{what} must be 1 or 3 numbers, got {value!r:.80}")
    if len(values) == 1:  # `--mean 127.5` parses to a 1-tuple: one value for every channel
        values = values * 3
    if len(values) != 3:
        raise InvalidInputError(f"{what} needs 1 or 3 values, got {len(values)}")
    if not all(math.isfinite(v) and abs(v) <= MAX_NORMALIZATION for v in values):
        raise InvalidInputError(f"{what} must be finite numbers within +-{MAX_NORMALIZATION:g}, got {values}")
    return values


def _check_selftest(selftest: dict) -> None:
    """An entry present must hold inputs and a bar: an empty one would "pass" on nothing."""
    if not selftest:
        return
    inputs, bar = selftest.get("inputs"), selftest.get("bar")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
        raise InvalidInputError("selftest is present but holds no inputs (an empty self-test proves nothing)")
    if isinstance(bar, bool) or not isinstance(bar, (int, float)) or not 0.0 < bar <= 1.0:
        raise InvalidInputError(f"selftest bar must be a number in (0, 1], got {bar!r:.40}")


def _one_of(value: str, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise InvalidInputError(f"{what} must be one of {', '.join(valid)}; got {value!r}")


def read_labels_file(path: str) -> Tuple[str, ...]:
    """One class name per line, index order; blank lines are ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            labels = tuple(line.strip() for line in handle if line.strip())
    except OSError as exc:
        raise InvalidInputError(f"cannot read labels file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"labels file {path} is not UTF-8 text (one class name per line); is it a binary file?"
        ) from None
    if any("\x00" in label for label in labels):
        raise InvalidInputError(f"labels file {path} holds NUL bytes: not a text file of class names")
    if any(CONTROL_CHARACTERS.search(label) for label in labels):
        raise InvalidInputError(f"labels file {path} holds control characters (terminal escapes?) in a class name")
    if not labels:
        raise InvalidInputError(f"labels file {path} is empty")
    return labels

"""The source of every conversion: a trained Keras model, and its SavedModel export.

Keras -> SavedModel is the common intermediate. The export is a `tf.function` with a
static signature (1, H, W, 3) that calls `model(x, training=False)`: calling the model
with `training=None` (what `model.export()` and `tf.function(model)` do) once ran
BatchNormalization in training mode and broke every artifact (../shared/PITFALLS.md).

Head placement:
- head "logits": float32 scores out; "argmax": uint8 (N, H', W') class map out, made by
  `tf.argmax` in the graph (`keras.ops.argmax` lowers to bitwise ops TFLite rejects).
- resolution "full": at the input size (the model's output); "feature": the layer "logits"
  at the feature resolution, upsampled on the host by the Segmenter.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from edge_deeplab import deps
from edge_deeplab.config import ModelConfig
from edge_deeplab.data.preprocessing import normalize
from edge_deeplab.errors import InvalidInputError, ModelLoadError, OutputError, first_line
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runs import CONFIG, FINAL_MODEL, resolve_model_path, sidecar_metadata_path
from edge_deeplab.trust import load_keras_model

INPUT_NAME = "image"
OUTPUT_NAMES = {"logits": "scores", "argmax": "labels"}


@dataclass
class SourceModel:
    """A trained Keras model ready to convert.

    Attributes:
        path: the .keras file.
        model: the keras.Model (float32 NHWC normalised input -> logits at input size).
        metadata: its ArtifactMetadata (labels, normalisation, ...; format "keras").
        config: the ModelConfig it was built from (None when the run has no config.json).
        data_format: the training data's format from config.json ("synthetic", ...) or None.
    """

    path: Path
    model: object
    metadata: ArtifactMetadata
    config: Optional[ModelConfig] = None
    data_format: Optional[str] = None

    @property
    def input_size(self) -> Tuple[int, int]:
        return tuple(int(v) for v in self.model.input_shape[1:3])


def load_source(model_path, size: Optional[Tuple[int, int]] = None, preset: Optional[str] = None) -> SourceModel:
    """Open MODEL (a run folder, a .keras file, or a .tflite whose weights are imported:
    `published.py`), optionally rebuilt at another input size.

    Raises:
        InvalidInputError: not a model, no metadata, or --size without the run's config.
        ModelLoadError: a .keras file Keras cannot load (unknown layers, corrupt).
    """
    path = resolve_model_path(model_path)
    if path.is_file() and path.suffix.lower() == ".tflite":
        from .published import load_published

        source = SourceModel(path, *load_published(path, preset))
        return source if size is None else resize_source(source, tuple(size))
    if path.is_dir() or path.suffix != ".keras":
        raise InvalidInputError(
            f"{path}: not a Keras model; convert takes a training run folder, a .keras file or a .tflite"
        )
    model = _load_keras(path)
    meta = _load_metadata(path, model)
    config, data_format = _load_config(path)
    source = SourceModel(path, model, meta, config, data_format)
    if size is not None and tuple(size) != source.input_size:
        source = resize_source(source, tuple(size))
    return source


def _load_keras(path: Path):
    keras = deps.keras()
    import edge_deeplab.keras_layers  # noqa: F401  registers ResizeBilinear for deserialisation

    try:
        model = load_keras_model(keras, path)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"{path}: Keras cannot load this model (unknown layer or corrupt file): "
            f"{first_line(exc)}"
        ) from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path}: not a readable .keras file: {exc}") from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else ()
    if len(shape) != 4 or shape[-1] != 3 or not shape[1] or not shape[2]:
        raise InvalidInputError(
            f"{path}: input shape {shape}; expected a static (N, H, W, 3) image input"
        )
    return model


def _load_metadata(path: Path, model) -> ArtifactMetadata:
    meta_path = sidecar_metadata_path(path)
    if not meta_path.is_file():
        raise InvalidInputError(
            f"{path}: no {meta_path.name} beside it (labels and normalisation); "
            f"convert a training run folder or put its metadata.json beside the model"
        )
    meta = ArtifactMetadata.from_json(meta_path.read_text(encoding="utf-8"))
    classes = int(model.output_shape[-1])
    if classes != meta.num_classes:
        raise InvalidInputError(
            f"{path}: the model has {classes} classes "
            f"but {meta_path.name} lists {meta.num_classes} labels"
        )
    source = dict(meta.source)
    source.setdefault("model", str(path.parent if path.name == FINAL_MODEL else path))
    return meta.replace(input_size=tuple(model.input_shape[1:3]), source=source)


def _load_config(path: Path):
    """(ModelConfig or None, training data format or None) from the run's config.json."""
    config_path = path.parent / CONFIG
    if not config_path.is_file():
        return None, None
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{config_path}: not valid JSON: {exc}") from None
    model_part = data.get("model", data) if isinstance(data, dict) else None
    data_part = data.get("data") if isinstance(data, dict) else None
    config = None
    if isinstance(model_part, dict):
        try:
            config = ModelConfig.from_dict(model_part)
        except (InvalidInputError, TypeError):
            config = None
    data_format = data_part.get("format") if isinstance(data_part, dict) else None
    return config, data_format


def resize_source(source: SourceModel, size: Tuple[int, int]) -> SourceModel:
    """Rebuild the fully convolutional model at input `size` and copy the weights over."""
    if source.config is None:
        raise InvalidInputError(
            f"{source.path}: --size needs the run's {CONFIG} (the ModelConfig) to rebuild the model"
        )
    from edge_deeplab.model import build_deeplab_v3

    config = source.config.replace(input_size=tuple(size), weights=None)
    model = build_deeplab_v3(config)
    try:
        model.set_weights(source.model.get_weights())
    except ValueError as exc:
        raise InvalidInputError(f"{source.path}: weights do not fit its {CONFIG}: {exc}") from None
    meta = source.metadata.replace(input_size=tuple(size))
    return SourceModel(source.path, model, meta, config, source.data_format)


def variant_model(model, resolution: str):
    """The Keras model whose output is at `resolution` ("full" or "feature")."""
    if resolution == "full":
        return model
    keras = deps.keras()
    try:
        logits = model.get_layer("logits").output
    except ValueError:
        raise InvalidInputError(
            "the model has no layer named 'logits'; use --resolution full"
        ) from None
    return keras.Model(model.input, logits, name=f"{model.name}_feature")


def export_saved_model(model, head: str, directory, pixels: Optional[ArtifactMetadata] = None,
                       label_dtype: str = "uint8") -> Path:
    """Write a SavedModel serving `model(x, training=False)` (+ argmax when head="argmax").

    Contract: input "image" float32 (1, H, W, 3) normalised, or, with `pixels` (the
    metadata whose mean/std the graph applies), RGB pixel values 0..255 normalised in the
    graph; output "scores" float32 (1, H', W', C) or "labels" `label_dtype` (1, H', W').
    """
    tf = deps.tensorflow()
    keras = deps.keras()
    h, w = (int(v) for v in model.input_shape[1:3])
    spec = tf.TensorSpec((1, h, w, 3), tf.float32, name=INPUT_NAME)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=serving_function(model, head, pixels, label_dtype), input_signature=[spec])
    try:
        archive.write_out(str(directory), verbose=False)
    except (OSError, tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError) as exc:
        # TensorFlow reports a full disk as ResourceExhaustedError, not OSError.
        reason = "no space left on device" if "No space left" in str(exc) else first_line(exc)
        raise OutputError(f"{Path(directory).parent}: cannot write the SavedModel export ({reason})") from None
    return Path(directory)


def serving_function(model, head: str, pixels: Optional[ArtifactMetadata] = None, label_dtype: str = "uint8"):
    """image -> {output name: tensor}: the graph every converter starts from. The class map
    is uint8, or int64 where a client must not mistake it for scores (TFLite: MediaPipe
    reads any uint8 output as confidence masks, but refuses int64 outputs)."""
    tf = deps.tensorflow()
    name = OUTPUT_NAMES[head]

    def serve(image):
        if pixels is not None:  # the same float32 arithmetic as data.preprocessing.normalize
            image = normalize(image, pixels.mean, pixels.std)
        scores = model(image, training=False)
        if head == "argmax":
            if label_dtype == "int64":
                return {name: tf.argmax(scores, axis=-1, output_type=tf.int64)}
            return {name: tf.cast(tf.argmax(scores, axis=-1, output_type=tf.int32), tf.uint8)}
        return {name: scores}

    # Plain tensor code: autograph has nothing to convert (and warns when it tries).
    return tf.autograph.experimental.do_not_convert(serve)

"""A .tflite as the model to convert: a published TF-slim DeepLab or one of our artifacts.

The weights go through the same import as `train --weights` (`model.weight_import`): the
architecture is read from the file, the convolutions (dequantised where int8/uint8) are
copied into our Keras model, and that model is the reference every artifact's parity is
measured against. A published file carries no labels or normalisation: `--preset` gives
them (its class count must match the file's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edge_deeplab.errors import InvalidInputError


def load_published(path: Path, preset: Optional[str]):
    """(keras model, ArtifactMetadata, ModelConfig) rebuilt from the .tflite at `path`."""
    from edge_deeplab.config import ModelConfig
    from edge_deeplab.model import build_deeplab_v3
    from edge_deeplab.model.tflite_weights import read_tflite_weights
    from edge_deeplab.model.weight_import import describe_file, resolve_model_config
    from edge_deeplab.runtimes.tflite_runtime import TFLiteRuntime
    from edge_deeplab.segmenter import resolve_metadata

    with TFLiteRuntime(path) as runtime:
        meta = resolve_metadata(runtime, preset=preset)
    found = describe_file(read_tflite_weights(path))
    if found["num_classes"] != meta.num_classes:
        raise InvalidInputError(
            f"{path}: the file has {found['num_classes']} classes, the labels {meta.num_classes}; check --preset"
        )
    config = resolve_model_config(ModelConfig(weights=str(path), num_classes=found["num_classes"],
                                              input_size=meta.input_size))
    model = build_deeplab_v3(config)
    source = {**meta.source, "imported_from": path.name}
    meta = meta.replace(format="keras", precision="fp32", head="logits", output_resolution="full",
                        input_kind="normalized", parity={}, selftest={}, source=source)
    return model, meta, config.replace(weights=None)

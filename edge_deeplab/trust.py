"""Model files that can run code when loaded: refused unless the user says they trust them.

A .tflite, .onnx, OpenVINO IR or TensorRT engine is data to its engine. Two kinds of model
file are not: a TensorFlow SavedModel folder is a graph whose ops can read and write files
(`tf.io.read_file`, `WriteFile`) and it runs when loaded and called; a `.keras` file can hold
a Lambda layer, Python bytecode that Keras runs only with `safe_mode=False`. Every Keras
load here passes `safe_mode=True` explicitly (not trusting the default of whichever Keras is
installed), and a SavedModel opens only with `trust_model=True` (`--trust-model`).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError

TRUST_FLAG = "--trust-model"


def is_saved_model(path) -> bool:
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def require_trusted(path, trusted: bool) -> None:
    """Refuse a SavedModel folder unless `trusted`, saying why."""
    if is_saved_model(path) and not trusted:
        raise ModelLoadError(
            f"{path}: a SavedModel is a TensorFlow graph that can read and write files when it runs; "
            f"open it only if you trust where it came from, with {TRUST_FLAG} (API: trust_model=True), "
            "or convert it where you do"
        )


def load_keras_model(keras, path, compile: bool = False):  # noqa: A002 - Keras's own keyword
    """keras.saving.load_model with safe_mode=True; a model holding code is one clear error.

    Other load errors (a corrupt file) propagate for the caller to word.
    """
    try:
        return keras.saving.load_model(str(path), compile=compile, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" not in str(exc) and "unsafe" not in str(exc).lower():
            raise
        raise ModelLoadError(
            f"{path}: the model holds Python code (a Lambda layer or a pickled function), which "
            "edge-deeplab does not run from a model file; rebuild it with registered layers"
        ) from None

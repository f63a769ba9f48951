"""Training run folders: where their files live, and turning a MODEL argument into a file.

A run folder holds `model.keras` (the final model), `metadata.json`, `config.json`,
`labels.txt`, `checkpoints/` and `logs/`. Every subcommand's MODEL accepts a run folder
or an artifact file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidInputError

FINAL_MODEL = "model.keras"
METADATA = "metadata.json"
CONFIG = "config.json"
LABELS = "labels.txt"
CHECKPOINTS = "checkpoints"
LOGS = "logs"


def resolve_model_path(path) -> Path:
    """A run folder -> its final model; a file or SavedModel folder -> itself."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"{path}: no such model file or run folder")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        final = path / FINAL_MODEL
        if not final.is_file():
            raise InvalidInputError(
                f"{path}: a folder, but not a training run with a final {FINAL_MODEL} "
                "(has training finished?) nor a SavedModel"
            )
        return final
    return path


def sidecar_metadata_path(model_path: Path) -> Path:
    """Where the metadata JSON of a Keras model or TensorRT engine lives."""
    model_path = Path(model_path)
    if model_path.name == FINAL_MODEL:
        return model_path.parent / METADATA
    return model_path.with_suffix(model_path.suffix + ".json")

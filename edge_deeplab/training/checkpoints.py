"""Per-epoch checkpoints, written atomically, and finding the last one to resume from.

A checkpoint is `checkpoints/epoch_NNNN.keras` (the model with its optimizer state,
hence the optimizer's step) written to a temporary name and renamed into place, so a
process killed at any moment leaves either the previous checkpoint or the new one —
at most the epoch in flight is lost. `state.json` beside it is informational.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Optional, Tuple

from .. import deps
from ..errors import InvalidInputError, first_line
from ..imageio import atomic_write_text, durable_replace
from ..trust import load_keras_model

_PATTERN = re.compile(r"^epoch_(\d{4,})\.keras$")
KEEP = 2  # checkpoints kept on disk
_log = logging.getLogger(__name__)


def checkpoint_path(folder: Path, epoch: int) -> Path:
    return Path(folder) / f"epoch_{epoch:04d}.keras"


def latest_checkpoint(folder: Path) -> Optional[Tuple[int, Path]]:
    """(epochs completed, path) of the newest checkpoint in `folder`, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PATTERN.match(p.name))]
    return max(found) if found else None


def save_checkpoint(model, folder: Path, epoch: int, logs: Optional[dict] = None) -> Path:
    """Save `model` (with optimizer state) as the checkpoint after `epoch` epochs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(folder, epoch)
    tmp = folder / f".tmp-{os.getpid()}-{epoch:04d}.keras"  # Keras wants the .keras suffix
    try:
        model.save(tmp)
        durable_replace(tmp, final)  # fsynced: a power cut leaves the old checkpoint or this one
    except OSError as exc:  # a full disk: one line, and the previous checkpoints stay
        raise InvalidInputError(f"{final}: cannot write the checkpoint ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    state = {
        "epoch": epoch,
        "optimizer_step": int(model.optimizer.iterations.numpy()),
        "checkpoint": final.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "logs": {k: float(v) for k, v in (logs or {}).items()},
    }
    atomic_write_text(folder / "state.json", json.dumps(state, indent=2))
    for _epoch, old in sorted(_all(folder))[:-KEEP]:
        old.unlink(missing_ok=True)
    return final


def _all(folder: Path):
    return [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PATTERN.match(p.name))]


def load_checkpoint(path: Path):
    """The compiled model (optimizer state included) saved in `path`.

    Raises:
        InvalidInputError: the file is truncated, garbled or not a model Keras accepts.
    """
    keras = deps.keras()
    from .. import keras_layers  # noqa: F401
    from . import losses, optimizers  # noqa: F401  (register the classes for deserialisation)

    path = Path(path)
    problem = _damage(path)
    if problem:
        raise InvalidInputError(f"{path}: {problem}")
    try:
        return load_keras_model(keras, path, compile=True)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"{path}: Keras cannot load it ({first_line(exc)})") from None


def load_latest_checkpoint(folder: Path) -> Optional[Tuple[int, object]]:
    """(epochs completed, model) from the newest checkpoint that loads, or None if none exist.

    A damaged newest checkpoint (a killed disk write, a copy cut short) falls back to the
    next one, logging a warning that says which and why.

    Raises:
        InvalidInputError: every checkpoint in `folder` is damaged.
    """
    found = sorted(_all(Path(folder)), reverse=True) if Path(folder).is_dir() else []
    problems = []
    for epoch, path in found:
        try:
            model = load_checkpoint(path)
        except InvalidInputError as exc:
            problems.append(str(exc))
            _log.warning(f"skipping damaged checkpoint {exc}")
            continue
        if problems:
            _log.warning(f"resuming from {path.name} (epoch {epoch}) instead")
        return epoch, model
    if problems:
        raise InvalidInputError(
            f"{folder}: every checkpoint is damaged ({'; '.join(problems)}); start again without --resume "
            "or with another --out"
        )
    return None


def _damage(path: Path) -> Optional[str]:
    """Why a .keras file cannot be a complete checkpoint, or None (CRC-checked zip)."""
    if not path.is_file():
        return "no such checkpoint file"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"truncated or not a .keras archive ({first_line(exc)})"
    if bad is not None:
        return f"corrupt member {bad} (CRC mismatch)"
    if "config.json" not in names:
        return "not a Keras model archive (no config.json)"
    return None

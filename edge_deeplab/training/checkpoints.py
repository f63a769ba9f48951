"""Per-epoch checkpoints, written atomically, and finding the last one to resume from.

A checkpoint is `checkpoints/epoch_NNNN.keras` (the model with its optimizer state,
hence the optimizer's step) written to a temporary name and renamed into place, so a
process killed at any moment leaves either the previous checkpoint or the new one —
at most the epoch in flight is lost. `state.json` beside it is informational.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Optional, Tuple

from .. import deps
from ..imageio import atomic_write_text

_PATTERN = re.compile(r"^epoch_(\d{4,})\.keras$")
KEEP = 2  # checkpoints kept on disk


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
        os.replace(tmp, final)
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
    """The compiled model (optimizer state included) saved in `path`."""
    keras = deps.keras()
    from ..model import layers  # noqa: F401
    from . import losses  # noqa: F401  (registers the loss class for deserialisation)

    return keras.saving.load_model(path, compile=True)

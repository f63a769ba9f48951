"""The run folder around a training: refusing to overwrite, config, metadata, final files.

Run folder (see `edge_deeplab.runs`): `config.json` (written first, so `--resume` knows
what it continues), `checkpoints/epoch_NNNN.keras` every epoch, `logs/` (TensorBoard,
history.csv), and at the end `model.keras`, `metadata.json`, `labels.txt`, `history.json`.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Optional

from .. import runs
from ..config import DataConfig, ModelConfig
from ..errors import InvalidInputError
from ..imageio import atomic_write_text, durable_replace
from ..metadata import ArtifactMetadata
from ..presets import CAMVID_LABELS, CAMVID_PALETTE

LOCK_FILE = ".edge-deeplab.lock"
_log = logging.getLogger(__name__)


@contextlib.contextmanager
def run_folder_lock(out: Path, enabled: bool = True):
    """Hold an exclusive lock on the run folder while training writes it: a second `train`
    into the same folder is refused at once instead of interleaving checkpoints. The lock
    is the kernel's (flock), so a killed run releases it; a folder this call created and
    nothing else wrote is removed again."""
    if not enabled:
        yield
        return
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise InvalidInputError(f"--out {out}: cannot write there ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InvalidInputError(f"{out}: another training is writing this run folder; wait for it to end "
                                "or choose another --out") from None
    try:
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiting run)
        if created and [p.name for p in out.iterdir()] == [LOCK_FILE]:
            (out / LOCK_FILE).unlink(missing_ok=True)
            out.rmdir()


def check_run_folder(out: Path, model_cfg: ModelConfig, resume: bool):
    """The checkpoint to resume from (or None); refuses to overwrite another run."""
    from .checkpoints import latest_checkpoint

    last = latest_checkpoint(out / runs.CHECKPOINTS)
    has_run = last is not None or (out / runs.FINAL_MODEL).exists()
    if has_run and not resume:
        raise InvalidInputError(
            f"{out} already holds a training run; pass --resume to continue it "
            "or choose another --out"
        )
    if resume and (out / runs.CONFIG).is_file():
        saved = json.loads((out / runs.CONFIG).read_text())["model"]
        current = model_cfg.to_dict()
        differ = [k for k in current if json.dumps(saved.get(k)) != json.dumps(current[k])]
        if differ:
            raise InvalidInputError(
                f"{out}: cannot resume with a different model config ({', '.join(differ)})"
            )
    if resume and last is None:
        _log.warning(f"{out}: no checkpoint to resume from; starting from scratch")
    return last


def run_metadata(labels, model_cfg: ModelConfig, data_cfg: DataConfig, out: Path) -> ArtifactMetadata:
    """The metadata every artifact of this run inherits (labels, size, provenance)."""
    palette = CAMVID_PALETTE if tuple(labels) == CAMVID_LABELS else ()
    source = {
        "run": str(out.resolve()),
        "dataset": data_cfg.format
        if data_cfg.format == "synthetic"
        else f"{data_cfg.format}:{data_cfg.path}",
        "git_commit": _git_commit(),
        "model": model_cfg.replace(weights=None).to_dict(),  # lets our artifacts be re-imported
    }
    return ArtifactMetadata(
        labels=tuple(labels),
        input_size=model_cfg.input_size,
        palette=palette,
        ignore_label=data_cfg.ignore_label,
        format="keras",
        precision="fp32",
        source=source,
    )


def write_config(out: Path, model_cfg, data_cfg, train_cfg) -> None:
    config = {
        "model": model_cfg.to_dict(),
        "data": data_cfg.to_dict(),
        "train": train_cfg.to_dict(),
    }
    atomic_write_text(out / runs.CONFIG, json.dumps(config, indent=2))


def finish(out: Path, model, meta: ArtifactMetadata, seconds: float, steps: int, trained=None,
           budget: Optional[dict] = None) -> None:
    """Final model (atomically), metadata, labels and the whole run's history beside it.

    `trained` is the model that was fitted (the crop-size one) when `model` is its
    full-size copy; the optimizer step is read from it. `budget`: the time budget's
    summary (epochs fit, schedule, plans), kept in history.json.
    """
    trained = trained or model
    _save_model(model, out / runs.FINAL_MODEL)
    history = read_history(out / runs.LOGS / "history.csv")
    if history and "val_miou" in history[-1]:
        meta = meta.replace(source={**meta.source, "val_miou": history[-1]["val_miou"]})
    atomic_write_text(out / runs.METADATA, json.dumps(meta.to_dict(), indent=2))
    atomic_write_text(out / runs.LABELS, "\n".join(meta.labels) + "\n")
    summary = {
        "history": history,
        "train_seconds": seconds,
        "steps_per_epoch": steps,
        "optimizer_step": int(trained.optimizer.iterations.numpy()),
    }
    if budget is not None:
        summary["time_budget"] = budget
    atomic_write_text(out / "history.json", json.dumps(summary, indent=2))


def _save_model(model, final: Path) -> None:
    """model.save to a temporary name, renamed into place; a full disk is a one-line error."""
    tmp = final.parent / f".tmp-{os.getpid()}-{final.name}"
    try:
        model.save(tmp)
        durable_replace(tmp, final)
    except OSError as exc:
        raise InvalidInputError(f"{final}: cannot write the model ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)


def read_history(log: Path) -> list:
    """Every epoch of the run from logs/history.csv (resumed sessions included), 1-based."""
    if not log.is_file():
        return []
    with open(log, newline="") as handle:
        history = [{k: v for k, v in ((k, _number(v)) for k, v in row.items()) if v is not None}
                   for row in csv.DictReader(handle)]
    for row in history:
        row["epoch"] = int(row["epoch"]) + 1
    return history


def _number(text) -> Optional[float]:
    """A CSV cell as a float; None for empty, "NA" and NaN (epochs that were not validated)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


def _git_commit() -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None

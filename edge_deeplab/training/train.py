"""`train()`: a DeepLab run from configs to a run folder (needs TensorFlow).

Run folder (see `edge_deeplab.runs`): `config.json` (written first, so `--resume` knows
what it continues), `checkpoints/epoch_NNNN.keras` every epoch, `logs/` (TensorBoard),
and at the end `model.keras`, `metadata.json`, `labels.txt`, `history.json`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Optional

from .. import deps, runs
from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError
from ..imageio import atomic_write_text
from ..metadata import ArtifactMetadata
from ..presets import CAMVID_LABELS, CAMVID_PALETTE


def train(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    out_dir,
    resume: bool = False,
    verbose: int = 1,
    time_budget_s: Optional[float] = None,
) -> Path:
    """Train a model and write its run folder.

    Args:
        model_cfg, data_cfg, train_cfg: what to build, on what, and how.
        out_dir: the run folder; it must not hold another run unless `resume`.
        resume: continue from the newest checkpoint in `out_dir` (epoch count and
            optimizer step continue; the model config must be the one it was started with).
        verbose: 0 silent, 1 Keras progress bar and per-epoch validation lines.
        time_budget_s: stop between epochs once the next one would end past this many
            seconds (the final model is still written).

    Returns:
        The run folder.
    """
    from .strategy import is_chief, make_strategy

    out = Path(out_dir)
    strategy = make_strategy(train_cfg.strategy)  # first: multiworker must precede other TF ops
    keras = deps.keras()
    from ..data.pipeline import train_pipeline
    from .callbacks import CheckpointCallback, TimeBudget, ValidationCallback
    from .checkpoints import load_checkpoint
    from .optimizers import make_schedule
    from .setup import compile_model, resize_model, resolve_weights

    chief = is_chief()
    model_cfg = resolve_weights(model_cfg, out, resume)
    last = _check_run_folder(out, model_cfg, resume)
    train_ds, val_ds = _load_data(model_cfg, data_cfg, train_cfg)
    meta = _metadata(train_ds.labels, model_cfg, data_cfg, out)
    if chief:
        _write_config(out, model_cfg, data_cfg, train_cfg)
    keras.utils.set_random_seed(train_cfg.seed)
    steps = train_cfg.steps_per_epoch or max(1, len(train_ds) // train_cfg.batch_size)
    with strategy.scope():
        if last is not None:
            model, initial_epoch = load_checkpoint(last[1]), last[0]
            # Re-plan the schedule for the epochs asked now: a run extended past its first
            # plan would otherwise go on at the final learning rate, 0. The optimizer step
            # (hence the position in the schedule) comes from the checkpoint.
            model.optimizer.learning_rate = make_schedule(train_cfg, steps)
        else:
            model = compile_model(model_cfg, train_cfg, steps, train_ds.ignore_label, verbose)
            initial_epoch = 0
    if verbose and last is not None:
        step = int(model.optimizer.iterations.numpy())
        print(f"resuming {out} after epoch {initial_epoch} (optimizer step {step})", flush=True)
    data = train_pipeline(
        train_ds, meta, train_cfg.batch_size, train_cfg.augment, seed=train_cfg.seed,
        crop_size=train_cfg.crop_size,
    )
    callbacks = [
        TimeBudget(time_budget_s, verbose),  # first: the last epoch it allows is validated
        ValidationCallback(val_ds, meta, verbose=verbose if chief else 0, every=train_cfg.val_every,
                           epochs=train_cfg.epochs, eval_config=_eval_config(model_cfg, train_cfg)),
        CheckpointCallback(out / runs.CHECKPOINTS, write=chief),
    ]
    if chief:
        callbacks += _loggers(out / runs.LOGS, resume=last is not None)
    start = time.perf_counter()
    if initial_epoch < train_cfg.epochs:
        _fit(model, strategy, data, train_cfg, initial_epoch, steps, callbacks, verbose)
    if chief:
        final = model
        if _eval_config(model_cfg, train_cfg) is not None:  # trained on crops: save at full size
            final = resize_model(model, _eval_config(model_cfg, train_cfg))
        _finish(out, final, meta, time.perf_counter() - start, steps, model)
    return out


def _eval_config(model_cfg: ModelConfig, train_cfg: TrainConfig) -> Optional[ModelConfig]:
    """The model at its input size, when training runs on crops of another size."""
    crop = train_cfg.crop_size
    if crop is None or tuple(crop) == tuple(model_cfg.input_size):
        return None
    return model_cfg.replace(weights=None)


def _load_data(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig):
    """(train, val) SegDatasets, checked against the model and the batch size."""
    from ..data.datasets import load_dataset

    train_ds = load_dataset(data_cfg, data_cfg.train_split)
    val_ds = load_dataset(data_cfg, data_cfg.val_split)
    if model_cfg.num_classes != train_ds.num_classes:
        raise InvalidInputError(
            f"the model has {model_cfg.num_classes} classes but the dataset names "
            f"{train_ds.num_classes} ({', '.join(train_ds.labels)}); "
            "set --num-classes / --labels consistently"
        )
    if len(train_ds) < train_cfg.batch_size:
        raise InvalidInputError(
            f"{len(train_ds)} training images is fewer than --batch-size {train_cfg.batch_size}"
        )
    return train_ds, val_ds


def _fit(
    model,
    strategy,
    data,
    train_cfg: TrainConfig,
    initial_epoch: int,
    steps: int,
    callbacks: list,
    verbose: int,
) -> None:
    """Keras fit, or the custom loop where fit cannot run (MultiWorkerMirroredStrategy)."""
    if train_cfg.strategy == "multiworker":
        from .distributed_loop import fit_distributed

        fit_distributed(
            model,
            strategy,
            data,
            epochs=train_cfg.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
        )
        return
    model.fit(
        data,
        epochs=train_cfg.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )


def _loggers(folder: Path, resume: bool) -> list:
    """CSV history always; TensorBoard event files when the tensorboard package is there."""
    keras = deps.keras()
    folder.mkdir(parents=True, exist_ok=True)
    loggers = [keras.callbacks.CSVLogger(str(folder / "history.csv"), append=resume)]
    if deps.available("tensorboard"):
        loggers.append(keras.callbacks.TensorBoard(log_dir=str(folder), write_graph=False))
    else:
        print(
            "tensorboard is not installed: logging to logs/history.csv only "
            "(pip install tensorboard for TensorBoard event files)",
            flush=True,
        )
    return loggers


def _check_run_folder(out: Path, model_cfg: ModelConfig, resume: bool):
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
        print(f"{out}: no checkpoint to resume from; starting from scratch", flush=True)
    return last


def _metadata(labels, model_cfg: ModelConfig, data_cfg: DataConfig, out: Path) -> ArtifactMetadata:
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


def _write_config(out: Path, model_cfg, data_cfg, train_cfg) -> None:
    config = {
        "model": model_cfg.to_dict(),
        "data": data_cfg.to_dict(),
        "train": train_cfg.to_dict(),
    }
    atomic_write_text(out / runs.CONFIG, json.dumps(config, indent=2))


def _finish(out: Path, model, meta: ArtifactMetadata, seconds: float, steps: int, trained=None) -> None:
    """Final model (atomically), metadata, labels and the whole run's history beside it.

    `trained` is the model that was fitted (the crop-size one) when `model` is its
    full-size copy; the optimizer step is read from it.
    """
    trained = trained or model
    import csv
    import os

    tmp = out / f".tmp-{os.getpid()}-model.keras"
    model.save(tmp)
    os.replace(tmp, out / runs.FINAL_MODEL)
    history = []
    log = out / runs.LOGS / "history.csv"
    if log.is_file():  # every epoch of the run, resumed sessions included
        with open(log, newline="") as handle:
            history = [{k: v for k, v in ((k, _number(v)) for k, v in row.items()) if v is not None}
                       for row in csv.DictReader(handle)]
        for row in history:
            row["epoch"] = int(row["epoch"]) + 1
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
    atomic_write_text(out / "history.json", json.dumps(summary, indent=2))

"""`train()`: a DeepLab run from configs to a run folder (needs TensorFlow).

The run folder's files are described in `run_folder`; the model a run fits (crop size,
imported weights, frozen BatchNorm, optimizer) is made in `setup`.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Optional

from .. import deps, runs
from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError
from ..logs import on_terminal

_log = logging.getLogger(__name__)


def train(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    out_dir,
    resume: bool = False,
    verbose: int = 1,
    time_budget_s: Optional[float] = None,
    memory_limit_gb: Optional[float] = None,
) -> Path:
    """Train a model and write its run folder.

    Args:
        model_cfg, data_cfg, train_cfg: what to build, on what, and how. A .tflite
            `model_cfg.weights` fills in the architecture (see `model.weight_import`).
        out_dir: the run folder; it must not hold another run unless `resume`.
        resume: continue from the newest readable checkpoint in `out_dir` (epoch count and
            optimizer step continue; the model config must be the one it was started with).
        verbose: 0 silent; 1 progress: Keras' bar where stdout (which it draws on) is a
            terminal, else one log line per epoch, and the validation lines (logged, see
            `edge_deeplab.logs`).
        time_budget_s: replaces `train_cfg.time_budget_s` when given (see `budget`).
        memory_limit_gb: refuse a run whose memory estimate exceeds this (default: 90% of
            this machine's RAM), before anything is allocated.

    Returns:
        The run folder.
    """
    from .run_folder import run_folder_lock
    from .strategy import is_chief

    with run_folder_lock(Path(out_dir), enabled=is_chief()):  # the chief writes the run folder
        return _train(model_cfg, data_cfg, train_cfg, out_dir, resume, verbose, time_budget_s, memory_limit_gb)


def _train(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig, out_dir, resume: bool,
           verbose: int, time_budget_s: Optional[float], memory_limit_gb: Optional[float]) -> Path:
    from ..data.pipeline import train_pipeline
    from .budget import _now
    from .memory import check_training_memory
    from .run_folder import check_run_folder, finish, run_metadata, write_config
    from .setup import resolve_weights
    from .strategy import is_chief, make_strategy

    started = _now()
    train_cfg = train_cfg if time_budget_s is None else train_cfg.replace(time_budget_s=time_budget_s)
    out, strategy = Path(out_dir), make_strategy(train_cfg.strategy)  # first: multiworker precedes other TF ops
    check_training_memory(model_cfg, data_cfg, train_cfg, memory_limit_gb)
    model_cfg = resolve_weights(model_cfg, out, resume)
    last = check_run_folder(out, model_cfg, resume)
    train_ds, val_ds = _load_data(model_cfg, data_cfg, train_cfg)
    meta, chief = run_metadata(train_ds.labels, model_cfg, data_cfg, out), is_chief()
    _ = chief and write_config(out, model_cfg, data_cfg, train_cfg)
    deps.keras().utils.set_random_seed(train_cfg.seed)
    steps = train_cfg.steps_per_epoch or max(1, len(train_ds) // train_cfg.batch_size)
    with strategy.scope():
        model, initial_epoch = _start(out, last is not None, model_cfg, train_cfg, steps, train_ds, verbose)
        schedule = _plan_schedule(model, train_cfg, steps)
    data = train_pipeline(train_ds, meta, train_cfg.batch_size, train_cfg.augment, seed=train_cfg.seed,
                          crop_size=train_cfg.crop_size)
    callbacks = _callbacks(out, val_ds, meta, model_cfg, train_cfg, chief, verbose, last is not None)
    planner = _budget_planner(out, train_cfg, started, steps, schedule, callbacks[0],
                              _val_ratio(train_ds, val_ds, model_cfg, train_cfg, steps), chief, verbose)
    start, budget = time.perf_counter(), None
    if initial_epoch < train_cfg.epoch_limit:
        callbacks = ([planner] if planner else []) + callbacks  # the planner first: its stop is validated
        _fit(model, strategy, data, train_cfg, initial_epoch, steps, callbacks, verbose)
        budget = planner.summary() if planner else None
    if chief:
        finish(out, _final_model(model, model_cfg, train_cfg), meta, time.perf_counter() - start, steps, model, budget)
    return out


def _plan_schedule(model, train_cfg: TrainConfig, steps: int):
    """The run's schedule, set on the optimizer: planned from epochs, or later from the budget."""
    from .optimizers import make_schedule

    # Also on resume: a run extended past its first plan would otherwise go on at the final
    # learning rate, 0. The optimizer step (the position in the schedule) is the checkpoint's.
    schedule = make_schedule(train_cfg, steps)
    model.optimizer.learning_rate = schedule
    return schedule


def _budget_planner(out: Path, train_cfg: TrainConfig, started: float, steps: int, schedule, validation,
                    val_ratio: float, chief: bool, verbose: int):
    """The planner of a run with a time budget; None without one."""
    from .budget import BUDGET_FILE, BudgetPlanner, spent_before

    if not train_cfg.time_budget_s:
        return None
    return BudgetPlanner(
        train_cfg.time_budget_s, started, steps, train_cfg.epoch_limit, schedule, validation,
        warmup_epochs=train_cfg.warmup_epochs, min_val_every=train_cfg.val_every,
        spent_before=spent_before(out / BUDGET_FILE), state_file=out / BUDGET_FILE if chief else None,
        val_ratio=val_ratio, verbose=verbose if chief else 0,
    )


def _val_ratio(train_ds, val_ds, model_cfg: ModelConfig, train_cfg: TrainConfig, steps: int) -> float:
    """A validation's time over an epoch's, guessed before one is timed: its pixels at about a
    third of a training pixel's cost (forward only, no augmentation)."""
    crop = train_cfg.crop_size or model_cfg.input_size
    train_px = steps * train_cfg.batch_size * crop[0] * crop[1]
    val_px = len(val_ds) * model_cfg.input_size[0] * model_cfg.input_size[1]
    return val_px / max(1, train_px) / 3


def _start(out: Path, resuming: bool, model_cfg, train_cfg, steps: int, train_ds, verbose: int):
    """(model, epochs done): the newest readable checkpoint's, or a freshly built one's."""
    from .checkpoints import load_latest_checkpoint
    from .setup import compile_model

    if not resuming:
        weights = None
        if train_cfg.class_balance:
            from .losses import balanced_class_weights

            weights = balanced_class_weights(train_ds.masks, model_cfg.num_classes, train_ds.ignore_label,
                                             train_cfg.class_balance)
            if verbose:
                _log.info("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(train_ds.labels, weights)))
        return compile_model(model_cfg, train_cfg, steps, train_ds.ignore_label, verbose, weights), 0
    # The newest checkpoint that loads; a damaged one falls back to the one before.
    epoch, model = load_latest_checkpoint(out / runs.CHECKPOINTS)
    if verbose:
        step = int(model.optimizer.iterations.numpy())
        _log.info(f"resuming {out} after epoch {epoch} (optimizer step {step})")
    return model, epoch


def _callbacks(out, val_ds, meta, model_cfg, train_cfg, chief, verbose, resumed) -> list:
    """Validation first (a budget planner goes before it), then checkpoints and logs."""
    from .callbacks import CheckpointCallback, ValidationCallback

    callbacks = [
        ValidationCallback(val_ds, meta, verbose=verbose if chief else 0, every=train_cfg.val_every,
                           epochs=train_cfg.epoch_limit, eval_config=_eval_config(model_cfg, train_cfg)),
        CheckpointCallback(out / runs.CHECKPOINTS, write=chief),
    ]
    return callbacks + (_loggers(out / runs.LOGS, resume=resumed) if chief else [])


def _final_model(model, model_cfg: ModelConfig, train_cfg: TrainConfig):
    """The fitted model, or its full-size copy when it was trained on crops."""
    from .setup import resize_model

    full = _eval_config(model_cfg, train_cfg)
    return model if full is None else resize_model(model, full)


def _eval_config(model_cfg: ModelConfig, train_cfg: TrainConfig) -> Optional[ModelConfig]:
    """The model at its input size, when training runs on crops of another size."""
    crop = train_cfg.crop_size
    if crop is None or tuple(crop) == tuple(model_cfg.input_size):
        return None
    return model_cfg.replace(weights=None)


def _load_data(model_cfg: ModelConfig, data_cfg: DataConfig, train_cfg: TrainConfig):
    """(train, val) SegDatasets, checked against the model and the batch size."""
    from ..data.datasets import load_dataset, load_splits

    train_ds = load_splits(data_cfg, data_cfg.train_splits)
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
    callbacks, verbose = _progress(callbacks, verbose)
    if train_cfg.strategy == "multiworker":
        from .distributed_loop import fit_distributed

        fit_distributed(
            model,
            strategy,
            data,
            epochs=train_cfg.epoch_limit,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            callbacks=callbacks,
            verbose=verbose,
        )
        return
    model.fit(
        data,
        epochs=train_cfg.epoch_limit,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )


def _progress(callbacks: list, verbose: int):
    """(callbacks, Keras' verbose): Keras' bar only where stdout, which it draws on, is a
    terminal; elsewhere (a log file, CI, a pipe) no bar and an `EpochLog` line per epoch."""
    if not verbose:
        return callbacks, 0
    if on_terminal(sys.stdout):
        return callbacks, 1
    from .callbacks import EpochLog

    return [EpochLog(), *callbacks], 0  # first: the epoch's line before its validation's


def _loggers(folder: Path, resume: bool) -> list:
    """CSV history always; TensorBoard event files when the tensorboard package is there."""
    keras = deps.keras()
    folder.mkdir(parents=True, exist_ok=True)
    loggers = [keras.callbacks.CSVLogger(str(folder / "history.csv"), append=resume)]
    if deps.available("tensorboard"):
        loggers.append(keras.callbacks.TensorBoard(log_dir=str(folder), write_graph=False))
    else:
        _log.warning("tensorboard is not installed: logging to logs/history.csv only "
                     "(pip install tensorboard for TensorBoard event files)")
    return loggers

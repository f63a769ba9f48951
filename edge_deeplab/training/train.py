"""`train()`: a DeepLab run from configs to a run folder (needs TensorFlow).

The run folder's files are described in `run_folder`; the model a run fits (crop size,
imported weights, frozen BatchNorm, optimizer) is made in `setup`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .. import deps, runs
from ..config import DataConfig, ModelConfig, TrainConfig
from ..errors import InvalidInputError


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
        verbose: 0 silent, 1 Keras progress bar and per-epoch validation lines.
        time_budget_s: stop between epochs once the next one would end past this many
            seconds (the final model is still written).
        memory_limit_gb: refuse a run whose memory estimate exceeds this (default: 90% of
            this machine's RAM), before anything is allocated.

    Returns:
        The run folder.
    """
    from ..data.pipeline import train_pipeline
    from .memory import check_training_memory
    from .run_folder import check_run_folder, finish, run_metadata, write_config
    from .setup import resolve_weights
    from .strategy import is_chief, make_strategy

    out = Path(out_dir)
    strategy = make_strategy(train_cfg.strategy)  # first: multiworker must precede other TF ops
    check_training_memory(model_cfg, data_cfg, train_cfg, memory_limit_gb)
    model_cfg = resolve_weights(model_cfg, out, resume)
    last = check_run_folder(out, model_cfg, resume)
    train_ds, val_ds = _load_data(model_cfg, data_cfg, train_cfg)
    meta, chief = run_metadata(train_ds.labels, model_cfg, data_cfg, out), is_chief()
    if chief:
        write_config(out, model_cfg, data_cfg, train_cfg)
    deps.keras().utils.set_random_seed(train_cfg.seed)
    steps = train_cfg.steps_per_epoch or max(1, len(train_ds) // train_cfg.batch_size)
    with strategy.scope():
        model, initial_epoch = _start(out, last is not None, model_cfg, train_cfg, steps, train_ds, verbose)
    data = train_pipeline(train_ds, meta, train_cfg.batch_size, train_cfg.augment, seed=train_cfg.seed,
                          crop_size=train_cfg.crop_size)
    callbacks = _callbacks(out, val_ds, meta, model_cfg, train_cfg, chief, verbose, time_budget_s, last is not None)
    start = time.perf_counter()
    if initial_epoch < train_cfg.epochs:
        _fit(model, strategy, data, train_cfg, initial_epoch, steps, callbacks, verbose)
    if chief:
        finish(out, _final_model(model, model_cfg, train_cfg), meta, time.perf_counter() - start, steps, model)
    return out


def _start(out: Path, resuming: bool, model_cfg, train_cfg, steps: int, train_ds, verbose: int):
    """(model, epochs done): the newest readable checkpoint's, or a freshly built one's."""
    from .checkpoints import load_latest_checkpoint
    from .optimizers import make_schedule
    from .setup import compile_model

    if not resuming:
        weights = None
        if train_cfg.class_balance:
            from .losses import balanced_class_weights

            weights = balanced_class_weights(train_ds.masks, model_cfg.num_classes, train_ds.ignore_label,
                                             train_cfg.class_balance)
            if verbose:
                print("class weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(train_ds.labels, weights)))
        return compile_model(model_cfg, train_cfg, steps, train_ds.ignore_label, verbose, weights), 0
    # The newest checkpoint that loads; a damaged one falls back to the one before.
    epoch, model = load_latest_checkpoint(out / runs.CHECKPOINTS, report=lambda m: print(m, flush=True))
    # Re-plan the schedule for the epochs asked now: a run extended past its first plan
    # would otherwise go on at the final learning rate, 0. The optimizer step (hence the
    # position in the schedule) comes from the checkpoint.
    model.optimizer.learning_rate = make_schedule(train_cfg, steps)
    if verbose:
        step = int(model.optimizer.iterations.numpy())
        print(f"resuming {out} after epoch {epoch} (optimizer step {step})", flush=True)
    return model, epoch


def _callbacks(out, val_ds, meta, model_cfg, train_cfg, chief, verbose, time_budget_s, resumed) -> list:
    from .callbacks import CheckpointCallback, TimeBudget, ValidationCallback

    callbacks = [
        TimeBudget(time_budget_s, verbose),  # first: the last epoch it allows is validated
        ValidationCallback(val_ds, meta, verbose=verbose if chief else 0, every=train_cfg.val_every,
                           epochs=train_cfg.epochs, eval_config=_eval_config(model_cfg, train_cfg)),
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

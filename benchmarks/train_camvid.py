"""Train a DeepLab on CamVid (../shared/data/camvid) and score it on the val split.

Prints and writes (JSON) the val mIoU, per-class IoU, training images/s, and the training
step time with and without the input pipeline: steps on one cached in-memory batch versus
steps fed by the tf.data pipeline (random scale, crop, flip, colour jitter), alternated in
rounds and compared by their medians (the machine may be shared). The pipeline should cost
at most ~1.1x.

The run folder is a normal training run (camvid labels and palette, ignore label 11), so
convert / eval / report take it as MODEL. A wall-time budget sizes the number of epochs
(from the measured step time) so the poly schedule ends on time, and stops between epochs
if the machine slows down.

Example:
    python benchmarks/train_camvid.py --out /work/runs/camvid --budget-min 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_deeplab.config import AugmentConfig, DataConfig, ModelConfig, TrainConfig  # noqa: E402
from edge_deeplab.presets import CAMVID_LABELS  # noqa: E402


def shared_dir() -> Path:
    env = os.environ.get("EDGE_DEEPLAB_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(shared_dir() / "data" / "camvid"))
    p.add_argument("--out", default="runs/camvid")
    p.add_argument("--json", default=None, help="benchmark JSON (default OUT/benchmark.json)")
    p.add_argument(
        "--budget-min", type=float, default=32.0, help="wall-time budget for training, minutes"
    )
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--input-size", default="192x256", help="HxW (CamVid is 360x480)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--bn-momentum", type=float, default=0.95)
    p.add_argument("--head", default="aspp", choices=["aspp", "lite"])
    p.add_argument("--no-decoder", action="store_true")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument(
        "--epochs",
        type=int,
        help="total epochs (default: sized from the budget); resuming an existing --out "
        "continues its run (and its poly schedule) up to this many",
    )
    p.add_argument(
        "--timing-steps", type=int, default=6, help="steps per timing round (3 rounds each)"
    )
    return p.parse_args(argv)


def time_steps(model, data, tf, steps: int, rounds: int = 3):
    """Median step seconds on a cached batch vs through the pipeline, alternated."""
    it = iter(data)
    cached = next(it)
    cached = (tf.identity(cached[0]), tf.identity(cached[1]))
    model.train_on_batch(*cached)  # trace / warm up
    model.train_on_batch(*next(it))
    with_cache, with_pipe = [], []
    for _ in range(rounds):
        for _ in range(steps):
            t = time.perf_counter()
            model.train_on_batch(*cached)
            with_cache.append(time.perf_counter() - t)
        for _ in range(steps):
            t = time.perf_counter()
            model.train_on_batch(*next(it))
            with_pipe.append(time.perf_counter() - t)
    return statistics.median(with_cache), statistics.median(with_pipe)


def main(argv=None) -> int:
    args = parse_args(argv)
    wall0 = time.perf_counter()
    from edge_deeplab import deps
    from edge_deeplab.data.datasets import load_dataset
    from edge_deeplab.data.pipeline import train_pipeline
    from edge_deeplab.evaluation import evaluate
    from edge_deeplab.segmenter import Segmenter
    from edge_deeplab.training import train
    from edge_deeplab.training.callbacks import ModelRunner
    from edge_deeplab.training.checkpoints import latest_checkpoint, load_checkpoint
    from edge_deeplab.training.train import _compile, _metadata

    tf = deps.tensorflow()
    h, w = (int(v) for v in args.input_size.lower().split("x"))
    model_cfg = ModelConfig(
        num_classes=11,
        input_size=(h, w),
        alpha=args.alpha,
        output_stride=16,
        head=args.head,
        decoder=not args.no_decoder,
        head_filters=128,
        bn_momentum=args.bn_momentum,
        dropout=0.1,
    )
    data_cfg = DataConfig(format="folder", path=args.data, ignore_label=11, labels=CAMVID_LABELS)
    augment = AugmentConfig(
        scale_range=(0.75, 1.5), brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02
    )
    train_ds = load_dataset(data_cfg, "train")
    steps = len(train_ds) // args.batch_size
    print(
        f"CamVid train {len(train_ds)} images, {steps} steps/epoch of {args.batch_size}", flush=True
    )

    # Step time without / with the input pipeline, on a throwaway model.
    meta = _metadata(train_ds.labels, model_cfg, data_cfg, Path(args.out))
    probe = _compile(model_cfg, TrainConfig(learning_rate=args.lr), steps, 11)
    data = train_pipeline(train_ds, meta, args.batch_size, augment)
    cached_s, pipe_s = time_steps(probe, data, tf, args.timing_steps)
    del probe, data
    print(
        f"step time: cached batch {cached_s * 1e3:.0f} ms, "
        f"through the pipeline {pipe_s * 1e3:.0f} ms "
        f"(ratio {pipe_s / cached_s:.2f})",
        flush=True,
    )

    # Size the run so the poly schedule ends within the budget (val + checkpoint ~15% extra).
    budget_s = args.budget_min * 60 - (time.perf_counter() - wall0) - 60
    epochs = int(max(1, min(args.max_epochs, budget_s / (steps * pipe_s * 1.25 + 12))))
    epochs = args.epochs or epochs
    before = latest_checkpoint(Path(args.out) / "checkpoints")
    before = before[0] if before else 0
    print(f"training {epochs} epochs within {budget_s / 60:.1f} min", flush=True)
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        optimizer="adam",
        learning_rate=args.lr,
        augment=augment,
        seed=0,
    )
    t0 = time.perf_counter()
    run = train(
        model_cfg,
        data_cfg,
        train_cfg,
        args.out,
        resume=(Path(args.out) / "checkpoints").exists(),
        verbose=2,
        time_budget_s=budget_s,
    )
    train_s = time.perf_counter() - t0
    history = json.loads((run / "history.json").read_text())

    model = load_checkpoint(run / "model.keras")
    val_ds = load_dataset(data_cfg, "val")
    t1 = time.perf_counter()
    result = evaluate(Segmenter(ModelRunner(model, meta), meta), val_ds)
    eval_s = time.perf_counter() - t1
    epochs_done = len(history["history"])
    session_epochs = max(1, epochs_done - before)
    report = {
        "dataset": args.data,
        "run": str(run),
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict(),
        "epochs_done": epochs_done,
        "train_seconds": train_s,
        "wall_seconds": time.perf_counter() - wall0,
        "epochs_this_session": session_epochs,
        "train_images_per_s": session_epochs * steps * args.batch_size / train_s,
        "step_ms_cached_batch": cached_s * 1e3,
        "step_ms_pipeline": pipe_s * 1e3,
        "pipeline_ratio": pipe_s / cached_s,
        "eval_images_per_s": len(val_ds) / eval_s,
        "val": result.to_dict(),
        "history": history["history"],
    }
    print(
        f"\nval mIoU {result.miou:.4f}  pixel accuracy {result.pixel_accuracy:.4f}  "
        f"({epochs_done} epochs, "
        f"{train_s / 60:.1f} min training, {report['wall_seconds'] / 60:.1f} min wall)"
    )
    for name, iou in result.per_class_iou.items():
        print(f"  {name:12s} {iou:.4f}")
    print(
        f"training {report['train_images_per_s']:.1f} images/s; "
        f"eval {report['eval_images_per_s']:.1f} images/s"
    )
    out_json = Path(args.json or run / "benchmark.json")
    from edge_deeplab.imageio import atomic_write_text

    atomic_write_text(out_json, json.dumps(report, indent=2))
    print(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

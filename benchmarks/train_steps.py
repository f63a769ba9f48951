"""Where a CamVid recipe training step goes on this CPU: the input pipeline's share, XLA, threads.

    python benchmarks/train_steps.py --json train_steps.json

Times `fit` steps of the recipe's model (benchmarks/train_camvid.py's configs: Coral's
alpha 1.0 lite head + a 96-channel decoder, 256x320 crops, batch 8), each setting in its
own process (thread settings and XLA are fixed when TensorFlow starts):

- pipeline: the real tf.data pipeline (decode-free: images are in memory; crops, scale and
  colour augmentation), as training runs;
- no-pipeline: one batch taken from it, repeated: the step without any input work, so
  pipeline share = 1 - no-pipeline / pipeline (when the pipeline cannot keep up);
- xla: the pipeline with `jit_compile=True`;
- intra1 / inter1: the pipeline with 1 intra-op (or inter-op) thread instead of TF's default.

Prints ms per step for each and writes the figures as JSON. Compare the ratios, measured
side by side in one run; absolute times differ from machine to machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("pipeline", "no-pipeline", "xla", "intra1", "inter1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default="train_steps.json")
    p.add_argument("--steps", type=int, default=12, help="timed steps per setting")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--mode", help=argparse.SUPPRESS)  # one setting, in a child process
    return p.parse_args(argv)


def measure(mode: str, steps: int) -> float:
    """Seconds per fit step in `mode` (run in a fresh process)."""
    import tensorflow as tf

    if mode in ("intra1", "inter1"):
        (tf.config.threading.set_intra_op_parallelism_threads if mode == "intra1"
         else tf.config.threading.set_inter_op_parallelism_threads)(1)
    sys.path.insert(0, str(Path(__file__).parent))
    import train_camvid

    from edge_deeplab.data.datasets import load_dataset
    from edge_deeplab.data.pipeline import train_pipeline
    from edge_deeplab.training.run_folder import run_metadata
    from edge_deeplab.training.setup import compile_model

    args = train_camvid.parse_args(["--out", "unused"])
    model_cfg, data_cfg, train_cfg = train_camvid.configs(args, budget_s=60.0)
    train_cfg = train_cfg.replace(jit_compile=(mode == "xla"))
    train_ds = load_dataset(data_cfg, "train")
    meta = run_metadata(train_ds.labels, model_cfg, data_cfg, Path("."))
    model = compile_model(model_cfg, train_cfg, steps, 11)
    data = train_pipeline(train_ds, meta, train_cfg.batch_size, train_cfg.augment, crop_size=train_cfg.crop_size)
    if mode == "no-pipeline":
        data = tf.data.Dataset.from_tensors(next(iter(data))).repeat()
    model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.mode:
        print(json.dumps({"mode": args.mode, "step_s": measure(args.mode, args.steps)}))
        return 0
    figures = {}
    for mode in args.modes.split(","):
        child = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps)],
                               capture_output=True, text=True, check=False)
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode or not lines:
            print(f"{mode}: failed: {child.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        figures[mode] = json.loads(lines[-1])["step_s"]
        print(f"{mode:12s} {figures[mode] * 1e3:7.0f} ms/step", flush=True)
    if "pipeline" in figures and "no-pipeline" in figures:
        figures["pipeline_share"] = max(0.0, 1 - figures["no-pipeline"] / figures["pipeline"])
        print(f"input pipeline share of a step: {100 * figures['pipeline_share']:.0f}%")
    from edge_deeplab.bench.machine import describe_machine
    from edge_deeplab.imageio import atomic_write_text

    atomic_write_text(args.json, json.dumps({"machine": describe_machine(), "steps": args.steps, **figures}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The main job in one call: train -> convert -> report -> demo on the synthetic dataset.

Everything lands in one folder:

    OUT/run/          the training run (model.keras, metadata, checkpoints, TensorBoard logs)
    OUT/artifacts/    int8 TFLite, ONNX, OpenVINO FP32 and INT8, each with its parity report
    OUT/report.*      the accuracy-vs-latency report (JSON, Markdown, HTML)
    OUT/demo.mp4      a headless demo on generated moving scenes, and demo_stats.json

A step whose outputs already exist is reused, so a killed quickstart picks up where it was
(training itself resumes from its last checkpoint).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Tuple

from .config import DataConfig, ModelConfig, TrainConfig
from .runs import FINAL_MODEL

DEMO_ARTIFACT = ("tflite", "int8")  # the target and precision of the artifact the demo runs
_log = logging.getLogger(__name__)


def conversions() -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
    """What quickstart converts, as (target, precisions): each converter's `quickstart`."""
    from .converters import CONVERTERS

    return tuple((name, cls.quickstart) for name, cls in CONVERTERS.items() if cls.quickstart)


def report_variants() -> str:
    """The report's --variants: exactly the artifacts quickstart made."""
    return ",".join(f"{name}:{p}" for name, precisions in conversions() for p in precisions)


@dataclass(frozen=True)
class QuickstartPlan:
    """How big the quickstart is: the defaults of every config, or a smoke-test budget."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    calib_size: int = 200
    report_limit: int = 0  # 0: the whole val split
    bench_seconds: float = 2.0
    demo_frames: int = 90


def smoke_plan() -> QuickstartPlan:
    """A reduced budget (a couple of minutes) that still trains a model worth converting.

    The model must learn enough for its logits to have margins: an untrained one fails the
    int8 parity check, which is the check doing its job, not a smoke test.
    """
    size = (64, 64)
    return QuickstartPlan(
        model=ModelConfig(num_classes=3, input_size=size, head_filters=32, decoder=False, dropout=0.0),
        data=DataConfig(num_classes=3, synthetic_train=192, synthetic_val=16, synthetic_size=size),
        train=TrainConfig(epochs=6, batch_size=16),
        # 32 calibration images left OpenVINO int8 at 96.9-97.0% agreement (bar 97%) on two of three
        # smoke models here (Sapphire Rapids); 64 give the same two models 97.6% (parity images unchanged).
        calib_size=64,
        report_limit=16,
        bench_seconds=0.5,
        demo_frames=24,
    )


PLANS = {"default": QuickstartPlan, "smoke": smoke_plan}


def quickstart(out_dir="quickstart", plan: str = "default", threads=None) -> Dict[str, Path]:
    """Run the whole chain; return the paths of what it made (run, artifacts, report, demo)."""
    from .errors import InvalidInputError

    if plan not in PLANS:
        raise InvalidInputError(f"unknown quickstart plan {plan!r}; valid: {', '.join(PLANS)}")
    chosen = PLANS[plan]()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    steps = (("train", _train), ("convert", _convert), ("report", _report), ("demo", _demo))
    made: Dict[str, Path] = {}
    for number, (name, step) in enumerate(steps, start=1):
        start = time.perf_counter()
        _log.info(f"[quickstart] step {number}/{len(steps)}: {name}")
        made.update(step(chosen, out, made, threads))
        _log.info(f"[quickstart] step {number}/{len(steps)}: {name} done in {time.perf_counter() - start:.0f} s")
    return made


def _train(plan: QuickstartPlan, out: Path, made: dict, threads) -> dict:
    from .training import train

    run = out / "run"
    if (run / FINAL_MODEL).is_file():
        _log.info(f"[quickstart] reusing the trained model in {run}")
        return {"run": run}
    resume = (run / "checkpoints").is_dir()
    return {"run": Path(train(plan.model, plan.data, plan.train, run, resume=resume))}


def _convert(plan: QuickstartPlan, out: Path, made: dict, threads) -> dict:
    from .converters import convert

    artifacts = out / "artifacts"
    for target, precisions in conversions():
        todo = [p for p in precisions if not _artifact(artifacts, target, p).exists()]
        if todo:
            convert(made["run"], targets=[target], precisions=todo, out_dir=artifacts,
                    calib_data="synthetic", calib_size=plan.calib_size)
    return {"artifacts": artifacts}


def _artifact(folder: Path, target: str, precision: str) -> Path:
    from .converters import CONVERTERS

    return CONVERTERS.get(target).artifact_path(folder, precision)


def _report(plan: QuickstartPlan, out: Path, made: dict, threads) -> dict:
    from .bench.report import BenchOptions, report

    result = report(made["run"], plan.data, out, variants=report_variants(), threads=threads,
                    limit=plan.report_limit or None, calib_data="synthetic",
                    bench=BenchOptions(min_time_s=plan.bench_seconds))
    return {f"report_{kind}": path for kind, path in result.paths.items()}


def _demo(plan: QuickstartPlan, out: Path, made: dict, threads) -> dict:
    """A headless demo on generated moving scenes, through the demo's Python API."""
    import json

    from .demos.pipeline import DemoOptions, run_demo
    from .imageio import atomic_write_text
    from .runtimes import load_runtime
    from .segmenter import Segmenter

    video, stats_path = out / "demo.mp4", out / "demo_stats.json"
    options = DemoOptions(max_frames=plan.demo_frames, output=str(video))
    runtime = load_runtime(_artifact(made["artifacts"], *DEMO_ARTIFACT), threads=threads)
    with Segmenter(runtime, upsample="labels", shrink="linear") as segmenter:
        stats = run_demo(segmenter, "synthetic", options)
    atomic_write_text(stats_path, json.dumps(stats, indent=2) + "\n")
    if stats["end"] in ("interrupted", "terminated", "source lost"):
        from .errors import EdgeDeeplabError

        raise EdgeDeeplabError(f"the demo step ended early: {stats['end']} after {stats['frames']} frames")
    return {"demo": video, "demo_stats": stats_path}

"""The report on a target: every variant's latency (and, asked for, accuracy) measured on
the device, merged into the report's rows with the host's figures kept beside them.

The host makes and checks the artifacts as usual; then the device times each artifact with
its own edge install (`bench --json`, one call per engine) and, with `accuracy=True`, scores
it on the very images the host evaluated (`eval --json` on a folder dataset written from
them, so the mIoU is comparable to the host's). A row's latency columns are then the
device's; `row.host` keeps the host's. The Keras reference is not run there (the edge
install has no TensorFlow): its latency moves to `row.host` as well. Nothing is merged
when the connection drops: the rows are changed only after every device call returned.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from ..bench.report_row import round_or_none
from ..status import Status
from .cli import Uploads
from .remote import JSON_OUT, Device
from .ssh import ConnectionLostError, TargetError

LATENCY_FIELDS = ("latency_p50_ms", "latency_p90_ms", "latency_mean_ms", "infer_p50_ms", "fps", "peak_mem_mb",
                  "bench_runs", "stages_p50_ms")
ACCURACY_FIELDS = ("miou", "pixel_accuracy", "per_class_iou")
_log = logging.getLogger(__name__)


class TargetMeasurer:
    """The `on_target` step of `bench.report.report`: called with the measured rows and the
    evaluated dataset; returns the device's description for the report's machine section.

    Args:
        target: the --target text (or a Target).
        bench: the report's BenchOptions. threads, device: engine options, as on the host.
        accuracy: also evaluate every artifact on the device.
        eval_options: the evaluation protocol's `scales` and `flip`.
    """

    def __init__(self, target, bench, threads: Optional[int], device: Optional[str], accuracy: bool,
                 eval_options: Dict[str, object]):
        self.target, self.bench, self.threads, self.device = target, bench, threads, device
        self.accuracy, self.eval_options = accuracy, eval_options

    def __call__(self, rows, dataset) -> dict:
        self.ignore_label = dataset.ignore_label
        todo = [r for r in rows if r.artifact and r.miou is not None and not r.variant.is_reference]
        uploads = Uploads()
        refs = {id(r): uploads.artifact(r.artifact) for r in todo}
        with tempfile.TemporaryDirectory(prefix="edge-target-data-") as scratch:
            data_ref = uploads.folder(_write_folder_dataset(dataset, Path(scratch))) if self.accuracy else None
            with Device(self.target) as device:
                device.upload(uploads.bundles.values())
                timed, failures = self._bench(device, todo, refs)
                scored = self._eval(device, todo, refs, data_ref, failures) if self.accuracy else {}
                machine = device.describe()
        for row in rows:  # only now, with every answer in hand, are the rows changed
            _merge(row, machine["target"], timed.get(id(row)), scored.get(id(row)), failures.get(id(row)))
        return machine

    def _timing_words(self) -> List[str]:
        words = ["--min-time", repr(self.bench.min_time_s), "--max-runs", str(self.bench.max_runs),
                 "--warmup", str(self.bench.warmup)]
        if self.threads:
            words += ["--threads", str(self.threads)]
        if self.device:
            words += ["--device", self.device]
        return words

    def _bench(self, device: Device, todo, refs):
        """One `bench` per engine: {row id: the device's bench row}, {row id: failure}."""
        by_runtime = defaultdict(list)
        for row in todo:
            by_runtime[row.variant.runtime].append(row)
        timed, failures = {}, {}
        for runtime, group in by_runtime.items():
            _log.info(f"{device.name}: timing {len(group)} {runtime} variant(s) ...")
            words = [refs[id(r)] for r in group] + ["--json", JSON_OUT, "--runtime", runtime, *self._timing_words()]
            try:
                answer = device.run("bench", words)
            except ConnectionLostError:
                raise
            except TargetError as exc:  # this engine fails there (e.g. not installed): these rows say so
                failures.update({id(r): str(exc) for r in group})
                continue
            results = {str(row.get("model", "")): row for row in answer.result or []}
            for row in group:
                cached = f"{refs[id(row)]['blob']}/{refs[id(row)]['path']}"
                found = next((v for k, v in results.items() if k.endswith(cached)), None)
                if found is None:
                    failures[id(row)] = f"on {device.name}: {_skipped_reason(answer.stderr, row)}"
                else:
                    timed[id(row)] = found
        return timed, failures

    def _eval(self, device: Device, todo, refs, data_ref, failures):
        scored = {}
        for row in todo:
            if id(row) in failures:
                continue
            _log.info(f"{device.name}: evaluating {row.variant.ident} ...")
            words = [refs[id(row)], "--data", data_ref, "--format", "folder", "--json", JSON_OUT,
                     "--runtime", row.variant.runtime, *self._eval_words()]
            try:
                scored[id(row)] = device.run("eval", words).result
            except ConnectionLostError:
                raise
            except TargetError as exc:
                failures[id(row)] = str(exc)
        return scored

    def _eval_words(self) -> List[str]:
        options = self.eval_options
        words = ["--split", "val", "--ignore-label", str(self.ignore_label)]
        words += ["--scales", ",".join(repr(float(s)) for s in options["scales"])]
        if options.get("flip"):
            words.append("--flip")
        if self.threads:
            words += ["--threads", str(self.threads)]
        if self.device:
            words += ["--device", self.device]
        return words


def _skipped_reason(stderr: str, row) -> str:
    for line in stderr.splitlines():
        if "skipped" in line and Path(row.artifact).name in line:
            return line.split(": ", 2)[-1].strip()
    return f"{row.variant.ident} was not timed"


def _write_folder_dataset(dataset, root: Path) -> Path:
    """The evaluated images and masks as a `folder` dataset (lossless PNG, same order)."""
    from ..imageio import write_image

    for folder in ("images", "masks"):
        (root / "val" / folder).mkdir(parents=True)
    for index in range(len(dataset)):
        image, mask = dataset[index][0], dataset[index][1]
        write_image(root / "val" / "images" / f"{index:05d}.png", image)
        write_image(root / "val" / "masks" / f"{index:05d}.png", mask)
    return root


def _merge(row, target: str, timed: Optional[dict], scored: Optional[dict], failure: Optional[str]) -> None:
    """The device's figures into `row`; the host's into `row.host`."""
    host = {name: getattr(row, name) for name in LATENCY_FIELDS}
    host["device"] = row.device
    row.target = target
    for name in LATENCY_FIELDS:
        setattr(row, name, None if name != "stages_p50_ms" else {})
    if scored is not None:
        host.update({name: getattr(row, name) for name in ACCURACY_FIELDS})
        row.miou, row.pixel_accuracy = scored.get("miou"), scored.get("pixel_accuracy")
        row.per_class_iou = dict(scored.get("per_class_iou") or {})
    row.host = host
    if row.variant.is_reference:  # not run there: no TensorFlow in the device's edge install
        row.target = None
        return
    if timed is None:
        if failure and row.status == Status.OK:
            row.fail(Status.NOT_AVAILABLE if "not installed" in failure else Status.RUN_FAILED, failure)
        return
    stages = {k: round(float(v), 3) for k, v in (timed.get("stages") or {}).items()}
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_mean_ms", "fps", "peak_mem_mb"):
        setattr(row, name, round_or_none(timed.get(name)))  # rounded as the host's are
    row.infer_p50_ms, row.stages_p50_ms, row.bench_runs = stages.get("infer"), stages, timed.get("runs")
    row.device = f"{timed.get('device', '')}@{target}"

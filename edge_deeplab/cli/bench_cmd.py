"""`edge-deeplab bench MODEL...`: end-to-end latency of one or more models, as a table and JSON.

Every model is timed by the one harness (`edge_deeplab.bench.harness.benchmark`): warm-up,
then time-bounded repeats of image in -> class map at the image's size out; median, p90,
mean, min, throughput, per-stage medians (preprocess, infer, postprocess) and peak memory.
With `--target TARGET` the device times them with its own edge install (the models copied
through its content cache); its rows come back, marked with the device's name.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..bench.harness import BenchOptions
from ..errors import EdgeDeeplabError
from ..targets.cli import Uploads, add_target_arg, model_source_words, run_on_target
from ..targets.remote import JSON_OUT
from .common import add_model_source_args, add_runtime_args, open_segmenter
from .option_flags import add_option_flags, keywords, options_from_args

ORDER = 80  # its place in `edge-deeplab --help`
_log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="measure end-to-end latency (median, p90, per stage) of models",
        description="Time image -> class map (pre- and post-processing included) for each MODEL "
        "with the same harness the report and the demos use.",
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="training run folders or model files"
    )
    parser.add_argument(
        "--image", help="time on this image (default: a generated one at the model's input size)"
    )
    add_option_flags(parser, BenchOptions)  # --warmup, --min-time, --max-runs: declared there
    parser.add_argument(
        "--json", metavar="OUT", help="also write the rows as JSON (a list, one object per model)"
    )
    add_target_arg(parser)
    add_model_source_args(parser)
    add_runtime_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..bench.harness import benchmark, format_table
    from ..imageio import atomic_write_text, read_image

    timing = options_from_args(BenchOptions, args)  # checks itself
    if args.target:
        rows, failed = _on_target(args, timing)
    else:
        rows, failed = _here(args, benchmark, read_image(args.image) if args.image else None, timing)
    if rows:
        print(format_table(rows))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    if failed:
        _log.error(f"edge-deeplab bench: {len(failed)} model(s) failed: {', '.join(failed)}")
        return 1
    return 0


def _here(args, benchmark, image, timing: BenchOptions):
    """(rows, failed models) measured on this machine."""
    rows, failed = [], []
    for model in args.models:
        try:
            segmenter = open_segmenter(args, model)
        except EdgeDeeplabError as exc:
            if len(args.models) == 1:
                raise
            _log.warning(f"edge-deeplab bench: skipped {model}: {exc}")
            failed.append(model)
            continue
        with segmenter.runtime:
            rows.append(
                benchmark(segmenter, image, **keywords(timing), name=str(model))
            )
        _log.info(f"{model}: {rows[-1]['latency_p50_ms']:.2f} ms median over {rows[-1]['runs']} runs")
    return rows, failed


def _on_target(args, timing: BenchOptions):
    """(rows, failed models) measured by the device; each row's device names the target."""
    uploads = Uploads()
    refs = [uploads.artifact(model) for model in args.models]
    words = [*refs, "--json", JSON_OUT, "--min-time", repr(timing.min_time_s), "--max-runs", str(timing.max_runs),
             "--warmup", str(timing.warmup)]
    words += model_source_words(args, uploads)
    if args.image:
        words += ["--image", uploads.file(args.image)]
    rows, machine = run_on_target(args.target, "bench", words, uploads)
    local = {f"{ref['blob']}/{ref['path']}": model for ref, model in zip(refs, args.models)}
    for row in rows:  # the device's cache path -> the name the user gave
        device_path = str(row.get("model", ""))
        row["model"] = next((m for key, m in local.items() if device_path.endswith(key)), device_path)
        row["device"] = f"{row.get('device', '')}@{machine['target']}"
        row["target"], row["machine"] = machine["target"], machine
    done = {row["model"] for row in rows}
    return rows, [model for model in args.models if model not in done]

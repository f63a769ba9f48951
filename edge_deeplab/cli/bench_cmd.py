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

from ..errors import EdgeDeeplabError, InvalidInputError
from ..targets.cli import Uploads, add_target_arg, flag_words, model_source_words, run_on_target
from ..targets.remote import JSON_OUT
from .common import add_model_source_args, add_runtime_args, finite_float, open_segmenter

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
    parser.add_argument(
        "--min-time",
        type=finite_float,
        default=2.0,
        metavar="S",
        help="seconds of timed repeats per model (default 2)",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=200,
        help="at most this many timed runs per model (default 200)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
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

    if args.min_time < 0 or args.max_runs < 1 or args.warmup < 0:
        raise InvalidInputError("--min-time must be >= 0, --max-runs >= 1 and --warmup >= 0")
    if args.target:
        rows, failed = _on_target(args)
    else:
        rows, failed = _here(args, benchmark, read_image(args.image) if args.image else None)
    if rows:
        print(format_table(rows))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    if failed:
        _log.error(f"edge-deeplab bench: {len(failed)} model(s) failed: {', '.join(failed)}")
        return 1
    return 0


def _here(args, benchmark, image):
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
                benchmark(
                    segmenter,
                    image,
                    warmup=args.warmup,
                    min_time_s=args.min_time,
                    max_runs=args.max_runs,
                    name=str(model),
                )
            )
        _log.info(f"{model}: {rows[-1]['latency_p50_ms']:.2f} ms median over {rows[-1]['runs']} runs")
    return rows, failed


def _on_target(args):
    """(rows, failed models) measured by the device; each row's device names the target."""
    uploads = Uploads()
    refs = [uploads.artifact(model) for model in args.models]
    words = [*refs, "--json", JSON_OUT, *flag_words(args, ("min_time", "max_runs", "warmup"))]
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

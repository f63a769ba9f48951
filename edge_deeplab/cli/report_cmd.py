"""`edge-deeplab report`: accuracy vs latency of every format and precision of a model.

Exit status: 0 when the report was written (and the --max-miou-drop gate, if set, held);
3 when a variant lost more mIoU than --max-miou-drop allows (the report is still written);
2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InvalidInputError
from ..status import Status
from .common import parse_floats

ORDER = 90  # its place in `edge-deeplab --help`
GATE_FAILED = 3
VARIANT_FAILED = 4  # a variant named in --variants could not be converted, run or scored


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="accuracy-vs-latency report over formats and precisions",
        description="Convert (or reuse), evaluate and benchmark every variant of a model; "
        "write report.json, report.md and report.html.",
    )
    parser.add_argument("model", help="training run folder or .keras file (the float reference)")
    parser.add_argument("--data", help="dataset root (not needed for --format synthetic)")
    parser.add_argument(
        "--format",
        default=None,
        choices=_dataset_formats(),
        help="dataset format (default: folder with --data, else synthetic)",
    )
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument(
        "--ignore-label",
        type=int,
        default=None,
        help="mask value excluded from metrics (default: the model's metadata)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (artifacts go to OUT/artifacts)"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated FORMAT[:PRECISION] (e.g. tflite:int8,openvino); default: all",
    )
    parser.add_argument(
        "--runtimes",
        default=None,
        help="comma-separated engines to run the artifacts on (e.g. onnxruntime,openvino); "
        "default: each format's own engine",
    )
    parser.add_argument(
        "--max-miou-drop",
        type=float,
        default=None,
        help="exit with status 3 if any variant loses more mIoU points than this",
    )
    parser.add_argument(
        "--int8-agreement", type=float, default=None,
        help="argmax agreement with the float model an int8 conversion must reach (default 0.97)",
    )
    _add_measurement_args(parser)
    parser.add_argument(
        "--reconvert", action="store_true", help="convert again even where artifacts exist"
    )
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="add an int8-mixed row for every format that makes it (TFLite, OpenVINO, ONNX): int8 "
        "with the fewest layers kept in float that hold --max-miou-drop (default 0.5 point) on the "
        "evaluated images",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _add_measurement_args(parser: argparse.ArgumentParser) -> None:
    """Engines, evaluation protocol and timing of every variant."""
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for every engine")
    parser.add_argument("--device", default=None, help="engine device (CPU, GPU, ...)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument(
        "--calib-data",
        default=None,
        help="folder of calibration images for int8 (default: the train split's images of a "
        "folder dataset; synthetic images for a model trained on the synthetic dataset)",
    )
    parser.add_argument(
        "--scales", type=parse_floats, default=(1.0,), help="evaluation scales (default: 1)"
    )
    parser.add_argument("--flip", action="store_true", help="also evaluate mirrored images")
    parser.add_argument(
        "--min-time", type=float, default=2.0, help="seconds to time each variant (default: 2)"
    )
    parser.add_argument(
        "--max-runs", type=int, default=200, help="timed runs per variant at most (default: 200)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    parser.add_argument(
        "--examples", type=int, default=3, help="example images in the HTML (default: 3)"
    )


def _dataset_formats():
    from ..data.datasets import DATASETS

    return DATASETS.names()


def _check(args) -> None:
    for name in ("threads", "limit", "max_runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.max_miou_drop is not None and args.max_miou_drop < 0:
        raise InvalidInputError(f"--max-miou-drop must be >= 0 (points), got {args.max_miou_drop}")
    if args.min_time < 0 or args.warmup < 0 or args.examples < 0:
        raise InvalidInputError("--min-time, --warmup and --examples must be >= 0")


def data_config(args, meta):
    """The DataConfig of --data/--format/--split, with the model's classes and ignore label."""
    from ..config import DataConfig

    # "--data synthetic" names the synthetic dataset here as in train and eval, not a folder.
    synthetic = args.data in (None, "synthetic")
    fmt = args.format or ("synthetic" if synthetic else "folder")
    ignore = meta.ignore_label if args.ignore_label is None else args.ignore_label
    if ignore != meta.ignore_label:
        print(
            f"edge-deeplab report: note: --ignore-label {ignore} differs from the model's "
            f"metadata ({meta.ignore_label}); using {ignore}",
            file=sys.stderr,
        )
    fields = dict(
        format=fmt, path=None if fmt == "synthetic" else args.data, ignore_label=ignore,
        labels=meta.labels, val_split=args.split,
    )
    if fmt == "synthetic":
        fields.update(synthetic_val=args.limit or 16, synthetic_size=meta.input_size)
    return DataConfig(**fields)


def _model_metadata(model):
    """The float model's metadata, read from its run folder without starting TensorFlow."""
    from ..metadata import ArtifactMetadata
    from ..runs import resolve_model_path, sidecar_metadata_path

    path = sidecar_metadata_path(resolve_model_path(model))
    if not path.is_file():
        raise InvalidInputError(
            f"{model}: no {path.name} beside the model; the report needs a training "
            "run (or a .keras with its .json metadata) to know the evaluation protocol"
        )
    return ArtifactMetadata.from_json(path.read_text(encoding="utf-8"))


def run(args) -> int:
    from ..bench.report import BenchOptions, report

    _check(args)
    meta = _model_metadata(args.model)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()] if args.runtimes else None
    result = report(
        args.model,
        data_config(args, meta),
        args.out,
        variants=args.variants,
        runtimes=runtimes,
        max_miou_drop=args.max_miou_drop,
        threads=args.threads,
        limit=args.limit,
        progress=not args.quiet,
        split=args.split,
        calib_data=args.calib_data,
        scales=args.scales,
        flip=args.flip,
        examples=args.examples,
        reconvert=args.reconvert,
        mixed_precision=args.mixed_precision,
        int8_agreement=args.int8_agreement,
        bench=BenchOptions(warmup=args.warmup, min_time_s=args.min_time, max_runs=args.max_runs),
    )
    from ..bench.render_md import markdown_table

    print(markdown_table(result.data))
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    gate = result.data.get("gate")
    if gate:
        print(f"gate: {gate['message']}", file=sys.stderr if not gate["passed"] else sys.stdout)
    failed = _requested_failures(args, result.rows)
    if failed:  # scripts must tell a report with missing rows from a complete one
        print(f"edge-deeplab report: requested variants not produced: {'; '.join(failed)}", file=sys.stderr)
        return VARIANT_FAILED
    return GATE_FAILED if gate and not gate["passed"] else 0


def _requested_failures(args, rows) -> list:
    """"id (status)" of each variant named in --variants that has no measurements."""
    if not args.variants:  # the default "all" lists formats this machine may lack
        return []
    return [f"{row.variant.ident} ({row.status})" for row in rows if row.status != Status.OK]

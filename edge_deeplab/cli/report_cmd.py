"""`edge-deeplab report`: accuracy vs latency of every format and precision of a model.

Exit status: 0 when the report was written (and the gates, if set, held); 3 when a variant
lost more mIoU than --max-miou-drop allows, or one of its classes more IoU than
--max-class-drop allows (the report is still written, those rows marked); 2 for a usage error.

`--target TARGET` times every converted variant on that device too (its own edge install;
`--target-accuracy` also scores them there) and `--pick` writes pick.json beside the report:
the fastest variant on that device within the mIoU budget. With --pick, status 3 also
means that no variant measured on the device is within the budget.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..converters.validation import DEFAULT_BUDGET
from ..errors import InvalidInputError
from ..status import Status
from .option_flags import add_option_flags, keywords, options_from_args

ORDER = 90  # its place in `edge-deeplab --help`
GATE_FAILED = 3
VARIANT_FAILED = 4  # a variant named in --variants could not be converted, run or scored
_log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..bench.report import BenchOptions, ReportOptions

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
    parser.add_argument(
        "--ignore-label",
        type=int,
        default=None,
        help="mask value excluded from metrics (default: the model's metadata)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (artifacts go to OUT/artifacts)"
    )
    add_option_flags(parser, ReportOptions)  # every option is declared on its field there
    add_option_flags(parser.add_argument_group("timing"), BenchOptions)
    _add_target_flags(parser.add_argument_group("measuring on a device"))
    return parser


def _add_target_flags(group) -> None:
    from ..targets.cli import add_target_arg

    add_target_arg(group)
    group.add_argument("--target-accuracy", action="store_true",
                       help="also evaluate every variant on the device (default: latency only)")
    group.add_argument("--pick", action="store_true",
                       help="write pick.json: the fastest variant on the device within --max-miou-drop "
                       f"(default {DEFAULT_BUDGET:g}; and --max-class-drop)")


def _dataset_formats():
    from ..data.datasets import DATASETS

    return DATASETS.names()


def data_config(args, meta):
    """The DataConfig of --data/--format/--split, with the model's classes and ignore label."""
    from ..config import DataConfig

    # "--data synthetic" names the synthetic dataset here as in train and eval, not a folder.
    synthetic = args.data in (None, "synthetic")
    fmt = args.format or ("synthetic" if synthetic else "folder")
    ignore = meta.ignore_label if args.ignore_label is None else args.ignore_label
    if ignore != meta.ignore_label:
        _log.warning(f"edge-deeplab report: note: --ignore-label {ignore} differs from the model's "
                     f"metadata ({meta.ignore_label}); using {ignore}")
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
    from ..bench.report import BenchOptions, ReportOptions, report

    options = options_from_args(ReportOptions, args, bench=options_from_args(BenchOptions, args))  # checked here
    _check_target_flags(args)
    meta = _model_metadata(args.model)
    result = report(args.model, data_config(args, meta), args.out, on_target=_measurer(args, options),
                    **keywords(options))
    from ..bench.render_md import markdown_table

    print(markdown_table(result.data))
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    gate = result.data.get("gate")
    if gate:
        print(f"gate: {gate['message']}", file=sys.stderr if not gate["passed"] else sys.stdout)
    picked = _pick(args, result) if args.pick else True
    failed = _requested_failures(args, result.rows)
    if failed:  # scripts must tell a report with missing rows from a complete one
        _log.error(f"edge-deeplab report: requested variants not produced: {'; '.join(failed)}")
        return VARIANT_FAILED
    return GATE_FAILED if (gate and not gate["passed"]) or not picked else 0


def _check_target_flags(args) -> None:
    from ..targets.spec import parse_target

    if not args.target:
        used = [flag for flag, value in (("--target-accuracy", args.target_accuracy), ("--pick", args.pick)) if value]
        if used:
            raise InvalidInputError(f"{', '.join(used)} need(s) --target TARGET (the device to measure on)")
        return
    parse_target(args.target)  # a bad target is an error now, not after minutes of conversion


def _measurer(args, options):
    """The report's on_target step for --target (None without)."""
    if not args.target:
        return None
    from ..targets.report_target import TargetMeasurer

    return TargetMeasurer(args.target, options.bench, options.threads, options.device, args.target_accuracy,
                          {"scales": options.scales, "flip": options.flip})


def _pick(args, result) -> bool:
    """Write pick.json beside the report; whether a variant qualified."""
    from ..targets.pick import pick_line, pick_profile, write_pick

    profile = pick_profile(result.data, args.max_miou_drop, args.max_class_drop)
    path = write_pick(profile, result.out_dir)
    print(pick_line(profile))
    print(f"pick: {path}")
    return profile["chosen"] is not None


def _requested_failures(args, rows) -> list:
    """"id (status)" of each variant named in --variants that has no measurements."""
    if not args.variants:  # the default "all" lists formats this machine may lack
        return []
    return [f"{row.variant.ident} ({row.status})" for row in rows if row.status != Status.OK]

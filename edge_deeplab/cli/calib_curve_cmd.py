"""`edge-deeplab calib-curve`: int8 mIoU and agreement against the number of calibration images.

Each size is a real conversion with `--calib-size N` (the same draw `convert` makes), scored on
validation images with masks. The table shows where the curve flattens, and a warning names
a calibration size below it.
"""

from __future__ import annotations

import argparse
import json

from ..imageio import atomic_write_text
from ..options import parse_list

ORDER = 48  # its place in `edge-deeplab --help`, after `convert`


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..bench.calibration_curve import DEFAULT_SIZES, DEFAULT_TOLERANCE
    from ..converters import DEFAULT_CALIB_SIZE

    p = subparsers.add_parser("calib-curve", help="int8 accuracy against the calibration set's size",
                              description=__doc__)
    p.add_argument("model", metavar="MODEL", help="a training run folder or a .keras file")
    p.add_argument("--to", dest="targets", type=parse_list, default=["tflite"],
                   help="conversion targets, comma-separated (default tflite)")
    p.add_argument("--precision", default="int8", help="the quantized precision to measure (default int8)")
    p.add_argument("--sizes", type=parse_list, default=[str(s) for s in DEFAULT_SIZES],
                   help=f"calibration sizes, ascending (default {','.join(map(str, DEFAULT_SIZES))})")
    p.add_argument("--calib-data", help="'synthetic' or a folder of images (as `convert` takes)")
    p.add_argument("--val-data", help="'synthetic' or a dataset root with masks (default: the run's synthetic val)")
    p.add_argument("--val-split", default="val", help="split of --val-data (default val)")
    p.add_argument("--val-limit", type=int, help="score at most N validation images")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"mIoU points within which the curve counts as flat (default {DEFAULT_TOLERANCE:g})")
    p.add_argument("--chosen", type=int, default=DEFAULT_CALIB_SIZE,
                   help=f"the calibration size you convert with, checked against the curve "
                        f"(default {DEFAULT_CALIB_SIZE}, convert's)")
    p.add_argument("--json", help="write the curves as JSON here")
    return p


def run(args: argparse.Namespace) -> int:
    from ..bench.calibration_curve import calibration_curve
    from ..converters import plan_conversions
    from ..converters.savedmodel import load_source
    from ..converters.validation import load_validation

    plan_conversions(args.targets, args.precision)  # a wrong name fails before the model loads
    dataset = load_validation(args.val_data, load_source(args.model), args.val_split, args.val_limit)
    curves = [calibration_curve(args.model, target, dataset, sizes=args.sizes, precision=args.precision,
                                calib_data=args.calib_data, tolerance=args.tolerance) for target in args.targets]
    for curve in curves:
        print(format_curve(curve))
        warning = curve.warning(args.chosen)
        print(f"warning: {warning}" if warning else
              f"{curve.target}: --calib-size {args.chosen} is past where the curve flattens ({curve.flat_at})")
    if args.json:
        atomic_write_text(args.json, json.dumps([curve.to_dict() for curve in curves], indent=2))
        print(f"wrote {args.json}")
    return 0


def format_curve(curve) -> str:
    """The curve as a table: images, mIoU (and its drop against float), agreement, status."""
    lines = [f"{curve.target} {curve.precision}: float mIoU {curve.float_miou * 100:.2f}",
             f"{'images':>7} {'mIoU':>7} {'drop':>6} {'agreement':>9}  status"]
    for point in curve.points:
        drop = (curve.float_miou - point.miou) * 100
        flat = "  <- flat from here" if point.images == curve.flat_at and curve.flattened else ""
        figures = f"{point.images:>7} {point.miou * 100:7.2f} {drop:6.2f} {point.agreement:9.2%}"
        lines.append(f"{figures}  {point.status}{flat}")
    return "\n".join(lines)

"""`edge-deeplab convert`: a trained model to TFLite/ONNX/OpenVINO/TensorRT, parity-checked."""

from __future__ import annotations

import argparse
import json

from ..options import parse_list
from .option_flags import add_option_flags, options_from_args

ORDER = 40  # its place in `edge-deeplab --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    from edge_deeplab.converters import ALL, CONVERTERS, PRECISIONS, ConvertOptions

    targets = ", ".join(CONVERTERS.names())
    parser = subparsers.add_parser(
        "convert",
        help="convert a trained model to edge formats (with a parity check)",
        description="Convert a training run (or .keras file) to every requested format and "
        "precision. Each artifact is checked against the Keras model and gets a "
        "<artifact>.parity.json report.",
    )
    parser.add_argument("model", help="training run folder, .keras file, or a .tflite "
                        "(a published DeepLab: give --preset)")
    parser.add_argument(
        "--to",
        dest="targets",
        type=parse_list,
        required=True,
        help=f"targets, comma-separated ({targets}) or '{ALL}'",
    )
    parser.add_argument(
        "--precision",
        dest="precisions",
        type=parse_list,
        default=("fp32",),
        help=f"precisions, comma-separated ({', '.join(PRECISIONS)}) or '{ALL}' (default fp32); "
        f"'{ALL}' leaves out int8-mixed (int8 within an mIoU budget: it needs --val-data and minutes)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    add_option_flags(parser, ConvertOptions)  # every ConvertOptions field, declared there
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--target", default=None, metavar="TARGET",
                        help="--to tensorrt: build the engines on this device over SSH with its own TensorRT and "
                        "bring them back, checked there (ssh://[user@]host[:port] or a name from the targets file)")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_deeplab.converters import ConvertOptions, convert, summary_line
    from edge_deeplab.errors import ConversionError

    options = options_from_args(ConvertOptions, args)
    if args.target:
        from edge_deeplab.targets.remote_engine import convert_on_target

        results = convert_on_target(args.target, args.model, args.targets, args.precisions, args.out, options)
    else:
        results = convert(args.model, args.targets, args.precisions, args.out, options)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for result in results:
            print(f"{result.target:<9} {result.precision:<8} {summary_line(result)}")
    failed = [r for r in results if r.status.failed]
    if failed:
        raise ConversionError("; ".join(f"{r.target} {r.precision}: {r.reason}" for r in failed))
    return 0

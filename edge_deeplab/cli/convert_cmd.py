"""`edge-deeplab convert`: a trained model to TFLite/ONNX/OpenVINO/TensorRT, parity-checked."""

from __future__ import annotations

import argparse
import json

from .common import parse_list, parse_size

ORDER = 40  # its place in `edge-deeplab --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    from edge_deeplab.converters import ALL, CONVERTERS, DEFAULT_CALIB_SIZE, PRECISIONS
    from edge_deeplab.converters.base import IO_DTYPES
    from edge_deeplab.metadata import OUTPUT_HEADS, RESOLUTIONS

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
    _add_quantization_args(parser, DEFAULT_CALIB_SIZE)
    _add_budget_args(parser)
    _add_placement_args(parser, OUTPUT_HEADS, RESOLUTIONS, IO_DTYPES)
    _add_source_args(parser)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (and write nothing) when an artifact breaks the parity tolerance table",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    return parser


def _add_quantization_args(parser: argparse.ArgumentParser, default_calib_size: int) -> None:
    """Where calibration and parity images come from, and how many."""
    parser.add_argument(
        "--calib-data",
        help="'synthetic' or a folder of images for calibration and parity "
        "(default: synthetic when the model was trained on it)",
    )
    parser.add_argument(
        "--calib-size",
        type=int,
        default=default_calib_size,
        help=f"calibration images (default {default_calib_size}; LiteRT advises 100-500)",
    )
    parser.add_argument(
        "--parity-images", type=int, default=32, help="images of the parity check (default 32)"
    )
    parser.add_argument(
        "--int8-agreement", type=float, default=None,
        help="argmax agreement with Keras an int8 artifact must reach (default 0.97)",
    )


def _add_budget_args(parser: argparse.ArgumentParser) -> None:
    """int8-mixed: the mIoU budget and the images it is measured on."""
    from edge_deeplab.converters.validation import DEFAULT_BUDGET

    parser.add_argument(
        "--max-miou-drop",
        type=float,
        default=DEFAULT_BUDGET,
        help=f"int8-mixed: mIoU points the artifact may lose against float (default {DEFAULT_BUDGET:g}); "
        "the fewest layers that hold it stay in float, or the command exits non-zero with the drop reached",
    )
    parser.add_argument(
        "--val-data",
        help="int8-mixed: 'synthetic' or a dataset root with masks (as `eval --data` takes) to measure "
        "the drop on (default: synthetic when the model was trained on it)",
    )
    parser.add_argument("--val-split", default="val", help="int8-mixed: split of --val-data (default val)")
    parser.add_argument("--val-limit", type=int, help="int8-mixed: score at most N validation images")


def _add_placement_args(parser: argparse.ArgumentParser, heads, resolutions, io_dtypes) -> None:
    """The exported model's size, head placement and int8 I/O type."""
    parser.add_argument(
        "--size", type=parse_size, help="export the fully convolutional model at HxW"
    )
    parser.add_argument(
        "--head",
        choices=heads,
        help="logits out, or an in-graph argmax class map (default: the fastest for each target)",
    )
    parser.add_argument(
        "--resolution",
        choices=resolutions,
        help="output at the input size, or at the feature resolution (upsampled on the host)",
    )
    parser.add_argument(
        "--io-dtype",
        choices=io_dtypes,
        default="pixels",
        help="int8 model input/output: pixels = uint8 RGB pixels in, normalised in the graph "
        "(TFLite, OpenVINO, ONNX; the default), or TFLite int8/uint8/float32 I/O",
    )


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    from edge_deeplab.presets import PRESETS

    parser.add_argument("--preset", choices=PRESETS.names(), default=None,
                        help="labels and normalisation of a published .tflite MODEL (its weights are "
                        "imported as `train --weights` does; our own artifacts carry them)")


def run(args: argparse.Namespace) -> int:
    from edge_deeplab.converters import convert, summary_line
    from edge_deeplab.errors import ConversionError

    results = convert(
        args.model,
        args.targets,
        args.precisions,
        args.out,
        calib_data=args.calib_data,
        calib_size=args.calib_size,
        size=args.size,
        head=args.head,
        resolution=args.resolution,
        io_dtype=args.io_dtype,
        strict=args.strict,
        parity_images=args.parity_images,
        int8_agreement=args.int8_agreement,
        progress=not args.quiet,
        max_miou_drop=args.max_miou_drop,
        val_data=args.val_data,
        val_split=args.val_split,
        val_limit=args.val_limit,
        preset=args.preset,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for result in results:
            print(f"{result.target:<9} {result.precision:<8} {summary_line(result)}")
    failed = [r for r in results if r.status.failed]
    if failed:
        raise ConversionError("; ".join(f"{r.target} {r.precision}: {r.reason}" for r in failed))
    return 0

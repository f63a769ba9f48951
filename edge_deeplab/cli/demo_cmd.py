"""`edge-deeplab demo MODEL --source SRC`: the real-time camera demo.

The flags are defined here once and shared with the `python -m edge_deeplab.cli.webcam`
and `python -m edge_deeplab.cli.jetson` shims (`standalone_main`). Keys in the window:
v switch view, +/- alpha, space pause, s snapshot, q or Esc quit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from typing import Callable, List, Optional

from edge_deeplab.demos.interrupts import EXIT_STATUS
from edge_deeplab.demos.outputs import display_available
from edge_deeplab.demos.pipeline import DemoOptions, smoothing_filters
from edge_deeplab.demos.pipeline import run_demo as run_demo_pipeline
from edge_deeplab.demos.serve_address import parse_serve, read_token
from edge_deeplab.demos.sources import parse_source
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.guard import guarded
from edge_deeplab.imageio import atomic_write_text, read_image
from edge_deeplab.logs import setup_logging

from . import common, option_flags
from .option_flags import add_option_flags

_log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="real-time segmentation of a camera, video, folder or stream",
        description=(
            "Segment a live source in a capture -> inference -> render pipeline. "
            "Keys: v view, +/- alpha, space pause, s snapshot, q/Esc quit."
        ),
    )
    add_demo_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    return run_demo(args)


DEFAULT_SOURCE = "0"  # the first camera; the Jetson demo's is csi://0
SOURCE_HELP = (
    "camera index (0), v4l2:///dev/video0, a video file, an image folder, rtsp://..., "
    "csi://0 (Jetson CSI camera), picam://0 (Raspberry Pi camera) or synthetic"
)


def add_demo_arguments(parser: argparse.ArgumentParser, *, source: str = DEFAULT_SOURCE) -> None:
    """The demo's flags, shared by `edge-deeplab demo` and the demos' `python -m` entries:
    DemoOptions' fields (declared there) and the inputs that are not options."""
    from edge_deeplab.runtimes import model_suffixes

    parser.add_argument(
        "model", help=f"model file ({', '.join(model_suffixes())}) or a training run folder"
    )
    parser.add_argument("--source", default=source, help=f"{SOURCE_HELP} (default {source})")
    add_option_flags(parser, DemoOptions)
    parser.add_argument(  # DemoOptions.show is False (headless API); the CLI shows a window
        "--no-show", dest="show", action="store_false", help="no window (headless, CI)"
    )
    parser.add_argument(
        "--background", metavar="IMG", help="image that replaces the background in the replace view"
    )
    parser.add_argument("--stats", metavar="STATS.json", help="write the run's statistics as JSON")
    add_serve_arguments(parser)
    common.add_model_source_args(parser)
    common.add_runtime_args(parser)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """--serve and --token: the demo as a web page for a headless box."""
    parser.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve the view and live stats to a browser at http://HOST:PORT/ (default host "
        "127.0.0.1; any other host needs the access token printed in the URL)",
    )
    parser.add_argument(
        "--token", help="the access token for --serve (default: --token-file, else $EDGE_DEEPLAB_SERVE_TOKEN, "
        "else generated unless on a loopback address; on the command line other users see it in ps)"
    )
    parser.add_argument("--token-file", metavar="FILE", help="read the access token for --serve from FILE")


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    """The flags as DemoOptions, which check themselves (InvalidInputError names the bad value)."""
    if (args.token is not None or args.token_file is not None) and not args.serve:
        raise InvalidInputError("--token goes with --serve [HOST:]PORT")
    serve = parse_serve(args.serve, read_token(args.token, args.token_file)) if args.serve else None
    background = read_image(args.background)[:, :, ::-1].copy() if args.background else None
    return option_flags.options_from_args(DemoOptions, args, background=background, serve=serve, show=args.show)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo from parsed flags; returns the exit status (1 when the camera was lost)."""
    options = options_from_args(args)
    if options.show and options.serve and not display_available():
        _log.info("no display here: the demo is shown in the browser only")
        options = dataclasses.replace(options, show=False)
    if options.show and not display_available():
        raise InvalidInputError(
            "no display to show the demo on (DISPLAY is not set): run with --no-show, "
            "and --output out.mp4 to record it"
        )
    source = parse_source(args.source)  # a bad URI fails before the model loads
    # Real time: argmax at the model's resolution, then a nearest upsample of the class map;
    # upsampling 21 channels of logits to a 768x432 frame cost more than the model itself.
    # Frames are shrunk bilinearly: OpenCV's area averaging of a 768x432 frame to 257x257
    # took 1.7 ms, a third of the int8 model's time (benchmarks/host_overhead.py).
    with common.open_segmenter(
        args, upsample="labels", shrink="linear", score_filters=smoothing_filters(options)
    ) as segmenter:
        stats = run_demo_pipeline(segmenter, source, options)
    if args.stats:
        atomic_write_text(args.stats, json.dumps(stats, indent=2) + "\n")
    print(summary(stats))
    if stats["end"] in EXIT_STATUS:
        kept = f"; recording kept: {stats['output']}" if stats.get("output") else ""
        _log.warning(f"edge-deeplab demo: {stats['end']} after {stats['frames']} frames{kept}")
        return EXIT_STATUS[stats["end"]]
    return 1 if stats["end"] == "source lost" else 0


def summary(stats: dict) -> str:
    """One line: frames, FPS against the model's own, latency, drops, flicker."""

    def num(value, fmt="{:.1f}"):
        return "--" if value is None else fmt.format(value)

    return (
        f"{stats['frames']} frames ({stats['end']}): {num(stats['fps'])} FPS "
        f"(model {num(stats['model_fps'])} FPS), "
        f"capture-to-display {num(stats['latency_ms']['p50'])} ms p50, "
        f"dropped {stats['dropped']}, flicker {num(stats['flicker'], '{:.4f}')}"
        + (f", recorded {stats['output']}" if stats["output"] else "")
    )


def standalone_main(
    argv: Optional[List[str]] = None,
    *,
    prog: str,
    description: str,
    source: str = DEFAULT_SOURCE,
    configure: Optional[Callable[[argparse.Namespace], None]] = None,
) -> int:
    """Entry point of the `python -m` demos; `configure` adjusts the parsed flags."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_demo_arguments(parser, source=source)
    common.add_log_flags(parser)
    args = parser.parse_args(argv)
    setup_logging(common.verbosity(args))

    def configured_run():
        if configure is not None:
            configure(args)
        return run_demo(args)

    return guarded(prog, configured_run)

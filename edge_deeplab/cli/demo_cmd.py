"""`edge-deeplab demo MODEL --source SRC`: the real-time camera demo.

The flags are defined once, in `edge_deeplab.demos.webcam`, and shared with
`python -m edge_deeplab.demos.webcam` and `python -m edge_deeplab.demos.jetson`.
"""

from __future__ import annotations

import argparse

from edge_deeplab.demos.webcam import add_demo_arguments, run_demo


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

"""`edge-deeplab predict MODEL INPUT... --out DIR`: segment images, write masks and pictures.

For each input `NAME.ext` it writes, atomically:
- `NAME_mask.png`: single-channel 8-bit PNG, the class index per pixel, at the input's size;
- `NAME_color.png`: the class map in the palette of the metadata (or the preset);
- `NAME_overlay.png`: the colours blended over the image (`--alpha`).
An image that cannot be read is reported on one line and skipped; the command goes on with
the others and exits with status 1 at the end, naming the ones that failed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List

from ..errors import InvalidInputError
from ..options import finite_float
from .common import add_model_source_args, add_runtime_args, open_segmenter

ORDER = 70  # its place in `edge-deeplab --help`
_log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..runtimes import model_suffixes

    parser = subparsers.add_parser(
        "predict",
        help="segment images; write class-index masks, colour masks and overlays",
        description="Segment images (files or folders of images) with any model and write "
        "NAME_mask.png (class indices), NAME_color.png and NAME_overlay.png for each.",
    )
    parser.add_argument(
        "model", help=f"training run folder or model file ({', '.join(model_suffixes())})"
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files or folders of images"
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--alpha",
        type=finite_float,
        default=0.5,
        help="overlay opacity of the mask colours, 0..1 (default 0.5)",
    )
    add_model_source_args(parser)
    add_runtime_args(parser)
    return parser


def collect_inputs(inputs: List[str]) -> List[Path]:
    """Image files from files and folders, in the order given (folders sorted by name)."""
    from ..imageio import list_images

    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise InvalidInputError(f"{path}: folder holds no images (.png, .jpg, .bmp, ...)")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise InvalidInputError(f"{path}: no such image file or folder")
    return list(dict.fromkeys(paths))  # the same file given twice is segmented once


def output_stems(paths: List[Path]) -> Dict[Path, str]:
    """Output name stem per input: NAME, or NAME_2, NAME_3... when inputs share a NAME."""
    stems: Dict[Path, str] = {}
    used = set()
    for path in paths:
        stem, n = path.stem, 1
        while stem in used:
            n += 1
            stem = f"{path.stem}_{n}"
        used.add(stem)
        stems[path] = stem
    return stems


def write_outputs(out: Path, stem: str, rgb, labels, palette, alpha: float) -> List[Path]:
    """Write the three PNGs of one image; returns their paths."""
    from ..imageio import write_image
    from ..visualize import colorize, overlay

    written = [out / f"{stem}_mask.png", out / f"{stem}_color.png", out / f"{stem}_overlay.png"]
    write_image(written[0], labels)
    write_image(written[1], colorize(labels, palette))
    write_image(written[2], overlay(rgb, labels, palette, alpha))
    return written


def run(args: argparse.Namespace) -> int:
    from ..imageio import read_image
    from ..visualize import legend

    if not 0.0 <= args.alpha <= 1.0:
        raise InvalidInputError(f"--alpha must be in 0..1, got {args.alpha}")
    paths = collect_inputs(args.inputs)
    stems = output_stems(paths)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: exists and is not a folder")
    segmenter = open_segmenter(args)
    meta = segmenter.metadata
    failed: List[str] = []
    with segmenter.runtime:
        for path in paths:
            try:
                rgb = read_image(path)
                result = segmenter.predict(rgb)
            except InvalidInputError as exc:
                if len(paths) == 1:  # the one image asked for: the command's error, one line
                    raise
                _log.warning(f"edge-deeplab predict: skipped {path}: {exc}")
                failed.append(str(path))
                continue
            write_outputs(out, stems[path], rgb, result.labels, meta.palette, args.alpha)
            present = ", ".join(
                f"{name} {share:.1%}"
                for name, _, share in legend(result.labels, meta.labels, meta.palette)[:4]
            )
            total = sum(result.timings.values())
            print(
                f"{path} -> {out / stems[path]}_{{mask,color,overlay}}.png "
                f"({rgb.shape[1]}x{rgb.shape[0]}, {total:.1f} ms; {present})"
            )
    done = len(paths) - len(failed)
    print(f"{done} of {len(paths)} images segmented into {out}")
    if failed:
        _log.error(f"edge-deeplab predict: {len(failed)} image(s) failed: {', '.join(failed)}")
        return 1
    return 0

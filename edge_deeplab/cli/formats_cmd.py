"""`edge-deeplab formats`: targets x precisions, and which ones can run on this machine."""

from __future__ import annotations

import argparse
import json

ORDER = 50  # its place in `edge-deeplab --help`


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "formats",
        help="list the conversion targets, their precisions and availability here",
        description="The table of conversion targets x precisions (from the converter registry).",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser


def formats_table() -> list:
    """One row per registered target: name, suffix, precisions, extra, head, availability."""
    from edge_deeplab.converters import CONVERTERS

    rows = []
    for name, cls in CONVERTERS.items():
        ok, why = cls.available()
        rows.append(
            {
                "target": name,
                "suffix": cls.suffix,
                "precisions": list(cls.precisions),
                "extra": cls.extra,
                "runtime": cls.runtime,
                "head": f"{cls.default_head}/{cls.default_resolution}"
                + "".join(f", {precision}: {head}/{res}" for precision, (head, res) in cls.default_placements.items()),
                # The client reads logits artifacts; the default head may be for speed.
                "client": f"{cls.client} (--head logits)" if cls.client else "",
                "available": ok,
                "reason": why,
                # {precision: note}: slow kernels, or why a known precision is not made here
                "notes": dict(cls.notes),
                # `convert --calib-method`: what its library offers, the measured default first
                "calib_methods": sorted(cls.calib_methods, key=lambda m: m != cls.default_calib_method)
                or [f"{cls.default_calib_method} (fixed)"],
                "bias_correction": cls.bias_correction,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from edge_deeplab.converters import PRECISIONS

    rows = formats_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'target':<10}{'suffix':<9}"
        + "".join(f"{p:<{_width(p)}}" for p in PRECISIONS)
        + f"{'head':<{HEAD_WIDTH}}{'client-ready':<42}available here"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        marks = "".join(f"{'yes' if p in row['precisions'] else '-':<{_width(p)}}" for p in PRECISIONS)
        status = "yes" if row["available"] else f"no: {row['reason']}"
        client = row["client"] or "-"
        print(f"{row['target']:<10}{row['suffix']:<9}{marks}{row['head']:<{HEAD_WIDTH}}{client:<42}{status}")
    notes = [f"  {row['target']} {precision}: {note}" for row in rows for precision, note in row["notes"].items()]
    if notes:
        print("\nnotes:")
        print("\n".join(notes))
    print("\ncalibration methods (--calib-method; the default first, measured on the CamVid recipe's model):")
    for row in rows:
        bias = "; bias correction (--bias-correction)" if row["bias_correction"] else ""
        print(f"  {row['target']}: {', '.join(row['calib_methods'])}{bias}")
    return 0


HEAD_WIDTH = 34  # "argmax/full, int8: logits/feature" and a space


def _width(precision: str) -> int:
    """A precision's column: at least 9 characters, and a space after the longest name."""
    return max(9, len(precision) + 2)

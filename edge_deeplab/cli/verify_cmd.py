"""`edge-deeplab verify ARTIFACT`: run the artifact's own self-test where it is deployed.

Every artifact `convert` writes carries a few inputs and the class maps the Keras
reference gave for them (`edge_deeplab.selftest`). `verify` segments them with the engine,
device and delegate given here and prints the agreement per input; it exits 1 below the
bar of the artifact's precision (the parity check's), so a wrong delegate, a broken
engine build or a damaged file shows on the device, not in the app. Published models
carry no self-test: `--reference MODEL` compares against another model instead, on
generated scenes. Runs in the edge install (no TensorFlow) unless the reference needs it.
"""

from __future__ import annotations

import argparse

from ..errors import InvalidInputError
from .common import add_model_source_args, add_runtime_args, finite_float, open_segmenter

ORDER = 60  # its place in `edge-deeplab --help`
SCENES = 8  # generated scenes of a --reference comparison
DEFAULT_BAR = 0.97  # a --reference comparison's bar without --bar: int8's parity bar


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "verify",
        help="run an artifact's embedded self-test on this engine and machine",
        description="Segment the inputs stored in the artifact's metadata and compare with the "
        "class maps the Keras reference gave at conversion; exit 1 below the precision's bar.",
    )
    parser.add_argument("model", help="the artifact (.tflite, .onnx, .xml, ...) or a run folder")
    parser.add_argument("--reference", default=None, metavar="MODEL",
                        help="compare with this model (any format) on generated scenes instead "
                        "(for models without a self-test, e.g. published ones)")
    parser.add_argument("--bar", type=finite_float, default=None,
                        help="agreement to reach, 0..1 (default: the artifact's own; "
                        f"{DEFAULT_BAR} with --reference)")
    add_model_source_args(parser)
    add_runtime_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_deeplab import selftest

    if args.bar is not None and not 0 < args.bar <= 1:
        raise InvalidInputError(f"--bar must be in (0, 1], got {args.bar}")
    with open_segmenter(args) as segmenter:
        meta = segmenter.metadata
        runtime = segmenter.runtime
        where = f"{runtime.name} on {runtime.device_name}"
        if args.reference:
            result, what = _against_reference(args, segmenter, selftest), f"against {args.reference}"
        elif meta.selftest:
            result, what = selftest.run(segmenter, meta.selftest, args.bar), "against the stored Keras class maps"
        else:
            raise InvalidInputError(
                f"{args.model} carries no self-test (it was not written by `edge-deeplab convert`, "
                "e.g. a published model): pass --reference MODEL to compare it with another model"
            )
    print(f"{args.model}: {meta.format} {meta.precision}, {where}, {what}")
    for index, agreement in enumerate(result.agreements):
        print(f"  input {index}: agreement {agreement:.2%}")
    if not args.reference and "at_conversion" in meta.selftest:
        print(f"  (at conversion: {meta.selftest['at_conversion']:.2%})")
    verdict = "ok" if result.passed else "FAILED"
    print(f"{verdict}: agreement {result.agreement:.2%} (bar {result.bar:.1%})")
    return 0 if result.passed else 1


def _against_reference(args, segmenter, selftest):
    from edge_deeplab.data import synthetic

    meta = segmenter.metadata
    images, _ = synthetic.generate(SCENES, size=meta.input_size, seed=0, num_classes=meta.num_classes)
    with open_segmenter(args, model=args.reference) as reference:
        return selftest.compare(segmenter, reference, list(images), args.bar or DEFAULT_BAR)

"""`edge-deeplab verify ARTIFACT`: run the artifact's own self-test where it is deployed.

Every artifact `convert` writes carries a few inputs and the class maps the Keras
reference gave for them (`edge_deeplab.selftest`). `verify` segments them with the engine,
device and delegate given here and prints the agreement per input; it exits 1 below the
bar of the artifact's precision (the parity check's), so a wrong delegate, a broken
engine build or a damaged file shows on the device, not in the app. Published models
carry no self-test: `--reference MODEL` compares against another model instead, on
generated scenes. Runs in the edge install (no TensorFlow) unless the reference needs it.

`--target TARGET` runs the same check on a device over SSH (its own edge install, the
artifact copied through its content cache) and prints its result as if run there;
`--json OUT` (`-`: stdout) writes the result: agreements per input, overall, bar, passed,
engine, device and the artifact's format and precision.
"""

from __future__ import annotations

import argparse
import sys

from ..converters.parity import INT8_AGREEMENT
from ..errors import InvalidInputError
from ..options import finite_float
from ..targets.cli import Uploads, add_target_arg, model_source_words, run_on_target, write_json
from ..targets.remote import JSON_OUT
from .common import add_model_source_args, add_runtime_args, open_segmenter

ORDER = 60  # its place in `edge-deeplab --help`
SCENES = 8  # generated scenes of a --reference comparison
DEFAULT_BAR = INT8_AGREEMENT  # a --reference comparison's bar without --bar: int8's parity bar


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
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write the result as JSON to OUT ('-': stdout, the lines then go to stderr)")
    add_target_arg(parser)
    add_model_source_args(parser)
    add_runtime_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.bar is not None and not 0 < args.bar <= 1:
        raise InvalidInputError(f"--bar must be in (0, 1], got {args.bar}")
    record = _on_target(args) if args.target else _here(args)
    show = sys.stderr if args.json == "-" else sys.stdout
    where = f"{record['engine']} on {record['device']}" + (f" @ {record['target']}" if record.get("target") else "")
    print(f"{args.model}: {record['format']} {record['precision']}, {where}, {record['against']}", file=show)
    for index, agreement in enumerate(record["agreements"]):
        print(f"  input {index}: agreement {agreement:.2%}", file=show)
    if record.get("at_conversion") is not None:
        print(f"  (at conversion: {record['at_conversion']:.2%})", file=show)
    if record.get("diagnosis"):
        print(f"  {record['diagnosis']}", file=show)
    verdict = "ok" if record["passed"] else "FAILED"
    print(f"{verdict}: agreement {record['agreement']:.2%} (bar {record['bar']:.1%})", file=show)
    if args.json:
        write_json(record, args.json)
    return 0 if record["passed"] else 1


def _here(args: argparse.Namespace) -> dict:
    """The self-test (or --reference comparison) on this machine, as verify's JSON record."""
    from edge_deeplab import selftest

    with open_segmenter(args) as segmenter:
        meta = segmenter.metadata
        runtime = segmenter.runtime
        if args.reference:
            result, what = _against_reference(args, segmenter, selftest), f"against {args.reference}"
        elif meta.selftest:
            result, what = selftest.run(segmenter, meta.selftest, args.bar), "against the stored Keras class maps"
        else:
            raise InvalidInputError(
                f"{args.model} carries no self-test (it was not written by `edge-deeplab convert`, "
                "e.g. a published model): pass --reference MODEL to compare it with another model"
            )
        engine, device = runtime.name, runtime.device_name
    at_conversion = meta.selftest.get("at_conversion") if not args.reference and meta.selftest else None
    return {
        "model": str(args.model), "format": meta.format, "precision": meta.precision, "engine": engine,
        "device": device, "against": what, "agreements": [float(a) for a in result.agreements],
        "agreement": float(result.agreement), "bar": float(result.bar), "passed": bool(result.passed),
        "at_conversion": at_conversion, "host_matches": result.host_matches,
        # Which side differed: said when the host made other input pixels, or when a self-test failed.
        "diagnosis": result.diagnosis() if result.host_path_differed or not (result.passed or args.reference) else None,
    }


def _on_target(args: argparse.Namespace) -> dict:
    """The same check run by the device's edge install; its record, marked with the device."""
    uploads = Uploads()
    words = [uploads.artifact(args.model), "--json", JSON_OUT, *model_source_words(args, uploads)]
    if args.reference:
        words += ["--reference", uploads.artifact(args.reference)]
    if args.bar is not None:
        words += ["--bar", repr(args.bar)]
    record, machine = run_on_target(args.target, "verify", words, uploads)
    against = f"against {args.reference}" if args.reference else record["against"]
    return {**record, "model": str(args.model), "against": against, "target": machine["target"], "machine": machine}


def _against_reference(args, segmenter, selftest):
    from edge_deeplab.data import synthetic

    meta = segmenter.metadata
    images, _ = synthetic.generate(SCENES, size=meta.input_size, seed=0, num_classes=meta.num_classes)
    with open_segmenter(args, model=args.reference) as reference:
        return selftest.compare(segmenter, reference, list(images), args.bar or DEFAULT_BAR)

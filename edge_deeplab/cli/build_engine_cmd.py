"""`edge-deeplab build-engine ONNX`: a TensorRT engine built here, with this machine's TensorRT.

An engine runs only on the GPU and TensorRT version it was built with, so `convert --to
tensorrt --target T` makes the ONNX (and the calibration set) on the host, which has the
Keras model, and runs this command on the device, which has the GPU: no TensorFlow is
imported. `--probe` says first what the host must make: TensorRT's version, the GPU and,
per precision, the typing (TensorRT 10: "weak", the fp32 ONNX with builder flags and, for
int8, the entropy calibrator over `--calib`; TensorRT 11: "strong", an fp16 or a symmetric
Q/DQ ONNX). It also builds an engine by hand on a Jetson from an ONNX made elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from pathlib import Path

from ..errors import ConversionError, EdgeDeeplabError, InvalidInputError, first_line
from ..options import parse_list
from ..targets.cli import write_json

ORDER = 45  # its place in `edge-deeplab --help`, after `convert`
ENGINE_PRECISIONS = ("fp16", "int8")
INSTALL = ("on a Jetson, JetPack's TensorRT (sudo apt install python3-libnvinfer; a venv made with "
           '--system-site-packages sees it), on a desktop NVIDIA GPU pip install "edge-deeplab[tensorrt]"')


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "build-engine",
        help="build a TensorRT engine from an ONNX on this GPU (what convert --target runs on the device)",
        description="Build a serialized TensorRT engine from an ONNX export on this machine's GPU. "
        "`convert --to tensorrt --target T` runs it on the device; --probe reports what it would build.",
    )
    parser.add_argument("onnx", nargs="?", default=None, help="the ONNX export (fp32; fp16 or Q/DQ for TensorRT 11)")
    parser.add_argument("--precision", type=parse_list, default=("fp16",), help="fp16 or int8 (--probe: a list)")
    parser.add_argument("--typing", choices=("weak", "strong"), default=None,
                        help="the typing the ONNX was made for (refused when this TensorRT builds the other)")
    parser.add_argument("--calib", default=None, metavar="NPY",
                        help="float32 (N, H, W, 3) normalised calibration input (weakly typed int8)")
    parser.add_argument("--out", default=None, help="the engine file to write (atomically)")
    parser.add_argument("--probe", action="store_true", help="only report TensorRT's version, the GPU and the typings")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the result as JSON to OUT ('-': stdout)")
    return parser


def device_tensorrt():
    """(the tensorrt module, the GPU's name), or one line naming what to install."""
    from .. import deps
    from ..nvidia import gpu_name

    if not deps.available("tensorrt"):
        raise EdgeDeeplabError(f"no TensorRT here: install it, {INSTALL}")
    gpu = gpu_name()
    if not gpu:
        raise EdgeDeeplabError("TensorRT is installed but no NVIDIA GPU was found (nvidia-smi, Jetson): an engine "
                               f"is built on the GPU it runs on; {INSTALL}")
    return deps.optional("tensorrt", "tensorrt", "building TensorRT engines"), gpu


def run(args: argparse.Namespace) -> int:
    unknown = [p for p in args.precision if p not in ENGINE_PRECISIONS]
    if unknown:
        raise InvalidInputError(f"TensorRT engines are {' or '.join(ENGINE_PRECISIONS)}, not {', '.join(unknown)}")
    from ..converters.tensorrt_build import typing_for

    trt, gpu = device_tensorrt()
    record = {"tensorrt": trt.__version__, "gpu": gpu, "typing": {p: typing_for(trt, p) for p in args.precision}}
    if not args.probe:
        record.update(_build(trt, args, record["typing"]))
    show = sys.stderr if args.json == "-" else sys.stdout
    typings = ", ".join(f"{p} {t}ly typed" for p, t in record["typing"].items())
    built = "" if args.probe else f"; {record['engine']} ({record['bytes'] / 2**20:.2f} MiB, {record['seconds']:.1f} s)"
    print(f"TensorRT {record['tensorrt']} on {gpu}: {typings}{built}", file=show)
    if args.json:
        write_json(record, args.json)
    return 0


def _build(trt, args: argparse.Namespace, typings: dict) -> dict:
    if not args.onnx or not args.out or len(args.precision) != 1:
        raise InvalidInputError("build-engine needs ONNX, one --precision and --out (or --probe)")
    (precision,) = args.precision
    typing = typings[precision]
    if args.typing and args.typing != typing:
        raise InvalidInputError(f"this ONNX was made for a {args.typing}ly typed build; TensorRT {trt.__version__} "
                                f"builds {precision} {typing}ly typed")
    onnx_bytes = _read(args.onnx)
    start = time.perf_counter()
    data = _engine_bytes(trt, onnx_bytes, precision, typing, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)  # atomic: a half-written engine is never sent back
    finally:
        tmp.unlink(missing_ok=True)
    return {"engine": str(out), "precision": precision, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "seconds": round(time.perf_counter() - start, 2)}


def _engine_bytes(trt, onnx_bytes: bytes, precision: str, typing: str, args: argparse.Namespace) -> bytes:
    from ..converters.tensorrt_build import build_engine

    say = logging.getLogger(__name__).info  # TensorRT's build phases
    try:
        if typing == "strong" or precision != "int8":
            return build_engine(trt, onnx_bytes, precision, typing, progress=say)
        return _calibrated(trt, onnx_bytes, args, say)
    except EdgeDeeplabError:
        raise
    # The bindings raise whatever pybind11 maps a C++ failure to: one line, as the converter does.
    except Exception as exc:  # noqa: BLE001
        raise ConversionError(f"TensorRT {trt.__version__}: {type(exc).__name__}: {first_line(exc)}") from exc


def _calibrated(trt, onnx_bytes: bytes, args: argparse.Namespace, say) -> bytes:
    """A weakly typed int8 engine, TensorRT's entropy calibrator fed --calib."""
    import numpy as np

    from ..converters.tensorrt_build import build_engine
    from ..converters.tensorrt_calibrator import entropy_calibrator

    if not args.calib:
        raise InvalidInputError(f"a weakly typed int8 build on TensorRT {trt.__version__} needs --calib NPY")
    try:
        batches = np.load(args.calib, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{args.calib}: not a calibration array ({first_line(exc)})") from None
    if batches.ndim != 4 or batches.shape[-1] != 3 or not len(batches):
        raise InvalidInputError(f"{args.calib}: calibration input must be (N, H, W, 3), got {batches.shape}")
    cache = Path(args.out).with_suffix(".calib")
    calibrator = entropy_calibrator(trt, batches.astype(np.float32), cache, lambda done: None)
    try:
        data = build_engine(trt, onnx_bytes, "int8", "weak", calibrator, say)
    finally:
        calibrator.free()
    if calibrator.error is not None:
        raise ConversionError(f"TensorRT int8 calibration stopped: {calibrator.error}")
    return data


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the ONNX ({exc.strerror or exc})") from None

"""Converters: one Converter base and registry, one file per target.

Importing this package registers every target (tflite, onnx, openvino, tensorrt) without
importing any framework; each converter imports what it needs when it runs.
"""

# One module per target, each registering itself; this order is the CLI's and the
# `formats` table's. Adding a format adds a file and a line here.
# isort: off
from . import tflite  # noqa: F401
from . import onnx  # noqa: F401
from . import openvino  # noqa: F401
from . import tensorrt  # noqa: F401

# isort: on
from .api import ALL, DEFAULT_CALIB_SIZE, convert, plan_conversions, summary_line
from .base import CONVERTERS, PRECISIONS, ConversionResult, Converter, Variant
from .parity import TOLERANCES

__all__ = [
    "ALL",
    "CONVERTERS",
    "DEFAULT_CALIB_SIZE",
    "PRECISIONS",
    "TOLERANCES",
    "ConversionResult",
    "Converter",
    "Variant",
    "convert",
    "plan_conversions",
    "summary_line",
]

"""Converters: one Converter base and registry, one file per target.

Every module of this package is imported when the package is (`CONVERTERS.discover`), and
each target registers itself under its class's `name`: adding a format adds a file here
(and its runtime a file in `runtimes/`), with no import line anywhere. No framework is
imported until a converter runs.
"""

from .base import CONVERTERS, PRECISIONS, ConversionResult, Converter
from .job import HeadPlacement

CONVERTERS.discover(__name__)

from .api import ALL, DEFAULT_CALIB_SIZE, ConvertOptions, convert, plan_conversions, summary_line  # noqa: E402
from .parity import TOLERANCES  # noqa: E402

__all__ = [
    "ALL",
    "CONVERTERS",
    "DEFAULT_CALIB_SIZE",
    "PRECISIONS",
    "TOLERANCES",
    "ConversionResult",
    "ConvertOptions",
    "Converter",
    "HeadPlacement",
    "convert",
    "plan_conversions",
    "summary_line",
]

"""How the calibrated precisions are quantized: the calibration method, per-channel weights and
bias correction, one frozen record the converters read from the job.

Each engine offers the methods its own library has (`Converter.calib_methods`); the names are
ours, the same on every engine, so a report row says what was done:

- minmax: the extremes seen on the calibration images (LiteRT's converter, onnxruntime's
  MinMax, NNCF's MINMAX).
- percentile: the extremes less the outliers (onnxruntime's Percentile, 99.999%; NNCF's
  MEAN_QUANTILE, the mean over images of each image's 0.01% quantiles).
- entropy: the range that keeps the KL divergence of the quantized histogram from the float
  one lowest (onnxruntime's Entropy).
- mse: the range with the lowest quantization error on the histogram (NNCF's HISTOGRAM).
- mean-minmax: the mean over images of each image's extremes (NNCF's default).

A target's default (`Converter.default_calib_method`) is the method measured best on the CamVid
recipe's model (benchmarks/quant_recovery.py), not the library's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from edge_deeplab.errors import InvalidInputError

CALIB_METHODS = ("minmax", "percentile", "entropy", "mse", "mean-minmax")
BIAS_CORRECTIONS = ("full", "fast", "none")
# The precisions whose activations are calibrated (what the settings apply to).
CALIBRATED = ("int8", "int16x8", "int8-mixed", "int8-mixed16")


@dataclass(frozen=True)
class QuantSettings:
    """calib_method: one of CALIB_METHODS, None for each target's default; per_channel: weights
    quantized per output channel (else one scale per tensor); bias_correction: NNCF's (OpenVINO),
    "full", "fast" or "none"; the other engines have none."""

    calib_method: Optional[str] = None
    per_channel: bool = True
    bias_correction: str = "full"

    def __post_init__(self):
        if self.calib_method is not None and self.calib_method not in CALIB_METHODS:
            raise InvalidInputError(
                f"unknown calibration method {self.calib_method!r}; methods: {', '.join(CALIB_METHODS)}")
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise InvalidInputError(
                f"unknown bias correction {self.bias_correction!r}; choices: {', '.join(BIAS_CORRECTIONS)}")

    def method_for(self, converter) -> str:
        """The calibration method `converter` uses under these settings."""
        return self.calib_method or converter.default_calib_method

    def describe(self, converter) -> str:
        """One line for logs and reports: "minmax, per-channel" (+ bias correction on OpenVINO)."""
        parts = [self.method_for(converter), "per-channel" if self.per_channel else "per-tensor"]
        if converter.bias_correction:
            parts.append(f"{self.bias_correction} bias correction")
        return ", ".join(parts)


def check_settings(settings: QuantSettings, plan: Iterable[Tuple[object, str]]) -> None:
    """Refuse, before any work, a setting a target of `plan` cannot honour for a calibrated
    precision: one line naming what that target offers."""
    for converter, precision in plan:
        if precision not in CALIBRATED:
            continue
        method = settings.calib_method
        if method is not None and method not in converter.calib_methods:
            offers = ", ".join(converter.calib_methods) or f"none to choose ({converter.default_calib_method})"
            raise InvalidInputError(f"{converter.name} has no {method!r} calibration; it offers: {offers}")
        if settings.bias_correction != "full" and not converter.bias_correction:
            raise InvalidInputError(f"{converter.name} has no bias correction to set (OpenVINO's NNCF has)")

"""One row of the report: a variant's status and measurements, as report.json stores it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .variants import Variant


@dataclass
class ReportRow:
    """The measurements of one variant (None where not measured). Units: see report.UNITS."""

    variant: Variant
    status: str = "ok"
    reason: str = ""
    device: Optional[str] = None
    artifact: Optional[str] = None
    reused: bool = False
    size_mb: Optional[float] = None
    miou: Optional[float] = None
    pixel_accuracy: Optional[float] = None
    delta_miou: Optional[float] = None
    per_class_iou: Dict[str, Optional[float]] = field(default_factory=dict)
    delta_per_class_iou: Dict[str, Optional[float]] = field(default_factory=dict)
    agreement: Optional[float] = None
    latency_p50_ms: Optional[float] = None
    latency_p90_ms: Optional[float] = None
    latency_mean_ms: Optional[float] = None
    infer_p50_ms: Optional[float] = None
    stages_p50_ms: Dict[str, float] = field(default_factory=dict)
    fps: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    rss_growth_mb: Optional[float] = None
    threads: Optional[int] = None
    bench_runs: Optional[int] = None
    parity: Dict[str, object] = field(default_factory=dict)
    convert_s: Optional[float] = None
    mixed: Dict[str, object] = field(default_factory=dict)
    quant_debug: Dict[str, object] = field(default_factory=dict)
    eval_s: Optional[float] = None

    def fail(self, status: str, reason: str) -> ReportRow:
        self.status, self.reason = status, " ".join(str(reason).split())[:500]
        return self

    def to_dict(self) -> dict:
        data = {
            "id": self.variant.ident,
            "format": self.variant.format,
            "precision": self.variant.precision,
            "runtime": self.variant.runtime,
        }
        data.update({k: v for k, v in self.__dict__.items() if k != "variant"})
        return data

    def summary(self) -> str:
        if self.miou is None:
            return f"{self.status}: {self.reason}"
        lat = (
            f"{self.latency_p50_ms:.1f} ms p50" if self.latency_p50_ms is not None else "not timed"
        )
        flag = "" if self.status == "ok" else f" [{self.status}]"
        return f"mIoU {self.miou * 100:.2f}%  agreement {_pct(self.agreement)}  {lat}{flag}"


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.2f}%"


def clean_number(value):
    """float NaN -> None, numpy scalars -> Python (JSON has no NaN)."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def artifact_size_mb(variant: Variant, path: Path) -> float:
    """MiB of every file the artifact needs (OpenVINO: the .xml and its .bin)."""
    files = [path]
    if not variant.is_reference:
        from edge_deeplab.converters import CONVERTERS

        files = CONVERTERS.get(variant.format)().files(path)
    return sum(Path(f).stat().st_size for f in files if Path(f).is_file()) / 2**20


def round_or_none(value, digits: int = 3):
    return None if value is None else round(float(value), digits)


@dataclass
class FailedConversion:
    """A stand-in ConversionResult for a converter call that raised."""

    target: str
    precision: str
    reason: str
    status: str = "conversion failed"
    path: Optional[Path] = None
    parity: dict = field(default_factory=dict)
    seconds: float = 0.0

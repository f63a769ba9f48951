"""One row of the report: a variant's status and measurements, as report.json stores it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..status import Status
from .variants import Variant


def column(header: Optional[str] = None, unit: Optional[str] = None, spec: str = ".1f", *, scale: float = 1.0,
           signed: bool = False, default=None, default_factory=None):
    """A ReportRow field declared once: its table header (None: JSON only), its unit (report.json's
    "units") and how its number is written in report.md and report.html."""
    metadata = {"header": header, "unit": unit, "spec": spec, "scale": scale, "signed": signed}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ReportRow:
    """The measurements of one variant (None where not measured); each column's header, unit and
    format are declared on its field, and the JSON, Markdown and HTML are derived from them."""

    variant: Variant
    status: Status = column("status", default=Status.OK)
    reason: str = ""
    device: Optional[str] = None
    artifact: Optional[str] = None
    reused: bool = False
    size_mb: Optional[float] = column("size MB", "MiB on disk (all files of the artifact)", ".2f")
    miou: Optional[float] = column("mIoU %", "fraction 0..1", ".2f", scale=100)
    pixel_accuracy: Optional[float] = None
    delta_miou: Optional[float] = column("Δ mIoU pts", "points (x100) vs the keras fp32 reference", ".2f",
                                         signed=True)
    worst_class_drop: Optional[float] = column(
        "worst class pts", "IoU points the class that lost most lost vs the keras fp32 reference", ".2f")
    per_class_iou: Dict[str, Optional[float]] = column(unit="fraction 0..1", default_factory=dict)
    delta_per_class_iou: Dict[str, Optional[float]] = column(unit="points (x100)", default_factory=dict)
    agreement: Optional[float] = column("agree %", "fraction 0..1", ".2f", scale=100)
    latency_p50_ms: Optional[float] = column("p50 ms", "ms, end to end: image in -> class map out")
    latency_p90_ms: Optional[float] = column("p90 ms")
    latency_mean_ms: Optional[float] = None
    infer_p50_ms: Optional[float] = column("infer p50 ms", "ms, the engine alone")
    stages_p50_ms: Dict[str, float] = field(default_factory=dict)
    fps: Optional[float] = column("FPS")
    peak_mem_mb: Optional[float] = column(
        "peak MB", "MiB, the bench harness's process-wide RSS high-water mark (grows across rows)", ".0f")
    rss_growth_mb: Optional[float] = column(
        unit="MiB, resident memory gained while the variant was loaded, evaluated, timed")
    threads: Optional[int] = None
    bench_runs: Optional[int] = None
    parity: Dict[str, object] = field(default_factory=dict)
    convert_s: Optional[float] = None
    mixed: Dict[str, object] = field(default_factory=dict)
    quantization: Optional[str] = None  # how a calibrated artifact was quantized (its metadata's)
    quant_debug: Dict[str, object] = field(default_factory=dict)
    eval_s: Optional[float] = None
    target: Optional[str] = None  # the device the latency (and with --target-accuracy, accuracy) was measured on
    host: Dict[str, object] = field(default_factory=dict)  # this machine's figures, kept beside the device's

    def __post_init__(self):
        self.status = Status(self.status)

    def fail(self, status: Status, reason: str) -> ReportRow:
        self.status, self.reason = Status(status), " ".join(str(reason).split())[:500]
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
        flag = "" if self.status == Status.OK else f" [{self.status}]"
        return f"mIoU {self.miou * 100:.2f}%  agreement {_pct(self.agreement)}  {lat}{flag}"


@dataclass(frozen=True)
class Column:
    """A table column of the report, derived from a ReportRow field's `column(...)` declaration."""

    name: str
    header: str
    spec: str
    scale: float
    signed: bool

    def cell(self, row: dict) -> str:
        value = row[self.name]  # a KeyError, not a silent "–", when a row lacks a declared column
        if isinstance(value, str) or value is None:
            return value or "–"
        return fmt(value, self.spec, self.scale, self.signed)


def table_columns() -> List[Column]:
    """The declared table columns, in field order (looked up per call: a subclass patched in as
    ReportRow, or a field added to it, shows up in every renderer)."""
    return [
        Column(f.name, f.metadata["header"], f.metadata["spec"], f.metadata["scale"], f.metadata["signed"])
        for f in fields(ReportRow)
        if f.metadata.get("header")
    ]


def units() -> Dict[str, str]:
    """report.json's "units": field name -> unit, for every field that declares one."""
    return {f.name: f.metadata["unit"] for f in fields(ReportRow) if f.metadata.get("unit")}


def fmt(value, spec: str = ".1f", scale: float = 1.0, signed: bool = False) -> str:
    """A number for a table cell, or an en dash when it was not measured."""
    if value is None:
        return "–"
    return format(value * scale, ("+" if signed else "") + spec)


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


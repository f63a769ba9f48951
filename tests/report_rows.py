"""Hand-made report rows and reports: the shared tester of the report, its renderers and pick.

Seven rows with known answers: a Pareto front, best choices, a failed and an unavailable
variant (see the comments beside each).
"""

from __future__ import annotations

import numpy as np

from edge_deeplab.bench.machine import describe_machine
from edge_deeplab.bench.render_html import Examples
from edge_deeplab.bench.report import UNITS, gate


def hand_row(fmt, precision, runtime, miou, latency, status="ok", size=1.0, reason=""):
    ref_miou = 0.60
    return {
        "id": f"{fmt}:{precision}@{runtime}",
        "format": fmt,
        "precision": precision,
        "runtime": runtime,
        "device": "CPU",
        "status": status,
        "reason": reason,
        "size_mb": size,
        "miou": miou,
        "delta_miou": None if miou is None else round((miou - ref_miou) * 100, 4),
        "per_class_iou": {"road": miou, "car": miou},
        "delta_per_class_iou": {"road": -0.5, "car": 1.0} if miou is not None else {},
        "worst_class_drop": 0.5 if miou is not None else None,
        "agreement": None if miou is None else 0.97,
        "latency_p50_ms": latency,
        "latency_p90_ms": None if latency is None else latency * 1.2,
        "infer_p50_ms": latency,
        "fps": None if latency is None else 1000 / latency,
        "peak_mem_mb": 100.0,
    }


def hand_rows():
    return [
        hand_row("keras", "fp32", "keras", 0.60, 50.0, size=4.0),  # 0 dominated by 1
        hand_row("tflite", "fp32", "tflite", 0.60, 20.0, size=2.0),  # 1 front (most accurate)
        hand_row("tflite", "int8", "tflite", 0.57, 9.0, size=0.6),  # 2 front (fastest)
        hand_row("openvino", "int8", "openvino", 0.595, 10.0, size=0.7),  # 3 front (within 1 pt)
        hand_row("onnx", "int8", "onnxruntime", 0.55, 21.0, size=0.6),  # 4 dominated
        hand_row("tflite", "dynamic", "tflite", 0.70, 5.0, status="parity failed"),  # never a pick
        hand_row(
            "tensorrt", "fp16", "tensorrt", None, None, status="not available", reason="no GPU"
        ),
    ]


def hand_report(rows=None, max_drop=None):
    rows = hand_rows() if rows is None else rows
    return {
        "model": "hand/model.keras",
        "date": "2026-01-01T00:00:00+00:00",
        "machine": describe_machine(),
        "protocol": {"num_images": 4, "resize": "stretch", "ignore_label": 11},
        "units": UNITS,
        "max_miou_drop": max_drop,
        "rows": rows,
        "gate": gate(rows, max_drop),
    }


def hand_examples(rows):
    rng = np.random.default_rng(0)
    shown = [r["id"] for r in rows if r["format"] == "keras" or r["precision"] == "int8"]
    masks = {
        ident: [rng.integers(0, 2, (32, 48), dtype=np.uint8) for _ in range(2)] for ident in shown
    }
    return Examples(
        images=[rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(2)],
        truth=[rng.integers(0, 2, (32, 48), dtype=np.uint8) for _ in range(2)],
        masks=masks,
        palette=[(0, 0, 0), (200, 30, 30)],
    )

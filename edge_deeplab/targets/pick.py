"""The artifact to ship to a device, chosen by what was measured on it.

`choose` takes a `--target` report's rows: among the variants timed on the device whose
mIoU drop vs the float reference is within the budget (and, when given, whose every
class's IoU drop is within the per-class budget), the fastest end to end there wins. No
rule of thumb ("ARM means TFLite") enters: the device's own latencies decide. The choice
and its evidence (device, versions, figures, the other candidates and why they lost) are
written as `pick.json` beside the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from .. import __version__
from ..bench.pareto import worst_class_drop
from ..converters.validation import DEFAULT_BUDGET
from ..status import Status

PICK_FILE = "pick.json"


def _why_not(row: dict, budget: float, class_budget: Optional[float]) -> str:
    """"" for a candidate, else why it cannot be picked."""
    if not row.get("target"):
        return "not measured on the device"
    if row.get("status") != Status.OK:
        return f"{row.get('status')}: {row.get('reason', '')}".strip()
    if row.get("latency_p50_ms") is None:
        return "no latency measured on the device"
    if row.get("delta_miou") is None:
        return "no mIoU drop known"
    if row["delta_miou"] < -budget:
        return f"loses {-row['delta_miou']:.2f} mIoU points (budget {budget:g})"
    worst = worst_class_drop(row)
    if class_budget is not None and worst is not None and worst > class_budget:
        return f"a class loses {worst:.2f} IoU points (budget {class_budget:g})"
    return ""


def choose(rows: List[dict], max_drop: Optional[float] = None,
           max_class_drop: Optional[float] = None) -> Tuple[Optional[int], List[dict]]:
    """(index of the fastest row within budget or None, every row's verdict)."""
    budget = DEFAULT_BUDGET if max_drop is None else float(max_drop)
    verdicts = []
    for row in rows:
        why = _why_not(row, budget, max_class_drop)
        verdicts.append({"id": row["id"], "runtime": row.get("runtime"), "latency_p50_ms": row.get("latency_p50_ms"),
                         "delta_miou": row.get("delta_miou"), "worst_class_drop": worst_class_drop(row),
                         "within_budget": not why, "why_not": why or None})
    within = [i for i, v in enumerate(verdicts) if v["within_budget"]]
    best = min(within, key=lambda i: (rows[i]["latency_p50_ms"], -(rows[i].get("miou") or 0)), default=None)
    return best, verdicts


def pick_profile(report: dict, max_drop: Optional[float], max_class_drop: Optional[float]) -> dict:
    """The pick.json record of a `--target` report: the choice, the budget and the evidence."""
    rows = report["rows"]
    index, verdicts = choose(rows, max_drop, max_class_drop)
    device = report["machine"].get("target") or {}
    chosen = None
    if index is not None:
        row = rows[index]
        chosen = {
            "id": row["id"], "format": row["format"], "precision": row["precision"], "runtime": row["runtime"],
            "artifact": row["artifact"], "files": _files(row["artifact"], row["format"]),
            "engine_device": row.get("device"), "latency_p50_ms": row["latency_p50_ms"],
            "latency_p90_ms": row.get("latency_p90_ms"), "fps": row.get("fps"), "miou": row.get("miou"),
            "delta_miou": row.get("delta_miou"), "worst_class_drop": worst_class_drop(row),
            "accuracy_measured_on": device.get("target") if "miou" in (row.get("host") or {}) else "host",
            "install": _install_line(row["runtime"], device),
            "host_latency_p50_ms": (row.get("host") or {}).get("latency_p50_ms"),
        }
    return {
        "kind": "edge-deeplab pick",
        "date": report.get("date"),
        "model": report.get("model"),
        "target": device.get("target"),
        "device": device,
        "host": {k: v for k, v in report["machine"].items() if k != "target"},
        "edge_deeplab": __version__,
        "budget": {"max_miou_drop": DEFAULT_BUDGET if max_drop is None else max_drop,
                   "max_class_drop": max_class_drop},
        "chosen": chosen,
        "candidates": verdicts,
    }


def _files(artifact: str, fmt: str) -> List[str]:
    from .cache import artifact_bundle

    try:
        bundle, _ = artifact_bundle(artifact)
    except Exception:  # noqa: BLE001 - the artifact itself is the one file to name then
        return [artifact]
    return [str(path) for _, path in bundle.files]


def _install_line(runtime: str, device: dict) -> str:
    try:
        from edge_deeplab.runtimes import RUNTIMES

        extra = RUNTIMES.get(runtime).extra
    except Exception:  # noqa: BLE001 - an unknown engine: the line names the runtime
        extra = runtime
    version = (device.get("libraries") or {}).get("edge-deeplab", __version__)
    return f'pip install "edge-deeplab[{extra}]=={version}"'


def write_pick(profile: dict, out_dir) -> Path:
    import json

    from ..imageio import atomic_write_text

    path = Path(out_dir) / PICK_FILE
    atomic_write_text(path, json.dumps(profile, indent=2) + "\n")
    return path


def pick_line(profile: dict) -> str:
    """One sentence for the console."""
    chosen = profile["chosen"]
    if chosen is None:
        return (f"pick for {profile['target']}: no variant measured there is within "
                f"{profile['budget']['max_miou_drop']:g} mIoU point(s)")
    return (f"pick for {profile['target']}: {chosen['format']} {chosen['precision']} on {chosen['runtime']} — "
            f"{chosen['latency_p50_ms']:.2f} ms p50 there, {chosen['delta_miou']:+.2f} mIoU pts "
            f"({chosen['artifact']})")

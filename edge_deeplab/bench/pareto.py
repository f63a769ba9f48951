"""Which variants are worth shipping: the accuracy-vs-latency Pareto front and best picks.

Rows are the report's plain dicts (see `report.ReportRow.to_dict`). Only rows with status
"ok" and both numbers measured take part: a variant that failed parity is never a pick.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from ..converters.validation import DEFAULT_BUDGET  # the mIoU points a variant may lose, when no gate is set
from ..status import Status

ACCURACY = "miou"
LATENCY = "latency_p50_ms"


def candidates(rows: Sequence[dict], x: str = LATENCY, y: str = ACCURACY) -> List[int]:
    """Indices of the rows that may be picked: status ok, x and y measured."""
    return [
        i
        for i, row in enumerate(rows)
        if row.get("status") == Status.OK and row.get(x) is not None and row.get(y) is not None
    ]


def pareto_front(rows: Sequence[dict], x: str = LATENCY, y: str = ACCURACY) -> List[int]:
    """Indices of the rows no other row beats: lower-or-equal `x` and higher-or-equal `y`,
    strictly better in one. Sorted by `x` (fastest first).

    Rows with identical (x, y) are all kept: neither dominates the other.
    """
    pool = candidates(rows, x, y)
    front = []
    for i in pool:
        xi, yi = rows[i][x], rows[i][y]
        dominated = any(
            rows[j][x] <= xi and rows[j][y] >= yi and (rows[j][x] < xi or rows[j][y] > yi)
            for j in pool
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (rows[i][x], -rows[i][y]))


def best_choices(
    rows: Sequence[dict], max_drop: Optional[float] = None
) -> Dict[str, Optional[int]]:
    """The picks a reader looks for, as row indices (None when nothing qualifies).

    most_accurate: highest mIoU. fastest: lowest end-to-end p50. smallest: fewest MB.
    best_under_budget: fastest row whose mIoU drop vs the float reference is within
    `max_drop` points (DEFAULT_BUDGET when None).
    """
    pool = candidates(rows)
    budget = DEFAULT_BUDGET if max_drop is None else float(max_drop)
    sized = [i for i in pool if rows[i].get("size_mb") is not None]
    within = [
        i
        for i in pool
        if rows[i].get("delta_miou") is not None and rows[i]["delta_miou"] >= -budget
    ]
    return {
        "most_accurate": max(
            pool, key=lambda i: (rows[i][ACCURACY], -rows[i][LATENCY]), default=None
        ),
        "fastest": min(pool, key=lambda i: (rows[i][LATENCY], -rows[i][ACCURACY]), default=None),
        "smallest": min(sized, key=lambda i: (rows[i]["size_mb"], rows[i][LATENCY]), default=None),
        "best_under_budget": min(
            within, key=lambda i: (rows[i][LATENCY], -rows[i][ACCURACY]), default=None
        ),
    }


def marks(rows: Sequence[dict], max_drop: Optional[float] = None) -> Dict[int, List[str]]:
    """Row index -> the short tags a table shows beside it (e.g. ["pareto", "fastest"])."""
    tags: Dict[int, List[str]] = {i: [] for i in range(len(rows))}
    for name, index in best_choices(rows, max_drop).items():
        if index is not None:
            tags[index].append(name.replace("_", " "))
    for index in pareto_front(rows):
        tags[index].insert(0, "pareto")
    return tags


def worst_class_drop(row: dict) -> Optional[float]:
    """The largest per-class IoU loss vs the float reference, in points (None: not known)."""
    drops = [-v for v in (row.get("delta_per_class_iou") or {}).values() if v is not None]
    return max(drops) + 0.0 if drops else None  # + 0.0: no "-0.0" in the JSON


def breach(row: dict, max_drop: Optional[float], max_class_drop: Optional[float] = None) -> str:
    """Why `row` breaks the gate ("" when it holds or is not measured): its mIoU drop past
    `max_drop`, or one class's IoU drop past `max_class_drop` (points, either None: unchecked)."""
    delta = row.get("delta_miou")
    if max_drop is not None and delta is not None and delta < -float(max_drop):
        return f"mIoU {delta:+.2f}"
    worst = worst_class_drop(row)
    if max_class_drop is not None and worst is not None and worst > float(max_class_drop):
        name = max(row["delta_per_class_iou"], key=lambda c: -(row["delta_per_class_iou"][c] or 0.0))
        return f"class {name} {-worst:+.2f}"
    return ""


def breaches(rows: Sequence[dict], max_drop: Optional[float], max_class_drop: Optional[float] = None) -> List[int]:
    """Indices of rows that break the gate (see `breach`)."""
    return [i for i, row in enumerate(rows) if breach(row, max_drop, max_class_drop)]


def gate(rows: Sequence[dict], max_drop: Optional[float], max_class_drop: Optional[float] = None) -> Optional[dict]:
    """The --max-miou-drop / --max-class-drop verdict: which rows broke it, or None when unset.

    A row breaks it when its mIoU drops more than `max_drop` points below float, or when any
    one class's IoU drops more than `max_class_drop` points (a mean can hide a lost class)."""
    if max_drop is None and max_class_drop is None:
        return None
    bad = breaches(rows, max_drop, max_class_drop)
    names = [f"{rows[i]['format']}:{rows[i]['precision']}@{rows[i]['runtime']} "
             f"({breach(rows[i], max_drop, max_class_drop)})" for i in bad]
    unmeasured = [f"{r['format']}:{r['precision']}@{r['runtime']}" for r in rows if r.get("delta_miou") is None]
    limits = " or ".join(([f"{max_drop:g} mIoU points"] if max_drop is not None else [])
                         + ([f"{max_class_drop:g} IoU points in a class"] if max_class_drop is not None else []))
    message = (f"FAILED: {len(bad)} variant(s) lost more than {limits}: {', '.join(names)}" if bad
               else f"passed: no measured variant lost more than {limits}")
    if unmeasured:
        message += f" (not measured: {', '.join(unmeasured)})"
    return {
        "max_miou_drop": None if max_drop is None else float(max_drop),
        "max_class_drop": None if max_class_drop is None else float(max_class_drop),
        "passed": not bad,
        "breached": names,
        "rows": bad,
        "message": message,
    }

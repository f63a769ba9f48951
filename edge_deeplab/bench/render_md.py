"""report.json -> report.md: the table a person reads, with the best choices marked.

Everything here takes the report as the plain dict written to report.json, so a report can
be re-rendered from its JSON alone.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from ..converters.validation import DEFAULT_BUDGET
from ..status import Status
from .pareto import best_choices, marks
from .report_row import fmt, table_columns


def variant_name(row: dict) -> str:
    return f"{row['format']} {row['precision']}"


# The variant and its runtime lead; the measured columns are declared on ReportRow's fields.
LEADING = (("variant", variant_name),
           ("runtime", lambda r: (r["runtime"] or "–") + (f" @ {r['target']}" if r.get("target") else "")))


def table_cells(report: dict) -> List[List[str]]:
    """Header row then one row of cell strings per variant (the marks column last)."""
    rows = report["rows"]
    tags = marks(rows, report.get("max_miou_drop"))
    for index in (report.get("gate") or {}).get("rows", ()):
        tags[index].insert(0, "BREAKS GATE")
    columns = table_columns()
    header = [name for name, _ in LEADING] + [c.header for c in columns] + ["best"]
    body = [
        [cell(row) for _, cell in LEADING] + [c.cell(row) for c in columns] + [", ".join(tags[i])]
        for i, row in enumerate(rows)
    ]
    return [header, *body]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(report: dict) -> str:
    """The results table in GitHub Markdown."""
    header, *body = table_cells(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def picks_text(report: dict) -> List[str]:
    """One sentence per best choice ("Fastest: tflite int8 (tflite), 9.8 ms p50, ...")."""
    rows = report["rows"]
    budget = report.get("max_miou_drop")
    titles = {
        "most_accurate": "Most accurate",
        "fastest": "Fastest",
        "smallest": "Smallest",
        "best_under_budget": f"Fastest within {DEFAULT_BUDGET if budget is None else budget:g} "
        "mIoU point(s) of float",
    }
    lines = []
    for key, index in best_choices(rows, budget).items():
        if index is None:
            lines.append(f"{titles[key]}: none qualifies.")
            continue
        row = rows[index]
        lines.append(
            f"{titles[key]}: {variant_name(row)} on {row['runtime']} — "
            f"mIoU {fmt(row['miou'], '.2f', 100)} % "
            f"({fmt(row.get('delta_miou'), '.2f', signed=True)} pts), "
            f"{fmt(row['latency_p50_ms'])} ms p50, "
            f"{fmt(row.get('size_mb'), '.2f')} MB."
        )
    return lines


def protocol_lines(protocol: dict) -> List[str]:
    """The evaluation protocol as "key: value" lines."""
    return [f"{key}: {value}" for key, value in protocol.items()]


def machine_lines(machine: dict) -> List[str]:
    libs = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("libraries", {}).items()))
    return [
        f"CPU: {machine.get('cpu')} ({machine.get('cores')} cores, "
        f"{machine.get('usable_cores')} usable)",
        f"System: {machine.get('system')}, Python {machine.get('python')}",
        f"Libraries: {libs}",
        *target_lines(machine.get("target")),
    ]


def target_lines(device: Optional[dict]) -> List[str]:
    """The device a `--target` report was measured on (its own description), or none."""
    if not device:
        return []
    libs = ", ".join(f"{k} {v}" for k, v in sorted(device.get("libraries", {}).items()))
    return [
        f"Measured on device {device.get('target')} ({device.get('host')}): {device.get('cpu')}, "
        f"{device.get('arch')}, {device.get('cores')} cores, {device.get('system')}, Python {device.get('python')}",
        f"Device libraries: {libs}",
        "Latency columns are the device's; each row's `host` in report.json keeps this machine's figures.",
    ]


def failure_lines(rows: Sequence[dict]) -> List[str]:
    return [
        f"{variant_name(r)} ({r['runtime']}): {r['status']} — "
        f"{r.get('reason') or 'no reason given'}"
        for r in rows
        if r.get("status") != Status.OK
    ]


def per_class_table(rows: Sequence[dict]) -> str:
    """Per-class IoU % (and Δ points vs float) of every measured variant, or "" if none."""
    measured = [r for r in rows if r.get("per_class_iou") and r.get("miou") is not None]
    if not measured:
        return ""
    classes = list(measured[0]["per_class_iou"])
    lines = ["| variant | " + " | ".join(_md_escape(c) for c in classes) + " |"]
    lines.append("|" + "|".join("---" for _ in range(len(classes) + 1)) + "|")
    for row in measured:
        cells = []
        for name in classes:
            iou = fmt(row["per_class_iou"].get(name), ".1f", 100)
            delta = (row.get("delta_per_class_iou") or {}).get(name)
            cells.append(
                iou if delta is None or row["format"] == "keras" else f"{iou} ({delta:+.1f})"
            )
        lines.append(f"| {variant_name(row)} ({row['runtime']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _class_budget(mixed: dict) -> str:
    """ ", 1 point a class (worst 'pole' 0.42)" where the search held a class budget."""
    if mixed.get("class_budget_points") is None:
        return ""
    worst = mixed.get("worst_class_drop_points")
    where = f" (worst {mixed.get('worst_class')!r} {worst:.2f})" if worst is not None else ""
    return f", {mixed['class_budget_points']:g} a class{where}"


def mixed_lines(rows: Sequence[dict]) -> List[str]:
    """What each int8-mixed search kept in float, and what it cost against full int8 of
    the same format."""
    lines = []
    for row in rows:
        mixed = row.get("mixed") or {}
        if not mixed:
            continue
        int8 = next(
            (r for r in rows if r["format"] == row["format"] and r["precision"] == "int8"), None
        )
        layers = mixed.get("float_layers", [])
        met = "met" if mixed.get("budget_met") else "NOT met"
        text = (
            f"{variant_name(row)} ({mixed.get('method', '')}): {len(layers)} of "
            f"{mixed.get('quantized_layers') or '?'} quantized layers kept in "
            f"{mixed.get('lifted_to', 'float')}; budget "
            f"{mixed.get('budget_points'):g} points{_class_budget(mixed)} {met} "
            f"(Δ mIoU {fmt(row.get('delta_miou'), '.2f', signed=True)})"
        )
        if int8 and int8.get("latency_p50_ms") and row.get("latency_p50_ms"):
            cost = row["latency_p50_ms"] - int8["latency_p50_ms"]
            text += f"; {fmt(row['latency_p50_ms'])} ms p50, {cost:+.1f} ms vs full int8"
            if int8.get("infer_p50_ms") and row.get("infer_p50_ms"):
                text += f" (model alone {row['infer_p50_ms'] - int8['infer_p50_ms']:+.1f} ms)"
        trials = ", ".join(
            f"{t['float_layers']}→{t['miou_drop_points']:.2f}" for t in mixed.get("trials", ())
        )
        lifted = "16-bit" if mixed.get("lifted_to") == "16-bit" else "float"
        lines.append(text + (f". Trials ({lifted} layers→drop): {trials}." if trials else "."))
        lines += [f"  - `{name.split(';')[0]}`" for name in layers]
    return lines


def layer_error_lines(rows: Sequence[dict], worst: int = 3) -> List[str]:
    """Per int8 variant: the worst layers' SQNR, or why there is no per-layer figure."""
    lines = []
    for row in rows:
        debug = row.get("quant_debug") or {}
        if not debug:
            continue
        if not debug.get("layers"):
            lines.append(f"{variant_name(row)} ({row['runtime']}): {debug.get('reason', 'no figures')}")
            continue
        shown = ", ".join(f"`{w['layer'].split(';')[0][-60:]}` {w['sqnr_db']:.1f} dB" for w in debug["layers"][:worst])
        how = f"; {row['quantization']}" if row.get("quantization") else ""
        lines.append(f"{variant_name(row)} ({row['runtime']}{how}), {len(debug['layers'])} layers, worst: {shown}")
    return lines


def render_markdown(report: dict) -> str:
    """The whole report.md."""
    out = [f"# Accuracy vs latency: {report.get('model', '')}", ""]
    out += [
        f"Measured {report.get('date')}. mIoU and agreement over "
        f"{report['protocol'].get('num_images')} "
        "images; latency end to end (image in → class map out) and of the model alone, batch 1.",
        "",
    ]
    out += [markdown_table(report), ""]
    out += [
        "Pareto = no other variant is both faster and more accurate. Δ mIoU is in points "
        "against the Keras float reference; agreement is the share of pixels whose class "
        "matches the float reference's.",
        "",
    ]
    out += ["## Best choices", ""] + [f"- {line}" for line in picks_text(report)] + [""]
    failures = failure_lines(report["rows"])
    if failures:
        out += (
            ["## Variants that did not run cleanly", ""] + [f"- {line}" for line in failures] + [""]
        )
    classes = per_class_table(report["rows"])
    if classes:
        out += ["## Per-class IoU % (Δ points vs float)", "", classes, ""]
    errors = layer_error_lines(report["rows"])
    if errors:
        out += ["## Per-layer quantization error (SQNR, dB; higher is better)", ""]
        out += [f"- {line}" for line in errors] + [""]
    mixed = mixed_lines(report["rows"])
    if mixed:
        out += (
            ["## int8-mixed: layers kept in float (int8-mixed16: in 16 bits) to hold the mIoU budget", ""]
            + [f"- {line}" if not line.startswith("  ") else line for line in mixed]
            + [""]
        )
    gate = report.get("gate")
    if gate:
        out += ["## Gate", "", f"- {gate['message']}", ""]
    out += (
        ["## Evaluation protocol", ""]
        + [f"- {line}" for line in protocol_lines(report["protocol"])]
        + [""]
    )
    out += ["## Machine", ""] + [f"- {line}" for line in machine_lines(report["machine"])] + [""]
    return "\n".join(out)

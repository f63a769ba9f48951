"""report.json (+ example masks) -> report.html: one self-contained page.

The page holds the results table, an accuracy-vs-latency scatter with the Pareto front, a
per-class Δ IoU bar chart of the int8 variants and example images with the float and int8
masks side by side. Charts are matplotlib PNGs embedded as base64 data URIs, so the file
can be mailed or attached to a CI run and opens with no network.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from edge_deeplab.converters.quant_debug import WORST

from .. import deps
from ..status import Status
from ..visualize import colorize
from .pareto import pareto_front
from .render_md import (
    failure_lines,
    machine_lines,
    picks_text,
    protocol_lines,
    table_cells,
    variant_name,
)


@dataclass
class Examples:
    """A few evaluated images and each variant's class maps for them.

    images: uint8 (H, W, 3) RGB images. truth: uint8 (H, W) masks (or empty).
    masks: row ident ("tflite:int8@tflite") -> uint8 (H, W) class maps, one per image.
    titles: row ident -> column title. palette: one RGB colour per class.
    """

    images: List[np.ndarray] = field(default_factory=list)
    truth: List[np.ndarray] = field(default_factory=list)
    masks: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    titles: Dict[str, str] = field(default_factory=dict)
    palette: Sequence = ()


def _figure(width: float, height: float):
    deps.matplotlib()
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any thread

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def scatter_chart(rows: Sequence[dict]) -> Optional[str]:
    """mIoU (%) against end-to-end p50 latency, the Pareto front joined; None if no data."""
    measured = [
        i
        for i, r in enumerate(rows)
        if r.get("miou") is not None and r.get("latency_p50_ms") is not None
    ]
    if not measured:
        return None
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    front = pareto_front(rows)
    for i in measured:
        row = rows[i]
        ok = row.get("status") == Status.OK
        ax.scatter(
            row["latency_p50_ms"],
            row["miou"] * 100,
            s=60 if i in front else 30,
            c="tab:red" if i in front else ("tab:blue" if ok else "lightgray"),
            edgecolors="black",
            zorder=3,
        )
        ax.annotate(
            f"{variant_name(row)} ({row['runtime']})",
            (row["latency_p50_ms"], row["miou"] * 100),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    if front:
        ax.step(
            [rows[i]["latency_p50_ms"] for i in front],
            [rows[i]["miou"] * 100 for i in front],
            where="post",
            color="tab:red",
            lw=1.2,
            label="Pareto front",
            zorder=2,
        )
        ax.legend(loc="lower right")
    latencies = [rows[i]["latency_p50_ms"] for i in measured]
    if min(latencies) > 0 and max(latencies) / min(latencies) > 8:
        ax.set_xscale("log")  # keeps fast variants apart when one engine is much slower
    ax.set_xlabel("end-to-end latency p50 (ms, lower is better)")
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)
    return figure_data_uri(fig)


def delta_chart(rows: Sequence[dict]) -> Optional[str]:
    """Grouped bars: per-class Δ IoU (points vs float) of each int8 variant; None if none."""
    int8 = [
        r for r in rows if str(r.get("precision")).startswith("int8") and r.get("delta_per_class_iou")
    ]
    if not int8:
        return None
    classes = list(int8[0]["delta_per_class_iou"])
    fig = _figure(max(6.0, 0.6 * len(classes) * max(1, len(int8)) ** 0.5 + 2), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / len(int8)
    x = np.arange(len(classes))
    for k, row in enumerate(int8):
        values = [row["delta_per_class_iou"].get(c) or 0.0 for c in classes]
        ax.bar(
            x + (k - (len(int8) - 1) / 2) * width,
            values,
            width,
            label=f"{variant_name(row)} ({row['runtime']})",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_ylabel("Δ IoU vs float (points)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure_data_uri(fig)


def layer_error_chart(rows: Sequence[dict]) -> Optional[str]:
    """Horizontal bars: the ten worst layers' SQNR (dB) of each int8 variant; None if none."""
    debugged = [r for r in rows if (r.get("quant_debug") or {}).get("layers")]
    if not debugged:
        return None
    fig = _figure(9.0, 3.2 * len(debugged))
    for k, row in enumerate(debugged, start=1):
        worst = row["quant_debug"]["layers"][:WORST]
        ax = fig.add_subplot(len(debugged), 1, k)
        names = [_short_layer(w["layer"]) for w in worst][::-1]
        ax.barh(names, [w["sqnr_db"] for w in worst][::-1], color="tab:red")
        ax.set_title(f"{variant_name(row)} ({row['runtime']}): {row['quant_debug']['method']}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("SQNR (dB, higher is better)")
        ax.grid(axis="x", alpha=0.3)
    return figure_data_uri(fig)


def _short_layer(name: str) -> str:
    """A TFLite/ONNX tensor name cut to the layer: first ';' part, last two path parts."""
    core = name.split(";")[0].replace("NumericVerify/", "")
    return "/".join(core.split("/")[-2:])[:48]


def examples_chart(examples: Optional[Examples]) -> Optional[str]:
    """A grid: one image per row; columns image, ground truth, then each variant's mask."""
    if examples is None or not examples.images or not examples.masks:
        return None
    idents = list(examples.masks)
    columns = 1 + bool(examples.truth) + len(idents)
    fig = _figure(2.6 * columns, 2.2 * len(examples.images))
    axes = fig.subplots(len(examples.images), columns, squeeze=False)
    for r, image in enumerate(examples.images):
        panels = [("image", image)]
        if examples.truth:
            panels.append(("ground truth", colorize(examples.truth[r], examples.palette)))
        panels += [
            (examples.titles.get(i, i), colorize(examples.masks[i][r], examples.palette))
            for i in idents
        ]
        for c, (title, picture) in enumerate(panels):
            axes[r][c].imshow(picture, interpolation="nearest")
            axes[r][c].set_axis_off()
            if r == 0:
                axes[r][c].set_title(title, fontsize=9)
    return figure_data_uri(fig)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:nth-child(-n+3),td:last-child{text-align:left}
tr.best td{background:#eef8ee}
tr.failed td{color:#888}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
"""


def _table_html(report: dict) -> str:
    header, *body = table_cells(report)
    out = [
        '<table id="results"><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
    ]
    for row, cells in zip(report["rows"], body):
        cls = "failed" if row.get("status") != Status.OK else ("best" if cells[-1] else "")
        out.append(
            f'<tr class="{cls}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _list_html(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def _image_html(uri: Optional[str], alt: str, missing: str) -> str:
    if uri is None:
        return f"<p><em>{html.escape(missing)}</em></p>"
    return f'<img alt="{html.escape(alt)}" src="{uri}">'


def render_html(report: dict, examples: Optional[Examples] = None) -> str:
    """The whole report.html as one string.

    Charts show names from files (labels, model names) as plain text: matplotlib would parse
    a `$` in a label as mathtext (and fail on an unpaired one) or hand it to LaTeX.
    """
    mpl = deps.matplotlib()
    with mpl.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _render_html(report, examples)


def _render_html(report: dict, examples: Optional[Examples] = None) -> str:
    rows = report["rows"]
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>edge-deeplab report: {html.escape(str(report.get('model', '')))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Accuracy vs latency: {html.escape(str(report.get('model', '')))}</h1>",
        f"<p>Measured {html.escape(str(report.get('date')))} on "
        f"{html.escape(str(report['machine'].get('cpu')))}."
        " Δ mIoU in points against the Keras float reference; latency end to end, batch 1.</p>",
        _table_html(report),
        "<h2>Best choices</h2>",
        _list_html(picks_text(report)),
    ]
    failures = failure_lines(rows)
    if failures:
        parts += ["<h2>Variants that did not run cleanly</h2>", _list_html(failures)]
    if report.get("gate"):
        parts += ["<h2>Gate</h2>", _list_html([report["gate"]["message"]])]
    parts += [
        "<h2>Accuracy vs latency</h2>",
        _image_html(
            scatter_chart(rows),
            "mIoU against latency, Pareto front marked",
            "no variant was measured",
        ),
        "<h2>Per-class Δ IoU of the int8 variants</h2>",
        _image_html(
            delta_chart(rows),
            "per-class IoU change of int8 variants",
            "no int8 variant was measured",
        ),
        "<h2>Per-layer quantization error (ten worst layers)</h2>",
        _image_html(
            layer_error_chart(rows),
            "SQNR of the ten worst layers of each int8 variant",
            "no int8 variant has a per-layer debugger here",
        ),
        "<h2>Examples</h2>",
        _image_html(
            examples_chart(examples), "example images with float and int8 masks", "no examples"
        ),
        "<h2>Evaluation protocol</h2>",
        _list_html(protocol_lines(report["protocol"])),
        "<h2>Machine</h2>",
        _list_html(machine_lines(report["machine"])),
        "</body></html>",
    ]
    return "\n".join(parts)

"""`edge-deeplab report`: rows, Pareto front, Markdown/HTML, failures as rows, the gate.

Most tests use hand-made rows (no engine needed); two run the real pipeline on the tiny
session model and a few synthetic images.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT
from report_rows import hand_examples, hand_report, hand_row, hand_rows

from edge_deeplab.bench import pareto
from edge_deeplab.bench.machine import cpu_model, describe_machine
from edge_deeplab.bench.render_md import table_cells
from edge_deeplab.bench.report import ReportResult, gate, write_report
from edge_deeplab.bench.report_row import ReportRow
from edge_deeplab.bench.variants import Variant, all_variants, parse_variant_specs, select_variants
from edge_deeplab.errors import InvalidInputError

# The fields every row of report.json carries (the list and then some).
ROW_FIELDS = (
    "format",
    "precision",
    "runtime",
    "device",
    "status",
    "reason",
    "size_mb",
    "miou",
    "delta_miou",
    "per_class_iou",
    "delta_per_class_iou",
    "agreement",
    "latency_p50_ms",
    "latency_p90_ms",
    "infer_p50_ms",
    "fps",
    "peak_mem_mb",
)
MEASURED = (
    "size_mb",
    "miou",
    "delta_miou",
    "agreement",
    "latency_p50_ms",
    "latency_p90_ms",
    "infer_p50_ms",
    "fps",
    "peak_mem_mb",
)


# --- Pareto front, best choices, gate -------------------------------------------------------


def test_pareto_front_on_hand_made_rows():
    rows = hand_rows()
    assert pareto.pareto_front(rows) == [2, 3, 1]  # fastest first; failed and dominated rows out


def test_pareto_keeps_ties_and_drops_exact_duplicates_of_nothing():
    rows = [
        hand_row("a", "fp32", "x", 0.5, 10.0),
        hand_row("b", "fp32", "x", 0.5, 10.0),
        hand_row("c", "fp32", "x", 0.4, 10.0),
        hand_row("d", "fp32", "x", 0.5, 11.0),
    ]
    assert pareto.pareto_front(rows) == [0, 1]


def test_best_choices_on_hand_made_rows():
    rows = hand_rows()
    best = pareto.best_choices(rows, max_drop=1.0)
    assert best == {"most_accurate": 1, "fastest": 2, "smallest": 2, "best_under_budget": 3}
    assert pareto.best_choices(rows, max_drop=5.0)["best_under_budget"] == 2
    assert pareto.best_choices([hand_rows()[-1]]) == dict.fromkeys(best)  # nothing measured


def test_gate_names_the_breaching_variants():
    rows = hand_rows()
    verdict = gate(rows, 2.0)
    assert not verdict["passed"]
    assert [b.split(" ")[0] for b in verdict["breached"]] == [
        "tflite:int8@tflite",
        "onnx:int8@onnxruntime",
    ]
    assert "tensorrt:fp16@tensorrt" in verdict["message"]  # unmeasured rows are named too
    assert gate(rows, 5.0)["passed"] and gate(rows, None) is None


def test_the_class_gate_fails_a_variant_that_lost_one_class_while_its_mean_held():
    """int8 whose mean holds the 0.5-point gate while its thin class lost 3 points."""
    rows = hand_rows()[:2]
    rows[0]["delta_per_class_iou"] = {"road": 0.0, "pole": 0.0}
    rows[1]["delta_miou"], rows[1]["delta_per_class_iou"] = -0.3, {"road": 0.1, "pole": -3.0}
    rows[0]["worst_class_drop"], rows[1]["worst_class_drop"] = 0.0, 3.0
    assert gate(rows, 0.5)["passed"]  # the mean alone lets it through
    verdict = gate(rows, 0.5, max_class_drop=1.0)
    assert not verdict["passed"] and verdict["rows"] == [1]
    assert verdict["breached"] == ["tflite:fp32@tflite (class pole -3.00)"]
    assert "1 IoU points in a class" in verdict["message"]
    assert gate(rows, None, max_class_drop=3.0)["passed"]
    report = hand_report(rows, 0.5)
    report["gate"] = verdict
    cells = table_cells(report)
    marked = [row[-1] for row in cells[1:]]
    assert marked[1].startswith("BREAKS GATE") and not marked[0].startswith("BREAKS GATE")
    worst = cells[0].index("worst class pts")  # the table shows what the class gate judged
    assert [row[worst] for row in cells[1:]] == ["0.00", "3.00"]


# --- the variant table ------------------------------------------------------------------------


def test_variants_come_from_the_registries():
    from edge_deeplab.converters import CONVERTERS

    variants = all_variants()
    assert variants[0] == Variant("keras", "fp32", "keras", ".keras")
    made = {(v.format, v.precision) for v in variants[1:]}
    assert made == {(name, p) for name, cls in CONVERTERS.items() for p in cls.precisions}
    assert {v.runtime for v in variants if v.format == "onnx"} == {"onnxruntime"}
    only = all_variants(runtimes=["openvino"])
    assert {v.format for v in only} == {"keras", "openvino"}  # --runtimes filters the engines
    with pytest.raises(InvalidInputError, match="unknown runtime"):
        all_variants(runtimes=["nope"])


def test_runtimes_option_runs_a_format_on_every_engine_that_opens_it():
    from edge_deeplab.registry import Registry

    converters, engines = Registry("converter"), Registry("runtime")
    converters.register("onnx")(
        type("C", (), {"suffix": ".onnx", "precisions": ("fp32", "int8"), "runtime": "ort"})
    )
    engines.register("ort")(type("A", (), {"suffixes": (".onnx",)}))
    engines.register("ov")(type("B", (), {"suffixes": (".xml", ".onnx")}))
    engines.register("keras")(type("K", (), {"suffixes": (".keras",)}))
    native = all_variants(None, converters, engines)
    assert [v.ident for v in native] == ["keras:fp32@keras", "onnx:fp32@ort", "onnx:int8@ort"]
    both = all_variants(["ort", "ov"], converters, engines)
    assert [v.ident for v in both[1:]] == [
        "onnx:fp32@ort",
        "onnx:fp32@ov",
        "onnx:int8@ort",
        "onnx:int8@ov",
    ]


def test_variant_specs_select_the_reference_then_the_named_variants():
    variants = all_variants()
    chosen = select_variants(parse_variant_specs("tflite:int8, openvino"), variants)
    assert chosen[0].is_reference  # the float reference is always measured
    assert [v.key for v in chosen[1:]] == ["tflite:int8"] + [
        v.key for v in variants if v.format == "openvino"
    ]
    with pytest.raises(InvalidInputError, match="valid: .*tflite:int8"):
        select_variants(parse_variant_specs("tflite:int4"), variants)
    with pytest.raises(InvalidInputError):
        parse_variant_specs(" , ")


def test_machine_description_without_heavy_imports():
    import sys

    before = "tensorflow" in sys.modules
    machine = describe_machine()
    assert (
        machine["cores"] >= 1 and machine["cpu"] and machine["libraries"]["numpy"] == np.__version__
    )
    assert ("tensorflow" in sys.modules) == before
    assert cpu_model("/nonexistent/cpuinfo")  # falls back instead of failing


# --- Markdown and HTML ------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows = 0
        self.images = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def test_markdown_and_html_are_written(tmp_path):
    rows = hand_rows()
    report = hand_report(rows, max_drop=1.0)
    paths = write_report(report, tmp_path, hand_examples(rows))
    assert json.loads(paths["json"].read_text())["rows"] == rows
    md = paths["md"].read_text()
    start = md.index("| variant | runtime |")
    table = [line for line in md[start:].split("\n\n")[0].splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(rows)  # header + one line per variant
    assert "## Per-class IoU" in md and "| tflite int8 (tflite) | 57.0 (-0.5) | 57.0 (+1.0) |" in md
    assert "| tflite int8 | tflite | ok |" in md and "pareto, fastest, smallest" in md
    assert "tensorrt fp16 (tensorrt): not available — no GPU" in md
    assert "FAILED" in md and "tflite:int8@tflite" in md  # the gate's verdict is in the report
    page = _Collect()
    page.feed(paths["html"].read_text())
    assert page.rows == 1 + len(rows)
    assert len(page.images) == 3 and all(
        src.startswith("data:image/png;base64,") for src in page.images
    )
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporaries


def test_a_column_declared_once_reaches_json_markdown_and_html(tmp_path, monkeypatch):
    import dataclasses
    from typing import Optional

    from edge_deeplab.bench import report_row

    @dataclasses.dataclass
    class WithEnergy(report_row.ReportRow):
        energy_mj: Optional[float] = report_row.column("energy mJ", "millijoules per frame", ".2f")

    monkeypatch.setattr(report_row, "ReportRow", WithEnergy)  # the one place a column is declared
    rows = [dict(row, energy_mj=1.5 + i) for i, row in enumerate(hand_rows())]
    written = write_report(dict(hand_report(rows), units=report_row.units()), tmp_path)
    data = json.loads(written["json"].read_text())
    assert data["units"]["energy_mj"] == "millijoules per frame" and data["rows"][2]["energy_mj"] == 3.5
    md = written["md"].read_text()
    assert "| peak MB | energy mJ | best |" in md and "| 100 | 3.50 |" in md
    html = written["html"].read_text()
    assert "<th>energy mJ</th>" in html and "<td>3.50</td>" in html
    with pytest.raises(KeyError, match="energy_mj"):  # a row without the column fails loudly
        write_report(hand_report(hand_rows()), tmp_path / "old")


def test_html_without_measurements_says_so(tmp_path):
    rows = [
        hand_row(
            "tensorrt", "fp16", "tensorrt", None, None, status="not available", reason="no GPU"
        )
    ]
    paths = write_report(hand_report(rows), tmp_path, None)
    text = paths["html"].read_text()
    assert "no variant was measured" in text and "<img" not in text


# --- the CLI gate -----------------------------------------------------------------------------


def _fake_run(tmp_path) -> Path:
    from edge_deeplab.metadata import ArtifactMetadata

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"not used: report() is replaced")
    (run / "metadata.json").write_text(
        ArtifactMetadata(labels=("road", "car"), input_size=(32, 32)).to_json()
    )
    return run


@pytest.mark.parametrize("max_drop, status", [(2.0, 3), (5.0, 0)])
def test_cli_gate_exit_status(tmp_path, monkeypatch, capsys, max_drop, status):
    import edge_deeplab.bench.report as report_module
    from edge_deeplab.cli.main import main

    seen = {}

    def fake_report(model, data, out_dir, **kwargs):
        seen.update(kwargs, data=data)
        data_dict = hand_report(max_drop=kwargs["max_miou_drop"])
        paths = write_report(data_dict, Path(out_dir))
        return ReportResult([], data_dict, Path(out_dir), paths, data_dict["gate"]["breached"])

    monkeypatch.setattr(report_module, "report", fake_report)
    code = main(
        [
            "report",
            str(_fake_run(tmp_path)),
            "--format",
            "synthetic",
            "--out",
            str(tmp_path / "out"),
            "--max-miou-drop",
            str(max_drop),
            "--variants",
            "tflite:int8",
            "--int8-agreement",
            "0.9",
        ]
    )
    assert code == status
    err = capsys.readouterr().err
    assert ("tflite:int8@tflite" in err) == (status == 3)
    assert (tmp_path / "out" / "report.md").is_file()  # written even when the gate fails
    assert seen["variants"] == "tflite:int8" and seen["data"].ignore_label == 255
    assert seen["int8_agreement"] == 0.9


@pytest.mark.parametrize("max_class_drop, status", [(0.4, 3), (1.0, 0)])
def test_cli_class_gate_exit_status(tmp_path, monkeypatch, capsys, max_class_drop, status):
    """Every hand row's road class lost 0.5 point: a 0.4-point class gate fails, 1.0 holds."""
    import edge_deeplab.bench.report as report_module
    from edge_deeplab.cli.main import main

    def fake_report(model, data, out_dir, **kwargs):
        rows = hand_rows()
        data_dict = {**hand_report(rows), "gate": gate(rows, kwargs["max_miou_drop"], kwargs["max_class_drop"])}
        paths = write_report(data_dict, Path(out_dir))
        return ReportResult([], data_dict, Path(out_dir), paths, data_dict["gate"]["breached"])

    monkeypatch.setattr(report_module, "report", fake_report)
    code = main(["report", str(_fake_run(tmp_path)), "--format", "synthetic", "--out", str(tmp_path / "out"),
                 "--max-class-drop", str(max_class_drop)])
    assert code == status
    err = capsys.readouterr().err
    assert ("class road -0.50" in err) == (status == 3)
    assert ("BREAKS GATE" in (tmp_path / "out" / "report.md").read_text()) == (status == 3)


def test_cli_rejects_bad_numbers(tmp_path, capsys):
    from edge_deeplab.cli.main import main

    run = _fake_run(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "o"), "--max-miou-drop", "-1"]) == 2
    assert "--max-miou-drop" in capsys.readouterr().err
    assert main(["report", str(run), "--out", str(tmp_path / "o"), "--int8-agreement", "1.5"]) == 2
    assert "--int8-agreement must be in (0, 1]" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # not a run folder


# --- the real pipeline on the tiny model --------------------------------------------------------

FAST = dict(min_time_s=0.05, max_runs=5, warmup=1)


def _synthetic(n=6):
    from edge_deeplab.config import DataConfig

    return DataConfig(
        format="synthetic", num_classes=3, synthetic_val=n, synthetic_size=(64, 64), seed=3
    )


def test_failing_variants_become_rows(tiny_run, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    import edge_deeplab.converters as converters_module
    from edge_deeplab.bench.report import BenchOptions, report

    def broken_convert(*args, **kwargs):
        raise RuntimeError("converter exploded on purpose")

    monkeypatch.setattr(converters_module, "convert", broken_convert)
    variants = [
        Variant("keras", "fp32", "keras", ".keras"),
        Variant("tflite", "fp32", "no-such-engine", ".tflite"),
        Variant("onnx", "fp32", "onnxruntime", ".onnx"),
        Variant("tflite", "fp16", "tflite", ".tflite"),
    ]
    # An artifact left in the out folder that no engine can read (reused, then fails to load).
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model_fp16.tflite").write_bytes(b"not a flatbuffer" * 64)
    result = report(
        tiny_run,
        _synthetic(),
        tmp_path,
        variants=variants,
        progress=False,
        bench=BenchOptions(**FAST),
        max_miou_drop=1.0,
    )
    statuses = [(r.status, r.reason) for r in result.rows]
    assert statuses[0] == ("ok", "")
    assert statuses[1][0] == "not available" and "no-such-engine" in statuses[1][1]
    assert statuses[2][0] == "conversion failed" and "exploded on purpose" in statuses[2][1]
    assert statuses[3][0] == "run failed" and "model_fp16.tflite" in statuses[3][1]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [r["status"] for r in saved["rows"]] == [
        "ok",
        "not available",
        "conversion failed",
        "run failed",
    ]
    assert all(r["reason"] for r in saved["rows"][1:])
    assert saved["gate"]["passed"] and result.passed
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()


@pytest.fixture(scope="module")
def end_to_end(tiny_run, tmp_path_factory):
    """One real report of the tiny model (Keras, TFLite fp32 and int8): (result, report.json's
    data, report.md, report.html, the folder), read at once so a later report there cannot change them."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from edge_deeplab.bench.report import BenchOptions, report

    folder = tmp_path_factory.mktemp("end-to-end")
    result = report(tiny_run, _synthetic(), folder, variants="tflite:fp32,tflite:int8", progress=False,
                    bench=BenchOptions(**FAST), examples=2, int8_agreement=TINY_INT8_AGREEMENT)
    texts = [(folder / name).read_text() for name in ("report.json", "report.md", "report.html")]
    return result, json.loads(texts[0]), texts[1], texts[2], folder


@pytest.mark.slow
def test_the_report_lists_keras_then_each_requested_variant(end_to_end):
    result, data, *_ = end_to_end
    assert result.passed and {"rows", "machine", "protocol", "date"} <= set(data)
    assert [r.variant.key for r in result.rows] == [r["id"].split("@")[0] for r in data["rows"]]
    assert [(r["format"], r["precision"]) for r in data["rows"]] == [
        ("keras", "fp32"), ("tflite", "fp32"), ("tflite", "int8")]


@pytest.mark.slow
def test_every_row_has_every_field_measured(end_to_end):
    _, data, *_ = end_to_end
    for row in data["rows"]:
        assert set(ROW_FIELDS) <= set(row), row
        assert row["status"] == "ok", row["reason"]
        assert all(row[name] is not None for name in MEASURED), row
        assert set(row["per_class_iou"]) == set(row["delta_per_class_iou"]) == {"background", "disk", "box"}
        assert 0.0 <= row["miou"] <= 1.0 and row["latency_p90_ms"] >= row["latency_p50_ms"] > 0


@pytest.mark.slow
def test_fp32_tflite_equals_keras_and_int8_is_smaller(end_to_end):
    _, data, *_ = end_to_end
    ref, fp32, int8 = data["rows"]
    assert ref["delta_miou"] == 0.0 and ref["agreement"] == 1.0
    assert fp32["agreement"] > 0.99 and abs(fp32["delta_miou"]) < 1.0
    assert int8["size_mb"] < fp32["size_mb"]


@pytest.mark.slow
def test_the_protocol_and_the_machine_are_recorded(end_to_end):
    _, data, _, _, folder = end_to_end
    proto = data["protocol"]
    assert proto["num_images"] == 6 and proto["input_size"] == [64, 64] and proto["resize"] == "stretch"
    assert data["machine"]["cpu"] and data["machine"]["libraries"]
    assert (folder / "artifacts" / "model_int8.tflite").is_file()


@pytest.mark.slow
def test_the_int8_row_ranks_its_layers_worst_first(end_to_end):
    _, data, md, *_ = end_to_end
    layers = data["rows"][2]["quant_debug"]["layers"]  # LiteRT's debugger: one SQNR per quantized layer
    assert len(layers) > 20 and all(np.isfinite(w["sqnr_db"]) for w in layers)
    assert [w["sqnr_db"] for w in layers] == sorted(w["sqnr_db"] for w in layers)
    assert "## Per-layer quantization error" in md


@pytest.mark.slow
def test_markdown_and_html_show_the_rows_and_charts(end_to_end):
    _, _, md, page_text, _ = end_to_end
    assert "| tflite int8 | tflite | ok |" in md and "## Evaluation protocol" in md
    page = _Collect()
    page.feed(page_text)
    assert page.rows == 4 and len(page.images) == 4  # + the ten-worst-layers chart


@pytest.mark.slow
def test_a_second_report_reuses_the_artifacts(end_to_end, tiny_run):
    from edge_deeplab.bench.report import BenchOptions, report

    again = report(tiny_run, _synthetic(), end_to_end[-1], variants="tflite:int8", progress=False,
                   bench=BenchOptions(**FAST), examples=0)
    assert again.rows[1].reused and again.rows[1].status == "ok"


@pytest.mark.parametrize("flags", [["--data", "synthetic"], []])
def test_cli_data_synthetic_means_the_synthetic_dataset(tmp_path, monkeypatch, flags):
    """`report RUN --data synthetic` reads the words as train and eval do (issue 13)."""
    import edge_deeplab.bench.report as report_module
    from edge_deeplab.cli.main import main

    seen = {}

    def fake_report(model, data, out_dir, **kwargs):
        seen.update(data=data)
        data_dict = hand_report(max_drop=None)
        paths = write_report(data_dict, Path(out_dir))
        return ReportResult([], data_dict, Path(out_dir), paths, False)

    monkeypatch.setattr(report_module, "report", fake_report)
    code = main(["report", str(_fake_run(tmp_path)), *flags, "--out", str(tmp_path / "out")])
    assert code == 0
    assert seen["data"].format == "synthetic" and seen["data"].path is None
    assert seen["data"].synthetic_size == (32, 32)


def test_cli_exits_4_when_a_requested_variant_is_not_produced(tmp_path, monkeypatch, capsys):
    import edge_deeplab.bench.report as report_module
    from edge_deeplab.cli.main import main

    def fake_report(model, data, out_dir, **kwargs):
        data_dict = hand_report(max_drop=None)
        paths = write_report(data_dict, Path(out_dir))
        rows = [ReportRow(Variant("tflite", "int8", "tflite", ".tflite")),
                ReportRow(Variant("openvino", "int8", "openvino", ".xml")).fail("conversion failed", "boom")]
        return ReportResult(rows, data_dict, Path(out_dir), paths, True)

    monkeypatch.setattr(report_module, "report", fake_report)
    args = ["report", str(_fake_run(tmp_path)), "--out", str(tmp_path / "out")]
    assert main([*args, "--variants", "tflite:int8,openvino:int8"]) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "requested variants not produced" in err and "openvino" in err and "conversion failed" in err
    assert (tmp_path / "out" / "report.md").is_file()
    assert main(args) == 0  # the default "all" may list formats this machine lacks

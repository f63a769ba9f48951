"""int8-mixed: int8 within an mIoU budget on every CPU engine (the search and the artifacts)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT

from edge_deeplab.converters.tflite_mixed import fewest_layers
from edge_deeplab.deps import available as deps_available


def _drops(first_ok: int):
    """A drop curve that meets a 1-point budget from `first_ok` float layers on."""
    return lambda k: 0.5 if k >= first_ok else 3.0 - k * 0.01


@pytest.mark.parametrize("first_ok", [0, 1, 2, 3, 5, 8, 13, 20])
def test_fewest_layers_finds_the_smallest_k(first_ok):
    calls = []

    def drop_for(k):
        calls.append(k)
        return _drops(first_ok)(k)

    k, met, trials = fewest_layers(drop_for, lambda drop: drop <= 1.0, total=20)
    assert (k, met) == (first_ok, True)
    assert [t[0] for t in trials] == calls and len(set(calls)) == len(calls)  # no repeats
    assert len(calls) <= 2 + 2 * int(np.ceil(np.log2(20)))


def test_fewest_layers_reports_an_unmet_budget():
    within = lambda drop: drop <= 1.0  # noqa: E731
    k, met, trials = fewest_layers(lambda k: 5.0, within, total=6)
    assert (k, met) == (6, False) and [t[0] for t in trials] == [0, 1, 2, 4, 6]
    assert fewest_layers(lambda k: 5.0, within, total=0)[:2] == (0, False)


def test_all_leaves_int8_mixed_out_and_naming_it_plans_it():
    from edge_deeplab.converters import CONVERTERS, plan_conversions

    if not CONVERTERS.get("tflite").available()[0]:
        pytest.skip("the TFLite converter needs tensorflow")
    assert "int8-mixed" not in [p for _, p in plan_conversions("tflite", "all")]
    assert [p for _, p in plan_conversions("tflite", "int8-mixed")] == ["int8-mixed"]


def test_a_negative_budget_is_refused():
    from edge_deeplab.converters.api import ConvertOptions
    from edge_deeplab.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="max-miou-drop"):
        ConvertOptions(max_miou_drop=-1)


def _available(target: str):
    from edge_deeplab.converters import CONVERTERS

    ok, why = CONVERTERS.get(target).available()
    if not ok:
        pytest.skip(why)
    if target != "tflite":
        pytest.importorskip("nncf")


@pytest.mark.slow
def test_int8_mixed_holds_its_budgets_and_records_them(tiny_run, tmp_path):
    """On every engine that makes it here, in one call (the exports are shared), with a mean
    and a class budget."""
    from edge_deeplab.converters import CONVERTERS, convert
    from edge_deeplab.runtimes import load_runtime

    targets = [t for t in ("tflite", "openvino", "onnx") if CONVERTERS.get(t).available()[0]]
    if not targets or not deps_available("nncf") and targets != ["tflite"]:
        pytest.skip("needs the TFLite converter (tensorflow) and nncf for OpenVINO/ONNX")
    # 64 calibration images, as test_converters: with 16 the int8 parity sat on its 97% line
    results = convert(tiny_run, targets, "int8-mixed", tmp_path, calib_size=64, parity_images=8,
                      int8_agreement=TINY_INT8_AGREEMENT,
                      max_miou_drop=1.0, max_class_drop=2.0, val_data="synthetic", val_limit=12, progress=False)
    assert [r.target for r in results] == targets
    for result in results:
        assert result.status == "ok", f"{result.target}: {result.reason}"
        record = result.accuracy
        assert record["budget_met"] and record["miou_drop_points"] <= 1.0 and record["budget_points"] == 1.0
        # the class budget too (OpenVINO: through NNCF's one folded metric)
        assert record["class_budget_points"] == 2.0 and record["worst_class_drop_points"] <= 2.0
        with load_runtime(result.path) as runtime:  # the artifact carries what the search did
            assert runtime.metadata.precision == "int8-mixed"
            assert runtime.metadata.source["accuracy_control"] == record
            # OpenVINO puts its pixel preprocessing on the searched model; the others keep
            # the normalised float input their quantizers searched with.
            assert runtime.metadata.input_kind == ("pixels" if result.target == "openvino" else "normalized")


@pytest.mark.slow
def test_tflite_search_keeps_the_chosen_layers_in_float(tiny_run, tmp_path, monkeypatch):
    """Pretend accuracy returns once a layer is float: the search must keep exactly one."""
    _available("tflite")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    from edge_deeplab.converters import convert
    from edge_deeplab.converters.validation import Drop, Validation

    counts = []

    def fake_drop(self, segmenter):
        counts.append(_float_tensors(litert, segmenter.runtime.path.read_bytes()))
        return Drop(0.0 if counts[-1] > counts[0] else 2.0)

    monkeypatch.setattr(Validation, "drop", fake_drop)
    (result,) = convert(tiny_run, "tflite", "int8-mixed", tmp_path, calib_size=64, parity_images=4,
                        int8_agreement=TINY_INT8_AGREEMENT,
                        max_miou_drop=1.0, val_limit=4, progress=False)
    record = result.accuracy
    assert result.status == "ok" and len(record["float_layers"]) == 1 and record["quantized_layers"] > 20
    assert [t["float_layers"] for t in record["trials"]] == [0, 1] and record["trials"][0]["miou_drop_points"] == 2.0
    assert _float_tensors(litert, result.path.read_bytes()) > counts[0]


def _float_tensors(litert, content: bytes) -> int:
    interpreter = litert.Interpreter(model_content=content)
    return sum(1 for t in interpreter.get_tensor_details() if t["dtype"] == np.float32)


@pytest.mark.slow
def test_a_missed_budget_exits_non_zero_with_the_drop_reached(tiny_run, tmp_path):
    """The CLI, in-process, with the drop measured on the written artifact forced over the
    budget: the artifact is kept (the best found) and its report says what it reached."""
    _available("openvino")
    from edge_deeplab.cli.main import main
    from edge_deeplab.converters import validation

    original = validation.Validation.drop
    validation.Validation.drop = lambda self, segmenter: validation.Drop(3.25, 0.5, "sky")
    try:
        code = main(["convert", str(tiny_run), "--to", "openvino", "--precision", "int8-mixed", "--out",
                     str(tmp_path), "--calib-size", "32", "--parity-images", "4", "--val-limit", "4",
                     "--max-miou-drop", "1", "--quiet", "--json"])
    finally:
        validation.Validation.drop = original
    assert code != 0
    parity = json.loads((tmp_path / "model_int8-mixed.xml.parity.json").read_text())
    assert parity["status"] == "budget missed" and parity["accuracy"]["miou_drop_points"] == 3.25


def test_int8_mixed_without_validation_images_fails_before_any_work(tiny_run, tmp_path):
    _available("tflite")
    cfg = json.loads((tiny_run / "config.json").read_text())
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "metadata.json"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    cfg["data"]["format"] = "folder"  # not synthetic: no default validation images
    cfg["data"]["path"] = str(tmp_path)
    (run / "config.json").write_text(json.dumps(cfg))
    out = subprocess.run([sys.executable, "-m", "edge_deeplab.cli.main", "convert", str(run), "--to", "tflite",
                          "--precision", "int8-mixed", "--out", str(tmp_path / "out"), "--calib-data", "synthetic"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--val-data" in out.stderr
    assert not list((tmp_path / "out").glob("*.tflite"))


# -- the per-class budget (--max-class-drop) ------------------------------------------------

def test_the_class_budget_rejects_a_lost_class_the_mean_hides():
    """Hand numbers: float road 0.80 / pole 0.40 / sky 0.90 (mIoU 0.70); int8 road 0.81,
    pole 0.37, sky 0.90: mean 0.6933 (-0.67 points), pole -3 points."""
    from edge_deeplab.converters.validation import Drop, class_drop, holds, severity

    reference = {"road": 0.80, "pole": 0.40, "sky": 0.90, "absent": float("nan")}
    worst = class_drop(reference, {"road": 0.81, "pole": 0.37, "sky": 0.90, "absent": 0.0})
    assert worst.worst_class_name == "pole" and worst.worst_class == pytest.approx(3.0)
    drop = Drop(0.67, 3.0, "pole")
    assert holds(drop, 1.0, None) and holds(drop, 1.0, 3.0)  # the mean alone, or a loose class budget
    assert not holds(drop, 1.0, 2.0) and not holds(drop, 0.5, None)
    # NNCF's one scalar: -severity with max_drop 1 accepts exactly what `holds` accepts
    assert severity(drop, 1.0, None) == pytest.approx(0.67)
    assert severity(drop, 1.0, 2.0) == pytest.approx(1.5) and severity(drop, 1.0, 3.0) == pytest.approx(1.0)
    for budget, class_budget in [(1.0, None), (1.0, 2.0), (1.0, 3.0), (0.5, 5.0), (2.0, 2.9)]:
        assert (severity(drop, budget, class_budget) <= 1) == holds(drop, budget, class_budget)
    assert severity(Drop(0.0, 0.0, "sky"), 0.0, 0.0) <= 1 < severity(Drop(0.02), 0.0, 0.0)  # a 0 budget


def test_the_search_keeps_layers_in_float_until_every_class_holds():
    """The mean holds from 1 float layer on, the worst class only from 6: the search takes 6."""
    from edge_deeplab.converters.validation import Drop, holds

    def drop_for(k):
        return Drop(0.3 if k >= 1 else 2.0, 0.4 if k >= 6 else 4.0, "pole")

    assert fewest_layers(drop_for, lambda d: holds(d, 1.0, None), total=20)[:2] == (1, True)
    assert fewest_layers(drop_for, lambda d: holds(d, 1.0, 0.5), total=20)[:2] == (6, True)
    assert fewest_layers(drop_for, lambda d: holds(d, 1.0, 0.1), total=20)[:2] == (20, False)


def test_a_missed_class_budget_names_the_class():
    from edge_deeplab.converters.validation import Drop, Validation, describe, measured, missed

    validation = Validation([], None, budget=1.0, class_budget=2.0)
    record = measured({"float_layers": ["a"], "quantized_layers": 9}, validation, Drop(0.25, 3.5, "pole"))
    assert record["budget_met"] is False and record["class_budget_points"] == 2.0
    assert record["worst_class"] == "pole" and record["worst_class_drop_points"] == 3.5
    assert "'pole'" in missed(record) and "3.50" in missed(record) and "class budget 2" in missed(record)
    assert "worst class 'pole' 3.50 (budget 2)" in describe(record)
    fine = measured({"float_layers": [], "quantized_layers": 9}, validation, Drop(0.25, 1.5, "pole"))
    assert fine["budget_met"] and missed(fine) == ""
    from edge_deeplab.bench.render_md import mixed_lines  # report.md says which class it held to what

    (line, *_) = mixed_lines([{"format": "tflite", "precision": "int8-mixed", "mixed": record, "delta_miou": -0.25}])
    assert "budget 1 points, 2 a class (worst 'pole' 3.50) NOT met" in line


def test_a_negative_class_budget_is_one_line_and_exit_2(tmp_path):
    from edge_deeplab.bench.report import ReportOptions

    out = subprocess.run([sys.executable, "-m", "edge_deeplab.cli.main", "convert", str(tmp_path), "--to", "tflite",
                          "--precision", "int8-mixed", "--out", str(tmp_path / "out"), "--max-class-drop", "-1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "--max-class-drop must be 0..100" in out.stderr and "Traceback" not in out.stderr
    # the report's class gate reaches its int8-mixed conversions
    assert ReportOptions(max_class_drop=1.5, mixed_precision=True).conversion()["max_class_drop"] == 1.5
    assert ReportOptions().conversion()["max_class_drop"] is None


@pytest.mark.slow
def test_tflite_search_holds_a_tight_class_budget(tiny_run, tmp_path):
    """A real search with a mean budget nothing breaks (100 points) and a class budget the
    full int8 model breaks: the class budget alone must keep layers in float (or, if no
    number of float layers holds it, the artifact is "budget missed" naming the class).
    The tiny model's drops are not monotone in the float layers, so the search may run up to
    all 75 of them and bisect back."""
    _available("tflite")
    from edge_deeplab.converters import convert

    # 16 calibration images: each trial's debugger runs the model once per image, and looser
    # int8 ranges only make full int8 break the class budget more surely.
    (result,) = convert(tiny_run, "tflite", "int8-mixed", tmp_path, calib_size=16, parity_images=4,
                        int8_agreement=TINY_INT8_AGREEMENT, max_miou_drop=100.0, max_class_drop=CLASS_BUDGET,
                        val_data="synthetic", val_limit=16, progress=False)
    record = result.accuracy
    first = record["trials"][0]
    assert first["float_layers"] == 0, first
    if first["worst_class_drop_points"] <= CLASS_BUDGET:  # a CI run's tiny model: every class gained
        pytest.skip(f"this run's tiny model loses no class IoU in full int8 ({first}): nothing for a class "
                    "budget to hold")
    assert first["miou_drop_points"] <= 100.0  # the mean budget alone would have taken 0 float layers
    assert record["class_budget_points"] == CLASS_BUDGET and record["worst_class"]
    if result.status == "ok":
        assert record["budget_met"] and len(record["float_layers"]) > 0
        assert record["worst_class_drop_points"] <= CLASS_BUDGET
    else:
        assert result.status == "budget missed" and not record["budget_met"]
        assert f"class {record['worst_class']!r}" in result.reason


# IoU points: full int8 flips ~2% of the tiny model's pixels (some class always loses a little:
# 0.03-1 point measured), the float model none (every layer in float scored 0.00 here).
CLASS_BUDGET = 0.0

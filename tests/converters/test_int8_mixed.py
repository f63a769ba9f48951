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

    k, met, trials = fewest_layers(drop_for, 1.0, total=20)
    assert (k, met) == (first_ok, True)
    assert [t[0] for t in trials] == calls and len(set(calls)) == len(calls)  # no repeats
    assert len(calls) <= 2 + 2 * int(np.ceil(np.log2(20)))


def test_fewest_layers_reports_an_unmet_budget():
    k, met, trials = fewest_layers(lambda k: 5.0, 1.0, total=6)
    assert (k, met) == (6, False) and [t[0] for t in trials] == [0, 1, 2, 4, 6]
    assert fewest_layers(lambda k: 5.0, 1.0, total=0)[:2] == (0, False)


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
def test_int8_mixed_holds_its_budget_and_records_it(tiny_run, tmp_path):
    """On every engine that makes it here, in one call (the exports are shared)."""
    from edge_deeplab.converters import CONVERTERS, convert
    from edge_deeplab.runtimes import load_runtime

    targets = [t for t in ("tflite", "openvino", "onnx") if CONVERTERS.get(t).available()[0]]
    if not targets or not deps_available("nncf") and targets != ["tflite"]:
        pytest.skip("needs the TFLite converter (tensorflow) and nncf for OpenVINO/ONNX")
    # 64 calibration images, as test_converters: with 16 the int8 parity sat on its 97% line
    results = convert(tiny_run, targets, "int8-mixed", tmp_path, calib_size=64, parity_images=8,
                      int8_agreement=TINY_INT8_AGREEMENT,
                      max_miou_drop=1.0, val_data="synthetic", val_limit=12, progress=False)
    assert [r.target for r in results] == targets
    for result in results:
        assert result.status == "ok", f"{result.target}: {result.reason}"
        record = result.accuracy
        assert record["budget_met"] and record["miou_drop_points"] <= 1.0 and record["budget_points"] == 1.0
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
    from edge_deeplab.converters.validation import Validation

    counts = []

    def fake_drop(self, segmenter):
        counts.append(_float_tensors(litert, segmenter.runtime.path.read_bytes()))
        return 0.0 if counts[-1] > counts[0] else 2.0

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
    validation.Validation.drop = lambda self, segmenter: 3.25
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

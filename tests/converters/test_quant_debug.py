"""The quantization debugger: one finite SQNR per quantized layer, the damaged layer worst."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_deeplab.converters.quant_debug import CAP_DB, ranked, sqnr_db


def test_sqnr_is_the_signal_to_noise_ratio_in_db():
    signal = np.ones(1000)
    assert sqnr_db(signal, signal + 0.1) == pytest.approx(20.0)  # 1 / 0.01 in power
    assert sqnr_db(signal, signal) == CAP_DB  # exact: capped, still finite
    assert [r["layer"] for r in ranked({"a": 30.0, "b": 5.0, "c": float("nan")})] == ["b", "a"]


def _int8_artifact(run, folder, target: str, engine_module: str):
    """The tiny run converted to `target` int8 (skipped where the engine or converter is missing)."""
    pytest.importorskip(engine_module)
    from edge_deeplab.converters import CONVERTERS, convert

    ok, why = CONVERTERS.get(target).available()
    if not ok:
        pytest.skip(why)
    (result,) = convert(run, target, "int8", folder, calib_size=16, parity_images=4, progress=False)
    return result.path


@pytest.fixture(scope="module")
def onnx_int8(tiny_run, tmp_path_factory):
    return _int8_artifact(tiny_run, tmp_path_factory.mktemp("qdebug"), "onnx", "onnxruntime")


def _batches(path, n=3):
    from edge_deeplab.data import synthetic
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    images, _ = synthetic.generate(n, size=(64, 64), seed=7, num_classes=3)
    with load_runtime(path) as runtime:
        segmenter = Segmenter(runtime)
        return [segmenter.preprocess([image])[0] for image in images]


def _activation_quantizers(model):
    weights = {init.name for init in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in weights]


def test_onnx_debugger_gives_one_finite_sqnr_per_quantized_activation(onnx_int8):
    import onnx

    from edge_deeplab.converters.quant_debug import onnx_layer_sqnr

    sqnr = onnx_layer_sqnr(onnx_int8, _batches(onnx_int8))
    quantized = {n.input[0] for n in _activation_quantizers(onnx.load(str(onnx_int8)))}
    assert set(sqnr) <= quantized and len(sqnr) >= 0.9 * len(quantized)
    assert all(math.isfinite(v) for v in sqnr.values())


def test_onnx_debugger_ranks_a_damaged_layer_worst(onnx_int8, tmp_path):
    """Coarsen one mid-network activation's quantization step 40x: it must rank worst."""
    import onnx
    from onnx import numpy_helper

    from edge_deeplab.converters.quant_debug import onnx_layer_sqnr

    model = onnx.load(str(onnx_int8))
    before = onnx_layer_sqnr(onnx_int8, _batches(onnx_int8))
    candidates = [n for n in _activation_quantizers(model) if n.input[0] in before]
    victim = candidates[len(candidates) // 2]
    scales = {init.name: init for init in model.graph.initializer}
    scale = scales[victim.input[1]]  # shared by the QuantizeLinear and its DequantizeLinear
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 40, scale.name))
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    after = ranked(onnx_layer_sqnr(damaged, _batches(onnx_int8)))
    assert after[0]["layer"] == victim.input[0]
    assert after[0]["sqnr_db"] < before[victim.input[0]] - 10


@pytest.fixture(scope="module")
def openvino_int8(tiny_converted):
    """The session's OpenVINO int8 artifact (the debugger only reads it; the damage test saves a copy)."""
    pytest.importorskip("openvino")
    result = tiny_converted[0].get(("openvino", "int8"))
    if result is None or result.path is None:
        pytest.skip("no OpenVINO int8 artifact was made here")
    return result.path


def _fake_quantizers(model):
    from edge_deeplab.converters.quant_debug import _is_activation_quantizer

    return [op for op in model.get_ordered_ops() if _is_activation_quantizer(op)]


def test_openvino_debugger_gives_one_finite_sqnr_per_activation_fake_quantize(openvino_int8):
    import openvino as ov

    from edge_deeplab.converters.quant_debug import _source_name, openvino_layer_sqnr

    sqnr = openvino_layer_sqnr(openvino_int8, _batches(openvino_int8))
    quantizers = _fake_quantizers(ov.Core().read_model(str(openvino_int8)))
    assert len(quantizers) >= 10 and set(sqnr) == {_source_name(fq) for fq in quantizers}
    assert all(math.isfinite(v) for v in sqnr.values())
    assert 10 < np.median(list(sqnr.values())) < CAP_DB  # real int8 noise, not exact copies


def test_openvino_debugger_ranks_a_damaged_layer_worst(openvino_int8, tmp_path):
    """Coarsen one mid-network FakeQuantize's step 40x (its ranges widened around their middle)."""
    import openvino as ov

    from edge_deeplab.converters.quant_debug import _source_name, openvino_layer_sqnr

    before = openvino_layer_sqnr(openvino_int8, _batches(openvino_int8))
    model = ov.Core().read_model(str(openvino_int8))
    victim = _fake_quantizers(model)[len(before) // 2]
    low, high = (victim.input_value(i).get_node() for i in (3, 4))  # output_low, output_high
    for bounds in ((victim.input_value(1).get_node(), victim.input_value(2).get_node()), (low, high)):
        lo, hi = (np.asarray(b.get_data(), np.float32) for b in bounds)
        middle, half = (lo + hi) / 2, (hi - lo) / 2 * 40
        for node, value in zip(bounds, (middle - half, middle + half)):
            node.output(0).replace(ov.op.Constant(np.array(value, np.float32).reshape(lo.shape)).output(0))
    damaged = tmp_path / "damaged.xml"
    ov.save_model(model, str(damaged), compress_to_fp16=False)
    after = ranked(openvino_layer_sqnr(damaged, _batches(openvino_int8)))
    assert after[0]["layer"] == _source_name(victim)
    assert after[0]["sqnr_db"] < before[_source_name(victim)] - 10


def test_the_report_row_of_openvino_int8_carries_its_ranked_layers(openvino_int8, tiny_run):
    """What `report` stores per int8 row (`quant_debug`), through the converter registry."""
    from edge_deeplab.converters.quant_debug import layer_errors
    from edge_deeplab.data import synthetic
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    images, masks = synthetic.generate(4, size=(64, 64), seed=7, num_classes=3)

    class Variant:
        format = "openvino"

    with load_runtime(openvino_int8) as runtime:
        found = layer_errors(Variant(), openvino_int8, Segmenter(runtime), list(zip(images, masks)), tiny_run)
    assert found["method"].startswith("OpenVINO FakeQuantize"), found
    values = [layer["sqnr_db"] for layer in found["layers"]]
    assert len(values) >= 10 and values == sorted(values)

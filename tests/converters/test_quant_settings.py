"""How the calibrated precisions are quantized (calibration method, per-channel weights, bias
correction), and int8-mixed16: int8 with the fewest layers raised to 16-bit activations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT

from edge_deeplab.converters import CONVERTERS
from edge_deeplab.converters.quant_settings import QuantSettings, check_settings
from edge_deeplab.errors import InvalidInputError


def _plan(target: str, precision: str = "int8"):
    return [(CONVERTERS.get(target)(), precision)]


def test_a_method_a_target_does_not_offer_is_refused_naming_what_it_offers():
    with pytest.raises(InvalidInputError, match="tflite has no 'entropy' calibration; it offers: minmax"):
        check_settings(QuantSettings("entropy"), _plan("tflite"))
    with pytest.raises(InvalidInputError, match="tensorrt has no 'minmax'.*none to choose"):
        check_settings(QuantSettings("minmax"), _plan("tensorrt"))
    with pytest.raises(InvalidInputError, match="onnx has no bias correction"):
        check_settings(QuantSettings(bias_correction="none"), _plan("onnx"))
    check_settings(QuantSettings("entropy"), _plan("tflite", "fp32"))  # nothing calibrated: nothing to refuse
    check_settings(QuantSettings("mse", bias_correction="fast"), _plan("openvino"))
    with pytest.raises(InvalidInputError, match="unknown calibration method 'kl'"):
        QuantSettings("kl")


def test_the_convert_command_refuses_an_unoffered_method_in_one_line(tiny_run, tmp_path, capsys):
    from edge_deeplab.cli.main import main

    code = main(["convert", str(tiny_run), "--to", "tflite", "--precision", "int8", "--calib-method", "entropy",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "it offers: minmax" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_formats_lists_each_targets_methods_with_its_default_first(capsys):
    from edge_deeplab.cli.main import main

    assert main(["formats", "--json"]) == 0
    rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    for name, row in rows.items():
        cls = CONVERTERS.get(name)
        if cls.calib_methods:
            assert row["calib_methods"][0] == cls.default_calib_method
            assert sorted(row["calib_methods"]) == sorted(cls.calib_methods)
    assert rows["openvino"]["bias_correction"] and not rows["onnx"]["bias_correction"]
    assert "int8-mixed16" in rows["onnx"]["precisions"] and "int8-mixed16" in rows["tflite"]["notes"]


def _needs(target: str):
    ok, why = CONVERTERS.get(target).available()
    if not ok:
        pytest.skip(why)


@pytest.fixture(scope="module")
def tiny_job(tiny_run, tmp_path_factory):
    """One ConversionJob over the tiny run (its exports made once) and a quantizer per setting:
    `quantized(target, settings)` -> the int8 artifact's path (no parity check: the converter
    tests check parity; these check what reaches each library)."""
    from edge_deeplab.converters.job import ConversionJob, HeadPlacement, Progress
    from edge_deeplab.converters.savedmodel import load_source
    from edge_deeplab.data import synthetic

    source = load_source(tiny_run)
    pixels = synthetic.generate(16, size=source.metadata.input_size, seed=5, num_classes=3)[0]
    work = tmp_path_factory.mktemp("quant_settings")
    job = ConversionJob(source, work, lambda: pixels, Progress(False), "float32")

    def quantized(target: str, settings: QuantSettings) -> Path:
        job.quant = settings  # the job's intermediates are shared; only the settings change
        dest = work / f"{target}-{abs(hash(settings))}{CONVERTERS.get(target).suffix}"
        CONVERTERS.get(target)().convert(job, "int8", HeadPlacement("logits", "full"), dest)
        return dest

    return quantized


def _onnx_initializers(path) -> dict:
    import onnx
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer}


def _onnx_scales(path) -> tuple:
    """(sizes of the weight scales: one per output channel, or 1; the activation scales)."""
    import onnx

    initial = _onnx_initializers(path)
    nodes = onnx.load(str(path)).graph.node
    weights = [initial[n.input[1]].size for n in nodes
               if n.op_type == "DequantizeLinear" and n.input[0] in initial and initial[n.input[0]].ndim == 4]
    activations = [round(float(initial[n.input[1]]), 6) for n in nodes if n.op_type == "QuantizeLinear"]
    return weights, activations


@pytest.mark.slow
def test_onnx_settings_reach_the_quantizer(tiny_job, monkeypatch):
    """Per-tensor weights carry one scale per weight; entropy calibration (with more histogram
    bins than quantized ones) picks other activation ranges than min/max."""
    _needs("onnx")
    from edge_deeplab.converters import onnx as onnx_converter

    monkeypatch.setattr(onnx_converter, "ENTROPY_BINS", 512)  # its threshold search is Python: 4x fewer steps
    minmax, per_tensor, entropy = (_onnx_scales(tiny_job("onnx", settings)) for settings in
                                   (QuantSettings(), QuantSettings(per_channel=False), QuantSettings("entropy")))
    assert max(minmax[0]) > 1 and set(per_tensor[0]) == {1}  # per channel by default
    assert entropy[1] != minmax[1] and len(entropy[1]) == len(minmax[1])


@pytest.mark.slow
def test_openvino_settings_reach_nncf(tiny_job):
    """Per-tensor weights: one scale per weight tensor; the histogram's (mse) activation ranges
    differ from min/max's."""
    _needs("openvino")
    pytest.importorskip("nncf")
    import openvino as ov

    default, changed = (_openvino_ranges(ov.Core().read_model(str(tiny_job("openvino", settings))))
                        for settings in (QuantSettings(), QuantSettings("mse", per_channel=False)))
    assert max(default["weights"]) > 1 and set(changed["weights"]) == {1}
    assert default["activations"] != changed["activations"]


def _openvino_ranges(model) -> dict:
    """The sizes of the weights' scales and the activations' FakeQuantize input lows."""
    weights, activations = [], []
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind == "FakeQuantize":
            low = node.input_value(1).get_node()
            if low.get_type_name() == "Constant":
                activations.append(round(float(low.get_data().ravel()[0]), 5))
        elif kind == "Multiply" and node.input_value(0).get_node().get_type_name() == "Convert":
            scale = node.input_value(1).get_node()  # a decompressed int8 weight: Convert * scale
            if scale.get_type_name() == "Constant":
                weights.append(scale.get_data().size)
    return {"weights": weights, "activations": activations}


@pytest.mark.slow
def test_int8_mixed16_raises_the_chosen_layers_to_16_bits(tiny_run, tmp_path, monkeypatch):
    """Pretend accuracy returns once a layer is in 16 bits: the search keeps one, and the
    artifact has 16-bit Q/DQ on its activation and its weights, and 8-bit on the rest."""
    _needs("onnx")
    import onnx
    from onnx import numpy_helper

    from edge_deeplab.converters import convert
    from edge_deeplab.converters.validation import Drop, Validation

    def sixteen_bit_tensors(path) -> int:
        model = onnx.load(str(path))
        zero_points = {init.name: numpy_helper.to_array(init).dtype for init in model.graph.initializer}
        return sum(1 for node in model.graph.node if node.op_type == "QuantizeLinear"
                   and len(node.input) > 2 and zero_points.get(node.input[2]) == np.uint16)

    counts = []

    def fake_drop(self, segmenter):
        counts.append(sixteen_bit_tensors(segmenter.runtime.path))
        return Drop(0.0 if counts[-1] > 0 else 2.0)

    monkeypatch.setattr(Validation, "drop", fake_drop)
    (result,) = convert(tiny_run, "onnx", "int8-mixed16", tmp_path, calib_size=16, parity_images=4,
                        int8_agreement=TINY_INT8_AGREEMENT, max_miou_drop=1.0, val_limit=4, progress=False)
    record = result.accuracy
    assert result.status == "ok", result.reason
    assert record["lifted_to"] == "16-bit" and len(record["float_layers"]) == 1
    assert [t["float_layers"] for t in record["trials"]] == [0, 1] and counts[0] == 0
    sixteen = sixteen_bit_tensors(result.path)
    eight = sum(1 for node in onnx.load(str(result.path)).graph.node if node.op_type == "QuantizeLinear") - sixteen
    assert 1 <= sixteen <= 3 and eight > 20  # one tensor (and its consumers' boundary), the rest int8
    initializers = onnx.load(str(result.path)).graph.initializer
    # the layer's convolution weights in 16 bits (none where the lifted tensor is not a convolution's;
    # their per-channel zero points are 16-bit too, 1-D)
    weights = [init for init in initializers if init.data_type == onnx.TensorProto.INT16 and len(init.dims) == 4]
    assert len(weights) <= 1

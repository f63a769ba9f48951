"""int16x8 (16-bit activations, 8-bit weights): TFLite's 16x8 mode and ONNX QDQ with U16
activations convert the tiny model, hold parity and `verify`, really compute in 16 bits,
agree with Keras at least as well as int8 on the same images, and are named in `formats`
where the engine has them (not OpenVINO: NNCF's CPU quantization has no 16-bit mode)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_deeplab.converters import CONVERTERS, TOLERANCES

ENGINES = ("tflite", "onnx")


def test_formats_names_int16x8_where_the_engine_has_it(capsys):
    from edge_deeplab.cli.main import main

    assert main(["formats", "--json"]) == 0
    rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    for target in ENGINES:
        assert "int16x8" in rows[target]["precisions"], rows[target]
        assert rows[target]["notes"]["int16x8"]  # where its kernels are slow
    assert "reference kernels" in rows["tflite"]["notes"]["int16x8"]
    assert "int16x8" not in rows["openvino"]["precisions"]
    assert "no 16-bit activation mode" in rows["openvino"]["notes"]["int16x8"]
    assert main(["formats"]) == 0
    text = capsys.readouterr().out
    assert "int16x8" in text.splitlines()[0] and "openvino int16x8: not made" in text


def test_int16x8_bar_is_tighter_than_int8s():
    assert TOLERANCES["int16x8"]["agreement"] > TOLERANCES["int8"]["agreement"]


@pytest.fixture(scope="module")
def made(tiny_converted, tiny_run, tmp_path_factory):
    """{(target, precision): ConversionResult}: the session's conversion (int8, fp32) and
    int16x8 of both engines, made here with the same calibration and parity images ("all"
    leaves int16x8 out: slow kernels)."""
    pytest.importorskip("tensorflow")
    from conftest import TINY_INT8_AGREEMENT

    from edge_deeplab.converters import convert

    for target in ENGINES:
        ok, why = CONVERTERS.get(target).available()
        if not ok:
            pytest.skip(f"{target}: {why}")
    results, _ = tiny_converted
    out = tmp_path_factory.mktemp("int16x8")
    made = convert(tiny_run, list(ENGINES), "int16x8", out, calib_size=64, parity_images=16, progress=False,
                   int8_agreement=TINY_INT8_AGREEMENT)  # the session's settings (conftest.tiny_converted)
    return {**results, **{(r.target, r.precision): r for r in made}}


@pytest.mark.slow
@pytest.mark.parametrize("target", ENGINES)
def test_int16x8_converts_passes_parity_and_verify(made, target, capsys):
    from edge_deeplab.cli.main import main
    from edge_deeplab.runtimes import load_runtime

    result = made[target, "int16x8"]
    assert result.status == "ok", f"{result.status}: {result.reason} {result.parity}"
    bar = TOLERANCES["int16x8"]["agreement"]
    assert result.parity["tolerance"] == bar and result.parity["agreement"] >= bar
    with load_runtime(result.path) as runtime:
        assert runtime.metadata.precision == "int16x8"
        assert runtime.input_spec.dtype == np.float32  # float in: int16 inputs are symmetric, not pixels
    assert main(["verify", str(result.path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ok: agreement")


@pytest.mark.slow
def test_tflite_int16x8_computes_in_int16(made):
    """The 16x8 setting was applied (litert-torch#627: silently ignored there): the
    interpreter's tensors are int16 activations and int8 weights, and a float model is
    refused by the converter's own check."""
    from edge_deeplab.converters.tflite import check_int16_activations, int16_activation_tensors
    from edge_deeplab.errors import ConversionError
    from edge_deeplab.runtimes.tflite_runtime import interpreter_module

    path = made["tflite", "int16x8"].path
    details = interpreter_module().Interpreter(model_path=str(path)).get_tensor_details()
    dtypes = [np.dtype(t["dtype"]) for t in details]
    int16, int8, floats = (dtypes.count(np.dtype(d)) for d in ("int16", "int8", "float32"))
    print(f"\nTFLite int16x8 tensors: {int16} int16, {int8} int8, {floats} float32")
    assert int16 >= 20 and int8 >= 20 and floats <= 4  # float32: the model's input and its QUANTIZE
    assert int16_activation_tensors(path.read_bytes()) == int16
    with pytest.raises(ConversionError, match="no int16 tensor"):
        check_int16_activations(made["tflite", "fp32"].path.read_bytes())


@pytest.mark.slow
def test_onnx_int16x8_quantizes_activations_to_16_bits(made):
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(made["onnx", "int16x8"].path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 21
    constants = {t.name: t for t in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    zero_points = [constants[n.input[2]].data_type for n in quantize if len(n.input) > 2 and n.input[2] in constants]
    print(f"\nONNX int16x8: {len(quantize)} QuantizeLinear, zero point types {sorted(set(zero_points))}")
    assert len(quantize) >= 20 and len(zero_points) == len(quantize)
    assert set(zero_points) == {TensorProto.UINT16}
    weights = [constants[n.input[0]] for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in constants and len(constants[n.input[0]].dims) == 4]
    assert weights and {w.data_type for w in weights} == {TensorProto.INT8}


@pytest.mark.slow
@pytest.mark.parametrize("target", ENGINES)
def test_int16x8_agrees_at_least_as_well_as_int8(made, target):
    from edge_deeplab.runtimes import load_runtime

    int8, int16 = made[target, "int8"], made[target, "int16x8"]
    thumbnails = []
    for result in (int8, int16):
        with load_runtime(result.path) as runtime:
            thumbnails.append([item["image"] for item in runtime.metadata.selftest["inputs"]])
    # The same parity images: their first ones are the self-test's inputs, stored in each artifact.
    assert thumbnails[0] == thumbnails[1] and int8.parity["images"] == int16.parity["images"]
    print(f"\n{target}: agreement with Keras int8 {int8.parity['agreement']:.4%}, "
          f"int16x8 {int16.parity['agreement']:.4%}")
    assert int16.parity["agreement"] >= int8.parity["agreement"]


def test_all_leaves_int16x8_out_and_naming_it_makes_it():
    """"all" (convert and the report's default) skips int16x8, whose kernels are slow here;
    named, it is made and reported."""
    from edge_deeplab.bench.report import ReportOptions, _chosen_variants
    from edge_deeplab.converters import plan_conversions

    for target in ENGINES:
        if not CONVERTERS.get(target).available()[0]:
            pytest.skip(f"{target} not available here")
    assert "int16x8" not in {p for _, p in plan_conversions(list(ENGINES), "all")}
    assert {(c.name, p) for c, p in plan_conversions(list(ENGINES), "int16x8")} == {
        ("tflite", "int16x8"), ("onnx", "int16x8")}
    assert "int16x8" not in {v.precision for v in _chosen_variants(ReportOptions())}
    named = _chosen_variants(ReportOptions(variants="tflite:int16x8,onnx:int16x8"))
    assert [v.key for v in named[1:]] == ["tflite:int16x8", "onnx:int16x8"]

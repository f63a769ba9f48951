"""Converters: every CPU target x precision converts the tiny model, loads in its own engine,
passes the parity tolerance table and carries its metadata; bad input gives clear errors
and leaves nothing behind.

The conversions are made once per module (about ten at 64x64) and shared by the tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT

from edge_deeplab.converters import CONVERTERS, TOLERANCES, convert, plan_conversions
from edge_deeplab.converters.base import ON_REQUEST
from edge_deeplab.errors import (
    ConversionError,
    EdgeDeeplabError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    ParityError,
)
from edge_deeplab.status import Status

# int8-mixed and int16x8 (not made by "all") have their own tests: tests/converters/test_int8_mixed.py,
# tests/converters/test_int16x8.py
PAIRS = [(name, p) for name, cls in CONVERTERS.items() for p in cls.precisions if p not in ON_REQUEST]


def _pair_param(name, precision):
    marks = [pytest.mark.gpu] if name == "tensorrt" else []
    return pytest.param(name, precision, marks=marks, id=f"{name}-{precision}")


@pytest.fixture(scope="module")
def converted(tiny_converted):
    """({(target, precision): ConversionResult}, folder) for every target available here
    (conftest's session conversion, shared with test_runtimes and test_host_path)."""
    return tiny_converted


@pytest.mark.slow
@pytest.mark.parametrize("name,precision", [_pair_param(*pair) for pair in PAIRS])
def test_converts_loads_and_passes_parity(converted, name, precision):
    ok, why = CONVERTERS.get(name).available()
    if not ok:
        pytest.skip(f"{name}: {why}")
    from edge_deeplab.runtimes import load_runtime

    results, out = converted
    result = results[(name, precision)]
    assert result.status == "ok", f"{result.status}: {result.reason} {result.parity}"
    assert result.path == out / f"model_{precision}{CONVERTERS.get(name).suffix}"
    bar = TINY_INT8_AGREEMENT if precision.startswith("int8") else TOLERANCES[precision]["agreement"]
    assert result.parity["agreement"] >= bar and result.parity["tolerance"] == bar
    assert result.parity["images"] == 16
    if precision in ("fp32", "fp16") and result.head == "logits":
        assert result.parity["max_abs_diff"] < 0.1
    with load_runtime(result.path) as runtime:  # its own engine, picked by suffix
        assert runtime.name == CONVERTERS.get(name).runtime
        meta = runtime.metadata
    assert meta is not None, "metadata not embedded"
    assert (meta.format, meta.precision, meta.input_size) == (name, precision, (64, 64))
    assert (meta.head, meta.output_resolution) == (result.head, result.resolution)
    assert meta.labels == ("background", "disk", "box")
    assert meta.parity["agreement"] == pytest.approx(result.parity["agreement"])
    report = json.loads(Path(str(result.path) + ".parity.json").read_text())
    assert report["parity"]["agreement"] == pytest.approx(result.parity["agreement"])


@pytest.mark.slow
def test_each_artifact_gets_its_targets_default_placement(converted):
    """The fastest placement (the in-graph argmax), except where a precision's measured-best
    differs (OpenVINO int8: logits at the feature resolution, upsampled on the host)."""
    results, _ = converted
    for (name, precision), result in results.items():
        if result.status != "ok":
            continue
        cls = CONVERTERS.get(name)
        expected = cls.default_placements.get(precision, (cls.default_head, cls.default_resolution))
        assert (result.head, result.resolution) == expected, (name, precision)
    if ("openvino", "int8") in results and results[("openvino", "int8")].status == "ok":
        assert (results[("openvino", "int8")].head, results[("openvino", "int8")].resolution) == ("logits", "feature")
        assert (results[("openvino", "fp32")].head, results[("openvino", "fp32")].resolution) == ("argmax", "full")


@pytest.mark.slow
def test_output_folder_holds_only_finished_artifacts(converted):
    results, out = converted
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".")], names  # no temporary leftovers
    expected = set()
    for (name, _precision), result in results.items():
        if result.path is None:  # "not available" here
            continue
        cls = CONVERTERS.get(name)
        expected |= {p.name for p in cls().files(result.path)} | {result.path.name + ".parity.json"}
    assert set(names) == expected


@pytest.mark.slow
def test_metadata_readers_need_no_engine_session(converted):
    from edge_deeplab.runtimes import RUNTIMES

    results, _ = converted
    # Each target's reader is its runtime's class method: no engine session is opened.
    readers = {name: RUNTIMES.get(cls.runtime).read_metadata for name, cls in CONVERTERS.items()}
    for (name, precision), result in results.items():
        if result.path is None:
            continue
        meta = readers[name](result.path)
        assert (meta.format, meta.precision) == (name, precision)
        assert meta.mean == (127.5, 127.5, 127.5) and meta.palette


@pytest.mark.slow
def test_tflite_metadata_roundtrip_replaces_previous(tmp_path, tiny_converted):
    from ai_edge_litert import schema_py_generated as schema

    from edge_deeplab.runtimes import RUNTIMES, load_runtime, tflite_metadata

    results, _ = tiny_converted
    path = tmp_path / "m.tflite"
    shutil.copy(results["tflite", "fp32"].path, path)
    embed_tflite_metadata = CONVERTERS.get("tflite")().embed_metadata
    first = RUNTIMES.get("tflite").read_metadata(path)
    embed_tflite_metadata(path, first)
    embed_tflite_metadata(path, first.replace(precision="int8", parity={"agreement": 0.99}))
    meta = RUNTIMES.get("tflite").read_metadata(path)
    assert meta.precision == "int8" and meta.parity == {"agreement": 0.99}
    assert meta.labels == first.labels and meta.selftest == first.selftest
    content = path.read_bytes()
    assert content.count(b"PK\x03\x04") == 2  # one archive: edge_deeplab.json + labels.txt
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_metadata.strip_appended_zip(content)), 0)
    names = [m.name.decode() for m in model.metadata]
    assert names.count(tflite_metadata.TFLITE_METADATA) == 1
    with load_runtime(path) as runtime:  # the interpreter still loads and runs it
        assert runtime.run(np.zeros(runtime.input_spec.shape, runtime.input_spec.dtype)).shape[:3] == (1, 64, 64)


def test_tflite_metadata_refuses_a_file_that_is_not_a_flatbuffer(tmp_path):
    from edge_deeplab.metadata import ArtifactMetadata

    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    with pytest.raises(ConversionError, match="not a TFLite flatbuffer"):
        CONVERTERS.get("tflite")().embed_metadata(path, ArtifactMetadata(labels=("a", "b"), input_size=(32, 48)))


@pytest.mark.slow
def test_size_head_and_resolution_through_the_cli(tiny_run, tmp_path, capsys):
    from edge_deeplab.cli.main import main
    from edge_deeplab.runtimes import load_runtime

    out = tmp_path / "out"
    code = main(
        [
            "convert",
            str(tiny_run),
            "--to",
            "tflite",
            "--precision",
            "fp32",
            "--size",
            "96x80",
            "--head",
            "argmax",
            "--out",
            str(out),
            "--calib-size",
            "8",
            "--parity-images",
            "8",
            "--quiet",
        ]
    )
    assert code == 0
    assert "model_fp32.tflite" in capsys.readouterr().out
    with load_runtime(out / "model_fp32.tflite") as runtime:
        assert runtime.input_spec.shape == (1, 96, 80, 3)
        # int64: MediaPipe refuses an int64 class map, where it misreads a uint8 one (tflite_metadata)
        assert runtime.output_spec.shape == (1, 96, 80) and runtime.output_spec.dtype == np.int64
        assert (runtime.metadata.head, runtime.metadata.input_size) == ("argmax", (96, 80))
        assert runtime.metadata.parity["agreement"] >= TOLERANCES["fp32"]["agreement"]

    results = convert(
        tiny_run,
        "onnx",
        "fp32",
        tmp_path / "feature",
        resolution="feature",
        calib_size=8,
        parity_images=8,
        progress=False,
    )
    with load_runtime(results[0].path) as runtime:
        assert runtime.output_spec.shape[1:] == (4, 4, 3)  # 64 / output stride 16
        assert runtime.metadata.output_resolution == "feature"
    assert results[0].parity["agreement"] >= TOLERANCES["fp32"]["agreement"]
    assert results[0].parity["max_abs_diff"] < 1e-3  # fp32 logits: rounding only


@pytest.mark.slow
def test_tflite_int8_with_uint8_io(tiny_run, tmp_path):
    from edge_deeplab.runtimes import load_runtime

    result = convert(
        tiny_run,
        "tflite",
        "int8",
        tmp_path,
        head="logits",
        io_dtype="uint8",
        # As many calibration images as the main int8 test: with 16 the activation ranges of
        # the tiny model were loose enough to drop agreement to 96.6 % in one CI run.
        calib_size=64,
        parity_images=16,
        progress=False,
    )[0]
    assert result.status == "ok", result.reason
    with load_runtime(result.path) as runtime:
        assert runtime.input_spec.dtype == np.uint8 and runtime.input_spec.quantized
        assert runtime.output_spec.dtype == np.uint8 and runtime.output_spec.quantized
        assert runtime.metadata.source["io_dtype"] == "uint8"


@pytest.mark.slow
def test_strict_parity_failure_writes_nothing(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "fp32", {"agreement": 1.01})  # unreachable
    with pytest.raises(ParityError, match="tflite fp32"):
        convert(
            tiny_run,
            "tflite",
            "fp32",
            tmp_path,
            strict=True,
            calib_size=4,
            parity_images=4,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    from edge_deeplab.converters.tflite import TFLiteConverter

    def broken(self, job, precision, variant, dest):
        dest.write_bytes(b"half a model")
        raise ConversionError("converter crashed half-way")

    monkeypatch.setattr(TFLiteConverter, "convert", broken)
    results = convert(
        tiny_run, "tflite", "fp32", tmp_path, calib_size=2, parity_images=2, progress=False
    )
    assert results[0].status == "conversion failed" and "half-way" in results[0].reason
    assert list(tmp_path.iterdir()) == []


def test_formats_lists_every_target(capsys):
    from edge_deeplab.cli.main import main

    assert main(["formats"]) == 0
    text = capsys.readouterr().out
    for name, cls in CONVERTERS.items():
        assert name in text and cls.suffix in text
    assert main(["formats", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["target"] for r in rows} == set(CONVERTERS.names())
    assert all(isinstance(r["available"], bool) for r in rows)


# --- bad input -----------------------------------------------------------------------------


def test_unsupported_precision_is_refused_before_any_work(tmp_path):
    with pytest.raises(InvalidInputError, match="onnx precisions: fp32, int8"):
        plan_conversions("onnx", "fp16")
    from edge_deeplab.cli.main import main

    out = tmp_path / "never"
    assert (
        main(
            ["convert", str(tmp_path), "--to", "onnx", "--precision", "dynamic", "--out", str(out)]
        )
        == 2
    )
    assert not out.exists()
    with pytest.raises(InvalidInputError, match="valid converters"):
        plan_conversions("coreml", "fp32")
    with pytest.raises(InvalidInputError, match="valid precisions"):
        plan_conversions("tflite", "int4")


def test_all_skips_unsupported_combinations():
    from edge_deeplab.converters.api import unavailable_results

    plan = [(c.name, p) for c, p in plan_conversions("all", "fp16")]
    assert ("tflite", "fp16") in plan and ("onnx", "fp16") not in plan
    skipped = {(r.target, r.precision): r for r in unavailable_results("all", "fp16")}
    for name, cls in CONVERTERS.items():
        ok, why = cls.available()
        assert ((name, "fp16") in skipped) == (not ok and "fp16" in cls.precisions)
        assert ((name, "fp16") in plan) == (ok and "fp16" in cls.precisions)
    assert all(r.status == "not available" and r.reason for r in skipped.values())


def test_tensorrt_without_gpu_says_what_it_needs():
    cls = CONVERTERS.get("tensorrt")
    if cls.available()[0]:
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(EdgeDeeplabError, match="needs TensorRT and an NVIDIA GPU"):
        plan_conversions("tensorrt", "fp16")


def test_missing_package_names_the_extra(monkeypatch):
    from edge_deeplab import deps

    real = deps.available
    monkeypatch.setattr(deps, "available", lambda module: module != "nncf" and real(module))
    with pytest.raises(MissingDependencyError, match=r"edge-deeplab\[openvino\]"):
        plan_conversions("openvino", "int8")


def test_not_a_model(tmp_path):
    fake = tmp_path / "model.keras"
    fake.write_text("not a zip")
    with pytest.raises(ModelLoadError, match="model.keras"):
        convert(fake, "tflite", "fp32", tmp_path / "out", progress=False)
    with pytest.raises(InvalidInputError, match="no such model"):
        convert(tmp_path / "missing", "tflite", "fp32", tmp_path / "out", progress=False)
    other = tmp_path / "x.onnx"
    other.write_text("x")
    with pytest.raises(InvalidInputError, match="not a Keras model"):
        convert(other, "tflite", "fp32", tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_keras_file_with_unknown_layer(tmp_path):
    keras = pytest.importorskip("keras")

    @keras.saving.register_keras_serializable(package="edge_deeplab_test")
    class Mystery(keras.layers.Layer):
        def call(self, x):
            return x

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(Mystery()(inputs)))
    path = tmp_path / "model.keras"
    model.save(path)
    keras.saving.get_custom_objects().pop("edge_deeplab_test>Mystery")
    with pytest.raises(ModelLoadError, match="unknown layer"):
        convert(path, "tflite", "fp32", tmp_path / "out", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_calibration_data(tiny_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no images"):
        convert(tiny_run, "tflite", "int8", tmp_path / "out", calib_data=empty, progress=False)
    with pytest.raises(InvalidInputError, match=r"expected uint8 RGB pixels"):
        convert(
            tiny_run,
            "tflite",
            "int8",
            tmp_path / "out",
            calib_data=np.zeros((4, 64, 64), np.uint8),
            progress=False,
        )
    with pytest.raises(InvalidInputError, match="no such folder"):
        convert(
            tiny_run,
            "tflite",
            "int8",
            tmp_path / "out",
            calib_data=tmp_path / "nope",
            progress=False,
        )
    with pytest.raises(InvalidInputError, match="--calib-size"):
        convert(tiny_run, "tflite", "int8", tmp_path / "out", calib_size=0, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_unwritable_output_folder(tiny_run, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InvalidInputError, match="--out"):
        convert(tiny_run, "tflite", "fp32", blocker / "out", progress=False)
    with pytest.raises(InvalidInputError, match="not a folder"):
        convert(tiny_run, "tflite", "fp32", blocker, progress=False)


def test_calibration_source_required_for_real_data_models(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["data"] = {**config.get("data", {}), "format": "folder", "path": "/data"}
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match="--calib-data"):
        convert(run, "tflite", "fp32", tmp_path / "out", progress=False)


def test_tensorrt_engine_cache_key_covers_what_an_engine_depends_on():
    from edge_deeplab.converters.tensorrt import engine_key

    base = (b"model", "10.3.0", "Orin", "int8", (1, 64, 64, 3), "calib-digest", "weak")
    key = engine_key(*base)
    assert key == engine_key(*base) and key.isalnum()
    others = [b"model2", "10.4.0", "RTX 4090", "fp16", (1, 96, 96, 3), "other-calib", "strong"]
    for index, other in enumerate(others):
        changed = list(base)
        changed[index] = other
        assert engine_key(*changed) != key, f"key ignores argument {index}"


def test_openvino_argmax_runs_planar_with_the_same_class_map():
    """The converter's TopK rewrite: (N, C, H*W) in, the class map unchanged."""
    ov = pytest.importorskip("openvino")
    import openvino.opset13 as ops

    from edge_deeplab.converters.openvino import _planar_argmax

    def head():
        logits = ops.parameter([1, 5, 17, 23], np.float32)
        up = ops.interpolate(logits, ops.constant(np.array([65, 91], np.int64)), mode="linear_onnx",
                             shape_calculation_mode="sizes", axes=ops.constant(np.array([2, 3], np.int64)))
        top = ops.topk(up, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type="i32")
        return ov.Model([ops.convert(top.output(1), "u8")], [logits])

    before, after = head(), head()
    assert _planar_argmax(after) == 1
    topk = next(op for op in after.get_ordered_ops() if op.get_type_name() == "TopK")
    assert list(topk.input(0).get_shape()) == [1, 5, 65 * 91]
    x = np.random.default_rng(0).normal(size=(1, 5, 17, 23)).astype(np.float32)
    core = ov.Core()
    maps = [core.compile_model(m, "CPU")({0: x})[0] for m in (before, after)]
    assert maps[1].shape == (1, 1, 65, 91)
    np.testing.assert_array_equal(maps[0], maps[1])


@pytest.mark.parametrize("value", [0.0, 1.5, float("nan")])
def test_int8_agreement_outside_zero_one_is_refused(value):
    from edge_deeplab.converters.api import ConvertOptions

    with pytest.raises(InvalidInputError, match="--int8-agreement must be in"):
        ConvertOptions(int8_agreement=value)


def test_keras_reference_runs_one_image_at_a_time(tiny_run):
    """Keras 3 holds every intermediate tensor of an eager call: a 32-image parity batch at
    360x480 took a conversion to 16.3 GB. The reference feeds one image per call, and
    gives the whole batch's answer."""
    keras = pytest.importorskip("keras")
    from edge_deeplab.runtimes.keras_runtime import KerasRuntime

    model = keras.models.load_model(tiny_run / "model.keras", compile=False)
    seen = []

    def spy(batch, training=False):
        seen.append(int(batch.shape[0]))
        return model(batch, training=training)

    batch = np.random.default_rng(3).normal(size=(5, *model.input_shape[1:])).astype(np.float32)
    reference = KerasRuntime.from_model(model, head="argmax", per_image=True)  # as job.KerasReferences makes it
    whole = np.argmax(np.asarray(model(batch, training=False)), axis=-1)
    reference.model = spy
    labels = reference.run(batch)
    assert seen == [1] * 5
    assert labels.shape == whole.shape and (labels == whole).mean() > 0.999


@pytest.mark.slow
def test_openvino_int8_keeps_convolution_weights_in_seven_bits(converted):
    """CPUs without VNNI saturate u8 x s8 pairs summed in int16: the IR's dense convolution
    weights use half the int8 range wherever it runs (depthwise kernels do not overflow and
    keep the whole range)."""
    ov = pytest.importorskip("openvino")
    results, _ = converted
    result = results[("openvino", "int8")]
    if result.path is None:
        pytest.skip(f"openvino: {result.reason}")
    weights = [op.get_data() for op in ov.Core().read_model(str(result.path)).get_ops()
               if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    dense = [w for w in weights if w.ndim == 4]
    assert dense and all(np.abs(w.astype(np.int16)).max() <= 64 for w in dense)
    assert any(np.abs(w.astype(np.int16)).max() > 64 for w in weights if w.ndim == 5)


def test_check_opens_an_int8_mixed_artifact_once_and_returns_a_frozen_record(tmp_path, monkeypatch):
    """parity, self-test and the budget's mIoU drop come from ONE engine load; what the
    check measured comes back as a frozen record carrying the artifact's metadata."""
    import dataclasses
    from types import SimpleNamespace

    import edge_deeplab.runtimes as runtimes
    import edge_deeplab.segmenter as segmenter_module
    from edge_deeplab.converters.pipeline import Built, check
    from edge_deeplab.converters.validation import Drop, Validation
    from edge_deeplab.metadata import ArtifactMetadata

    opened = []

    class Engine:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(runtimes, "load_runtime", lambda path, **kw: opened.append(path) or Engine())
    monkeypatch.setattr(segmenter_module, "Segmenter", lambda runtime: ("segmenter of", runtime))
    scored = []
    checker = SimpleNamespace(
        check=lambda seg, precision: scored.append(("parity", seg)) or {"agreement": 0.99, "tolerance": 0.97,
                                                                        "passed": True},
        selftest=lambda seg, bar: scored.append(("selftest", seg)) or {"inputs": [{}], "bar": bar})
    validation = Validation([], None, budget=1.0)
    validation.drop = lambda seg: scored.append(("drop", seg)) or Drop(0.25, 0.5, "a")
    job = SimpleNamespace(validation=validation, progress=lambda message: None)
    converter = SimpleNamespace(runtime="tflite", measure_parity=lambda *args: None)
    meta = ArtifactMetadata(labels=("a", "b"), input_size=(8, 8), precision="int8-mixed")
    search = {"method": "fake", "float_layers": ["conv"], "quantized_layers": 3}

    checked = check(job, checker, converter, Built(tmp_path / "m.tflite", 1.0, search), meta)

    assert opened == [tmp_path / "m.tflite"]
    assert [what for what, _ in scored] == ["drop", "parity", "selftest"] and len({id(s) for _, s in scored}) == 1
    assert checked.accuracy == {**search, "budget_points": 1.0, "miou_drop_points": 0.25, "budget_met": True,
                                "class_budget_points": None, "worst_class_drop_points": 0.5, "worst_class": "a"}
    assert checked.metadata.source["accuracy_control"] == checked.accuracy
    assert checked.metadata.parity == checked.parity and checked.metadata.selftest["bar"] == 0.97
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.parity = {}


def test_a_conversion_result_is_made_once():
    import dataclasses

    from edge_deeplab.converters import ConversionResult

    result = ConversionResult("tflite", "int8", status="parity failed")
    assert result.status == Status.PARITY_FAILED
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = Status.OK
    with pytest.raises(ValueError):
        ConversionResult("tflite", "int8", status="fine")

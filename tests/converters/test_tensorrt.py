"""The TensorRT converter and runtime on fake TensorRT 10 / 11 and CUDA modules (no GPU here).

The fakes (`fake_tensorrt.py`) hold the real bindings' contracts, and their "engine" is the
ONNX TensorRT was handed, run by onnxruntime: so these tests drive both build paths end to
end through `convert()` and its parity check, and what TensorRT 11 is given (the Q/DQ and
fp16 ONNX) is measured against the Keras model on the CPU.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

import fake_tensorrt  # noqa: E402  (tests/ is on sys.path: rootdir conftest)
from conftest import TINY_INT8_AGREEMENT  # noqa: E402

CALIB = 64  # as the shared tiny conversions: fewer leave the tiny model's int8 ranges loose
# The barely trained tiny model has near-tied logits (about 1% of pixels within 0.03 of the
# runner-up), which any int8 rounding may flip: its overall int8 agreement spreads 96-99% by
# training run, for our shipping asymmetric ONNX int8 as for this symmetric Q/DQ graph. Where
# the float model is decided (top-2 margin above this), the int8 graph must agree >= 99%.
DECIDED_MARGIN = 0.25


def _convert(monkeypatch, tmp_path, run, version, precisions, targets="tensorrt", **options):
    """(results by (target, precision), fake trt, fake cuda) of one convert() on fake TensorRT."""
    from edge_deeplab.converters import convert

    trt, cuda = fake_tensorrt.install(monkeypatch, version, builder_starts=options.pop("builder_starts", True))
    monkeypatch.setattr("edge_deeplab.converters.tensorrt.gpu_name", lambda: "Fake GPU")
    monkeypatch.setenv("EDGE_DEEPLAB_CACHE", str(tmp_path / "cache"))
    options = {"calib_size": CALIB, "parity_images": 16, "progress": False,
               "int8_agreement": TINY_INT8_AGREEMENT, **options}
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    results = convert(run, targets, precisions, out, **options)
    return {(r.target, r.precision): r for r in results}, trt, cuda


def _confident_agreement(run, engine, images) -> float:
    """Argmax agreement of the engine with the Keras model on the pixels Keras is sure of."""
    from edge_deeplab.converters.parity import raw_scores
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with Segmenter(load_runtime(run)) as keras, Segmenter(load_runtime(engine)) as int8:
        reference, scores = raw_scores(keras, images), raw_scores(int8, images)
    top2 = np.sort(reference, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > DECIDED_MARGIN
    assert decided.mean() > 0.8, decided.mean()  # the bar covers most of the image
    return float(np.mean(reference.argmax(-1)[decided] == scores.argmax(-1)[decided]))


def test_tensorrt10_builds_weakly_typed_with_flags_and_the_entropy_calibrator(tiny_run, tmp_path, monkeypatch):
    results, trt, cuda = _convert(monkeypatch, tmp_path, tiny_run, "10.3.0", "fp16,int8")
    for precision in ("fp16", "int8"):
        result = results["tensorrt", precision]
        assert result.status == "ok", result.reason
        assert result.parity["passed"] and result.parity["agreement"] > 0.99
    fp16, int8 = trt.builds
    assert (fp16["typing"], fp16["flags"]) == ("weak", {0})  # BuilderFlag.FP16
    assert (int8["typing"], int8["flags"]) == ("weak", {0, 1})  # FP16 + INT8 (fallback)
    batches = int8["calibration"]
    assert len(batches) == CALIB and all(b.size == 64 * 64 * 3 and np.isfinite(b).all() for b in batches)
    assert len({b.tobytes() for b in batches}) == CALIB  # each call uploaded the next image
    assert not cuda.memory and not cuda.streams  # calibrator and runtimes freed what they took

    # The cache: the same calibration reuses both engines; another calibration set rebuilds int8.
    again, trt2, _ = _convert(monkeypatch, tmp_path, tiny_run, "10.3.0", "fp16,int8")
    assert again["tensorrt", "int8"].status == "ok" and trt2.builds == []
    changed, trt3, _ = _convert(monkeypatch, tmp_path, tiny_run, "10.3.0", "fp16,int8", calib_size=48)
    assert [b["typing"] for b in trt3.builds] == ["weak"] and len(trt3.builds[0]["calibration"]) == 48


def test_tensorrt11_builds_strongly_typed_from_fp16_and_symmetric_qdq_onnx(tiny_run, tiny_data, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    results, trt, cuda = _convert(monkeypatch, tmp_path, tiny_run, "11.4.0", "fp16,int8")
    fp16, int8 = trt.builds
    assert {fp16["typing"], int8["typing"]} == {"strong"} and not fp16["flags"] and not int8["flags"]

    model = onnx.load_from_string(fp16["onnx"])
    graph = model.graph
    floats = [i for i in graph.initializer if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert sum(i.data_type == onnx.TensorProto.FLOAT16 for i in floats) > 0.9 * len(floats)
    assert {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]} == {onnx.TensorProto.FLOAT}

    graph = onnx.load_from_string(int8["onnx"]).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zero_points = [inits[n.input[2]] for n in qdq]
    assert qdq and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric, zero point 0
    convs = [n for n in graph.node if n.op_type == "Conv"]
    producers = {n.output[0]: n for n in graph.node}
    per_channel = [inits[producers[c.input[1]].input[1]].size > 1 for c in convs if c.input[1] in producers]
    assert per_channel and all(per_channel)  # every convolution's weights: one scale per channel
    assert all(len(c.input) < 3 or c.input[2] in inits for c in convs)  # float biases, no int32 DQ

    int8_result = results["tensorrt", "int8"]
    assert int8_result.status == "ok", int8_result.reason
    assert int8_result.parity["agreement"] >= TINY_INT8_AGREEMENT, int8_result.parity
    assert _confident_agreement(tiny_run, int8_result.path, tiny_data[0]) >= 0.99
    fp16_result = results["tensorrt", "fp16"]
    if fp16_result.status != "ok" and "NOT_IMPLEMENTED" in fp16_result.reason:
        pytest.skip(f"onnxruntime's CPU provider cannot run this fp16 graph: {fp16_result.reason}")
    assert fp16_result.status == "ok" and fp16_result.parity["agreement"] > 0.99, fp16_result.reason


def test_every_tensorrt_failure_is_a_conversion_error_and_the_rest_goes_on(tiny_run, tmp_path, monkeypatch):
    results, _, _ = _convert(monkeypatch, tmp_path, tiny_run, "11.4.0", "fp16", targets="all", builder_starts=False)
    failed = results["tensorrt", "fp16"]
    assert failed.status == "conversion failed"
    assert "cannot start a builder" in failed.reason and "CUDA 12 pair" in failed.reason
    assert "\n" not in failed.reason
    others = [r for key, r in results.items() if key[0] != "tensorrt" and r.status != "not available"]
    assert others and all(r.status == "ok" for r in others)

    # A weakly typed build asked of TensorRT 11; an API the bindings lack (an AttributeError).
    monkeypatch.setenv("EDGE_DEEPLAB_TENSORRT_TYPING", "weak")
    results, _, _ = _convert(monkeypatch, tmp_path / "b", tiny_run, "11.4.0", "fp16")
    assert "no weakly typed fp16 builds" in results["tensorrt", "fp16"].reason
    monkeypatch.setenv("EDGE_DEEPLAB_TENSORRT_TYPING", "auto")
    monkeypatch.setattr(fake_tensorrt.FakeBuilder, "create_builder_config", lambda self: None)
    results, _, _ = _convert(monkeypatch, tmp_path / "c", tiny_run, "10.3.0", "fp16")
    assert results["tensorrt", "fp16"].reason.startswith("TensorRT 10.3.0: AttributeError")


def test_a_cuda_error_in_calibration_fails_the_build_and_frees_its_buffer(tiny_run, tmp_path, monkeypatch):
    from edge_deeplab.converters import convert

    trt, cuda = fake_tensorrt.install(monkeypatch, "10.3.0")
    monkeypatch.setattr("edge_deeplab.converters.tensorrt.gpu_name", lambda: "Fake GPU")
    monkeypatch.setenv("EDGE_DEEPLAB_CACHE", str(tmp_path / "cache"))
    cuda.fail["cudaMemcpy"] = fake_tensorrt.INVALID_VALUE
    (result,) = convert(tiny_run, "tensorrt", "int8", tmp_path / "out", calib_size=4, progress=False)
    assert result.status == "conversion failed"
    assert "calibration stopped: CUDA error in cudaMemcpy: cudaErrorInvalidValue" in result.reason
    assert not cuda.memory and not list((tmp_path / "cache").glob("*.engine"))


def test_runtime_runs_on_another_thread_frees_everything_and_closes_twice(tiny_run, tmp_path, monkeypatch):
    from edge_deeplab.errors import ModelLoadError
    from edge_deeplab.runtimes import load_runtime

    results, trt, cuda = _convert(monkeypatch, tmp_path, tiny_run, "10.3.0", "fp16")
    engine = results["tensorrt", "fp16"].path
    runtime = load_runtime(engine)
    batch = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    outputs = []
    worker = threading.Thread(target=lambda: outputs.append(runtime.run(batch)))  # the demo's inference thread
    worker.start()
    worker.join()
    assert outputs and outputs[0].shape[:3] == (1, 64, 64)
    np.testing.assert_allclose(runtime.run(batch), outputs[0], rtol=1e-5, atol=1e-5)
    assert cuda.memory and cuda.streams
    runtime.close()
    runtime.close()
    assert not cuda.memory and not cuda.streams
    with pytest.raises(ModelLoadError, match="closed"):
        runtime.run(batch)

    cuda.fail["cudaMalloc"] = fake_tensorrt.ALLOCATION_FAILED
    runtime = load_runtime(engine)
    with pytest.raises(ModelLoadError, match="cudaMalloc: cudaErrorMemoryAllocation"):
        runtime.run(batch)
    runtime.close()
    assert not cuda.memory and not cuda.streams

"""Every registered runtime on the tiny trained model agrees with the Keras runtime.

Parametrised over the RUNTIMES registry: each engine opens the artifacts the converters
make for it, configures itself from the embedded metadata, and must match the Keras
reference's class maps by the tolerance table (`converters.parity.TOLERANCES`). Which
artifacts each engine is tested on is derived from the registries (ENGINE_ARTIFACTS), so a
new engine and its converter are tested with no edit here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT, decided_agreement, float_margins

from edge_deeplab.errors import InvalidInputError, MissingDependencyError, ModelLoadError
from edge_deeplab.runtimes import RUNTIMES, load_runtime
from edge_deeplab.segmenter import Segmenter


def engine_artifacts() -> dict:
    """runtime name -> (converter target, precisions it is tested on); None: the run itself.

    The target is the converter whose `runtime` is the engine; it is tested on its float
    and int8 artifacts when it makes fp32, else on its first precision (TensorRT: fp16).
    """
    from edge_deeplab.converters import CONVERTERS

    table = {}
    for name in RUNTIMES.names():
        target = next((t for t, cls in CONVERTERS.items() if cls.runtime == name), None)
        if target is None:
            table[name] = None
            continue
        made = CONVERTERS.get(target).precisions
        tested = tuple(p for p in ("fp32", "int8") if p in made) if "fp32" in made else made[:1]
        table[name] = (target, tested)
    return table


ENGINE_ARTIFACTS = engine_artifacts()
# XNNPACK against TFLite's reference int8 kernels, on the pixels the float model decides
# (conftest.DECIDED_MARGIN): a kernel option that broke the model flips them by tens of points.
XNNPACK_VS_REFERENCE = 0.99
CASES = [
    (name, precision)
    for name in RUNTIMES.names()
    for precision in (ENGINE_ARTIFACTS[name][1] if ENGINE_ARTIFACTS.get(name) else ("fp32",))
]


class Artifacts(dict):
    """(target, precision) -> artifact path, plus each conversion's status for skip reasons."""

    statuses: dict = {}


@pytest.fixture(scope="module")
def artifacts(tiny_converted):
    """{(target, precision): path} of conftest's session conversion of the tiny run.

    An artifact that missed the converter's own parity check is still written and tested
    here (and fails here if it disagrees); only a missing file is skipped, with its reason.
    """
    results = tiny_converted[0].values()
    artifacts = Artifacts(
        {(r.target, r.precision): Path(r.path) for r in results if r.path and Path(r.path).is_file()}
    )
    artifacts.statuses = {(r.target, r.precision): f"{r.status} ({r.reason})" for r in results}
    return artifacts


@pytest.fixture(scope="module")
def reference(tiny_run, tiny_data):
    """The Keras runtime's class maps of the 16 tiny images."""
    pytest.importorskip("tensorflow")
    with load_runtime(tiny_run, backend="keras") as runtime:
        return Segmenter(runtime).predict_batch(list(tiny_data[0]))


def test_every_runtime_has_a_test_entry():
    missing = [name for name in RUNTIMES.names() if name not in ENGINE_ARTIFACTS]
    assert not missing, f"add {missing} to ENGINE_ARTIFACTS"


@pytest.mark.slow
@pytest.mark.parametrize("name,precision", CASES)
def test_runtime_agrees_with_keras(name, precision, tiny_run, tiny_data, artifacts, reference):
    from edge_deeplab.converters import TOLERANCES

    cls = RUNTIMES.get(name)
    if not cls.available():
        pytest.skip(
            f"{name} is not available on this machine (pip install 'edge-deeplab[{cls.extra}]')"
        )
    entry = ENGINE_ARTIFACTS[name]
    if entry is None:
        path = tiny_run
    else:
        path = artifacts.get((entry[0], precision))
        if path is None:
            why = artifacts.statuses.get((entry[0], precision), "not converted")
            pytest.skip(f"no {entry[0]} {precision} artifact: {why}")
    with load_runtime(path, threads=2) as runtime:
        assert isinstance(runtime, cls)
        assert runtime.metadata is not None, f"{path.name}: embedded metadata not found"
        segmenter = Segmenter(runtime)
        results = segmenter.predict_batch(list(tiny_data[0]))
    ours = np.stack([r.labels for r in results])
    ref = np.stack([r.labels for r in reference])
    agreement = float((ours == ref).mean())
    bound = TINY_INT8_AGREEMENT if precision == "int8" else TOLERANCES[precision]["agreement"]
    assert agreement >= bound, f"{name} {precision}: argmax agreement {agreement:.4f} < {bound}"


def test_keras_runtime_matches_model_predict(tiny_run, tiny_data):
    keras = pytest.importorskip("keras")
    import edge_deeplab.keras_layers  # noqa: F401

    model = keras.saving.load_model(str(tiny_run / "model.keras"), compile=False)
    x = (tiny_data[0][:2].astype(np.float32) - 127.5) / 127.5
    with load_runtime(tiny_run) as runtime:
        assert runtime.name == "keras" and runtime.device_name.startswith(("CPU", "GPU"))
        assert runtime.metadata.num_classes == 3
        np.testing.assert_allclose(runtime.run(x), model.predict(x, verbose=0), atol=1e-4)


def test_keras_mixed_precision_agrees(tiny_run, tiny_data, reference):
    """float16 compute (the GPU option) keeps the class maps within the fp16 tolerance."""
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters import TOLERANCES

    with load_runtime(tiny_run, mixed_precision=True) as runtime:
        assert "mixed fp16" in runtime.device_name
        labels = np.stack([r.labels for r in Segmenter(runtime).predict_batch(list(tiny_data[0]))])
    agreement = (labels == np.stack([r.labels for r in reference])).mean()
    assert agreement >= TOLERANCES["fp16"]["agreement"]


def test_keras_runtime_opens_a_saved_model(tiny_run, tiny_data, tmp_path):
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters.savedmodel import export_saved_model

    with load_runtime(tiny_run) as keras_rt:
        folder = export_saved_model(keras_rt.model, "logits", tmp_path / "sm")
        x = (tiny_data[0][:1].astype(np.float32) - 127.5) / 127.5
        with load_runtime(folder, trust_model=True) as sm_rt:  # our own export: trusted
            assert sm_rt.name == "keras" and sm_rt.input_spec.shape == (1, 64, 64, 3)
            np.testing.assert_allclose(sm_rt.run(x), keras_rt.run(x), atol=1e-4)


def test_keras_unknown_device_names_valid_ones(tiny_run):
    pytest.importorskip("tensorflow")
    with pytest.raises(InvalidInputError, match="valid devices: .*CPU"):
        load_runtime(tiny_run, device="GPU:7")


def test_keras_says_when_a_gpu_machine_runs_it_on_the_cpu(tiny_run, monkeypatch):
    """The plain tensorflow wheel has no CUDA: on a GPU machine it would run silently on the
    CPU. Asked for a GPU it refuses, naming the `gpu` extra; asked for nothing, it warns."""
    tf = pytest.importorskip("tensorflow")
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here")
    import os

    from edge_deeplab import nvidia

    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"  # set by edge_deeplab.deps
    monkeypatch.setattr(nvidia, "gpu_name", lambda: "NVIDIA H200")
    with pytest.raises(InvalidInputError, match=r"sees no GPU.*edge-deeplab\[gpu\]"):
        load_runtime(tiny_run, device="GPU")
    with pytest.warns(RuntimeWarning, match=r"on the CPU although this machine has NVIDIA H200"):
        load_runtime(tiny_run).close()
    monkeypatch.setattr(nvidia, "gpu_name", lambda: "")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        load_runtime(tiny_run).close()  # no GPU anywhere: the CPU is no surprise


@pytest.mark.slow
def test_tflite_thread_and_delegate_options_keep_the_class_maps(artifacts, tiny_run, tiny_data):
    path = artifacts.get(("tflite", "int8")) or pytest.skip("no tflite int8 artifact")
    images = list(tiny_data[0][:4])
    with load_runtime(path, threads=2) as rt:
        assert rt.input_spec.quantized and rt.input_spec.dtype in (np.int8, np.uint8)
        default = np.stack([r.labels for r in Segmenter(rt).predict_batch(images)])
    with load_runtime(path, threads=1, xnnpack=False) as rt:  # reference kernels, same answer
        plain = np.stack([r.labels for r in Segmenter(rt).predict_batch(images)])
    # XNNPACK and the reference int8 kernels round differently, which flips the tiny model's
    # near-tied pixels (95.5% of all pixels agreed in one CI run): judged on decided pixels.
    assert (default == plain).mean() >= TINY_INT8_AGREEMENT - 0.05
    assert decided_agreement(default, plain, float_margins(tiny_run, images)) >= XNNPACK_VS_REFERENCE
    with pytest.raises(ModelLoadError, match="delegate"):
        load_runtime(path, delegates=["/nonexistent/libdelegate.so"])
    with pytest.raises(InvalidInputError, match="valid devices: CPU, GPU, EDGETPU"):
        load_runtime(path, device="NPU")
    if os.environ.get("EDGE_DEEPLAB_TFLITE_GPU_DELEGATE") is None:  # no GPU delegate here
        with pytest.raises(ModelLoadError, match="libtensorflowlite_gpu_delegate.so"):
            load_runtime(path, device="GPU")


@pytest.mark.slow
def test_openvino_static_shape_async_and_hints(artifacts, tiny_data):
    pytest.importorskip("openvino")
    path = artifacts.get(("openvino", "fp32")) or pytest.skip("no openvino artifact")
    with load_runtime(path, threads=2, hint="throughput", requests=3) as rt:
        assert rt.input_spec.shape == (1, 64, 64, 3)  # reshaped static before compiling
        seg = Segmenter(rt)
        batches = [
            seg.quantize_input(((img[None].astype(np.float32)) - 127.5) / 127.5)
            for img in tiny_data[0][:6]
        ]
        sync = [rt.run(b) for b in batches]
        outs = rt.run_async(batches)
        assert rt.num_requests == 3
    for a, b in zip(sync, outs):
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(InvalidInputError, match="valid devices: CPU"):
        load_runtime(path, device="NOPE")
    with pytest.raises(InvalidInputError, match="valid hints"):
        load_runtime(path, hint="fastest")


@pytest.mark.slow
def test_openvino_reads_onnx_when_asked(artifacts, tiny_data, reference):
    pytest.importorskip("openvino")
    path = artifacts.get(("onnx", "fp32")) or pytest.skip("no onnx artifact")
    with load_runtime(path, backend="openvino") as rt:
        assert rt.name == "openvino" and rt.metadata is not None
        labels = np.stack([r.labels for r in Segmenter(rt).predict_batch(list(tiny_data[0]))])
    assert (labels == np.stack([r.labels for r in reference])).mean() >= 0.999


@pytest.mark.slow
def test_onnxruntime_takes_providers_and_refuses_an_unknown_device(artifacts):
    ort = pytest.importorskip("onnxruntime")
    path = artifacts.get(("onnx", "fp32")) or pytest.skip("no onnx artifact")
    with load_runtime(path, providers=["CPUExecutionProvider"], threads=1) as rt:
        assert rt.providers == ["CPUExecutionProvider"] and rt.device_name == "CPU"
    with pytest.raises(InvalidInputError, match="valid devices"):
        load_runtime(path, device="fpga")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(InvalidInputError, match="CUDAExecutionProvider"):
            load_runtime(path, device="cuda")


def test_tensorrt_absent_is_a_clear_error(tmp_path):
    cls = RUNTIMES.get("tensorrt")
    if cls.available():
        pytest.skip("TensorRT and a GPU are present")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    with pytest.raises((MissingDependencyError, ModelLoadError), match="tensorrt|TensorRT"):
        load_runtime(engine)


def test_a_keras_model_in_memory_runs_through_the_segmenter_without_a_file():
    """`KerasRuntime.from_model`: no path (none faked), inference mode, the metadata given,
    and with head="argmax" the class map of the same logits."""
    keras = pytest.importorskip("keras")
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.runtimes.keras_runtime import KerasRuntime

    inputs = keras.Input((8, 12, 3))
    model = keras.Model(inputs, keras.layers.Dropout(0.9)(keras.layers.Conv2D(3, 1)(inputs)))  # drops only in training
    meta = ArtifactMetadata(labels=("a", "b", "c"), input_size=(8, 12))
    batch = np.random.default_rng(0).normal(size=(3, 8, 12, 3)).astype(np.float32)
    logits = np.asarray(model(batch, training=False))
    runtime = KerasRuntime.from_model(model, meta)
    assert runtime.path is None and runtime.metadata == meta
    assert runtime.input_spec.shape == (None, 8, 12, 3) and runtime.output_spec.shape == (None, 8, 12, 3)
    np.testing.assert_allclose(runtime.run(batch), logits, atol=1e-5)
    labels = KerasRuntime.from_model(model, meta.replace(head="argmax"), head="argmax", per_image=True)
    assert labels.output_spec.dtype == np.uint8
    np.testing.assert_array_equal(labels.run(batch), np.argmax(logits, axis=-1))
    result = Segmenter(runtime).predict(np.zeros((8, 12, 3), np.uint8))
    assert result.labels.shape == (8, 12)


def test_a_compiled_openvino_model_runs_through_the_segmenter_without_a_file():
    """`OpenVINORuntime.from_compiled` (what NNCF's accuracy control scores): the compiled
    ports' tensors, the metadata given, no path."""
    ov = pytest.importorskip("openvino")
    from edge_deeplab.metadata import ArtifactMetadata
    from edge_deeplab.runtimes.openvino_runtime import OpenVINORuntime

    ops = pytest.importorskip("openvino.opset13")
    image = ops.parameter([1, 8, 12, 3], ov.Type.f32, name="image")
    model = ov.Model([ops.multiply(image, ops.constant(np.float32(2.0)))], [image], "double")
    compiled = ov.Core().compile_model(model, "CPU")
    meta = ArtifactMetadata(labels=("a", "b", "c"), input_size=(8, 12))
    runtime = OpenVINORuntime.from_compiled(compiled, meta)
    assert runtime.path is None and runtime.metadata == meta
    assert runtime.input_spec.shape == (1, 8, 12, 3) and runtime.output_spec.dtype == np.float32
    batch = np.random.default_rng(1).normal(size=(1, 8, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(runtime.run(batch), 2 * batch, rtol=1e-6)
    assert Segmenter(runtime).predict(np.zeros((8, 12, 3), np.uint8)).labels.shape == (8, 12)

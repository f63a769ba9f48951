"""The ecosystem's own clients read our artifacts right, or refuse them; never misread them.

MediaPipe's ImageSegmenter (what Android, iOS, web and Python apps use) and
openvino-model-api's SegmentationModel (OpenVINO's demos, Geti; IRs and, through its ONNXRuntimeAdapter,
ONNX models) run as their users run them:
each in its own virtual environment (mediapipe needs opencv-contrib-python, model_api
opencv-python-headless; either clashes with our opencv-python), built once and cached in
~/.cache/edge-deeplab/clients, with the scripts in tests/clients. Their category masks are
compared with our Segmenter's class maps on real images (CamVid val, the bird photo),
framed at the model's input size as a camera app frames them: at other sizes each client
resamples in its own way (MediaPipe interpolates the scores with aligned corners, model_api
upsamples the class map nearest), which on the barely trained 64x64 test model moves
5-8% of the pixels and measures the clients' resampling, not whether they read the artifact.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "tests" / "clients"
CACHE = Path(os.environ.get("EDGE_DEEPLAB_CLIENT_CACHE", Path.home() / ".cache" / "edge-deeplab" / "clients"))
CLIENTS = {
    "mediapipe": ["mediapipe==1.2.3"],
    "model_api": ["openvino-model-api[onnx]==0.4.7", "opencv-python-headless"],
}
BARS = {"fp32": 0.995, "int8": 0.99}


def client_python(name: str) -> Path:
    """The cached venv of a client (created on first use: pip from the package index)."""
    folder = CACHE / f"{name}-{hashlib.sha1(' '.join(CLIENTS[name]).encode()).hexdigest()[:8]}"
    python = folder / "bin" / "python"
    if not (folder / ".complete").is_file():
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        _run([python, "-m", "pip", "install", "-q", *CLIENTS[name]])
        (folder / ".complete").write_text("ok")
    return python


def _run(cmd, check=True):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, f"{cmd[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def client_images(shared_dir, tmp_path_factory):
    """{key: RGB uint8 image} at the tiny model's input size, saved for the clients."""
    from conftest import TINY_SIZE

    from edge_deeplab.data.preprocessing import resize
    from edge_deeplab.imageio import read_image

    paths = sorted((shared_dir / "data" / "camvid" / "val").glob("*.png"))[:6]
    paths.append(shared_dir / "anchors" / "pascal" / "bird_segmentation.bmp")
    images = {f"img{i}": resize(read_image(p), TINY_SIZE) for i, p in enumerate(paths)}
    path = tmp_path_factory.mktemp("client") / "images.npz"
    np.savez(path, **images)
    return images, path


@pytest.fixture(scope="module")
def logits_artifacts(tiny_run, tmp_path_factory):
    """The logits-head artifacts (the client-ready ones): tflite, openvino and onnx, fp32 and int8."""
    pytest.importorskip("tensorflow")
    from conftest import TINY_INT8_AGREEMENT

    from edge_deeplab.converters import convert

    out = tmp_path_factory.mktemp("logits")
    results = convert(tiny_run, ["tflite", "openvino", "onnx"], ["fp32", "int8"], out, head="logits",
                      calib_size=64, parity_images=8, progress=False, int8_agreement=TINY_INT8_AGREEMENT)
    assert all(r.client and r.status == "ok" for r in results), [(r.target, r.precision, r.status) for r in results]
    return {(r.target, r.precision): r.path for r in results}


def _client_masks(client: str, model: Path, images_npz: Path, tmp_path: Path, check=True):
    out = tmp_path / f"{client}-{model.stem}.npz"
    result = _run([client_python(client), SCRIPTS / f"{client}_segment.py", model, images_npz, out], check)
    return (np.load(out) if result.returncode == 0 else None), result


def _agreement(model: Path, images: dict, masks) -> float:
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with Segmenter(load_runtime(model)) as segmenter:
        hits = [np.mean(segmenter.predict(image).labels == masks[key]) for key, image in images.items()]
    return float(np.mean(hits))


@pytest.mark.slow
@pytest.mark.parametrize("target, client", [("tflite", "mediapipe"), ("openvino", "model_api"), ("onnx", "model_api")])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_client_reads_logits_artifact_like_our_segmenter(
    target, client, precision, logits_artifacts, client_images, tmp_path
):
    from edge_deeplab.runtimes import load_runtime

    images, images_npz = client_images
    model = logits_artifacts[target, precision]
    masks, _ = _client_masks(client, model, images_npz, tmp_path)
    labels = tuple(str(label) for label in masks["labels"])
    assert labels == load_runtime(model).metadata.labels  # read from the artifact
    if client == "model_api":
        assert str(masks["wrapper"]) == "SegmentationModel"  # picked by model_info
    assert _agreement(model, images, masks) >= BARS[precision]


@pytest.mark.slow
@pytest.mark.parametrize("target, client, message", [
    ("tflite", "mediapipe", "Unsupported output tensor type:INT64"),
    ("openvino", "model_api", "There is no model with name edge-deeplab class map"),
    ("onnx", "model_api", "There is no model with name edge-deeplab class map"),
])
def test_client_refuses_default_argmax_artifact(target, client, message, tiny_converted, client_images, tmp_path):
    """The default artifact with the in-graph argmax (int8, or fp32 where int8's default is
    logits: OpenVINO, whose int8 artifact is then client-ready as it is)."""
    results, _ = tiny_converted
    precision = next(p for p in ("int8", "fp32") if results[target, p].head == "argmax")
    model = results[target, precision].path
    assert not results[target, precision].client
    if results[target, "int8"].head == "logits":
        assert results[target, "int8"].client
    masks, result = _client_masks(client, model, client_images[1], tmp_path, check=False)
    assert masks is None and message in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_logits_artifact_is_planar_for_model_api_and_nhwc_for_us(precision, logits_artifacts):
    """model_api's ONNXRuntimeAdapter feeds float32 NCHW; our runtime presents NHWC (uint8
    pixels where the int8 graph normalises them)."""
    onnx = pytest.importorskip("onnx")
    from edge_deeplab.runtimes import load_runtime

    path = logits_artifacts["onnx", precision]
    graph = onnx.load(str(path)).graph
    for value in (graph.input[0], graph.output[0]):
        assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [1, 3, 64, 64]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    with load_runtime(path) as runtime:
        assert runtime.input_spec.shape == runtime.output_spec.shape == (1, 64, 64, 3)
        assert runtime.input_spec.dtype == np.dtype(np.uint8 if precision == "int8" else np.float32)
        assert runtime.metadata.input_kind == ("pixels" if precision == "int8" else "normalized")

"""`edge-deeplab predict` and `bench` end to end, the latency harness, the colour helpers,
bad inputs, and the edge-side rule (no TensorFlow import on the predict path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_deeplab.bench.harness import benchmark, percentile, summarize, timed_repeats
from edge_deeplab.cli.main import main
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.metadata import voc_palette
from edge_deeplab.visualize import colorize, overlay

cv2 = pytest.importorskip("cv2")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tflite_model(tiny_run, tmp_path_factory) -> Path:
    """The tiny trained model as an fp32 .tflite with embedded metadata."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from edge_deeplab.converters import convert

    out = tmp_path_factory.mktemp("cli_model")
    result = convert(
        tiny_run,
        targets=["tflite"],
        precisions=["fp32"],
        out_dir=out,
        calib_data="synthetic",
        parity_images=4,
        progress=False,
    )[0]
    assert result.status == "ok", result.reason
    return result.path


@pytest.fixture
def images(tmp_path, tiny_data) -> dict:
    """name -> path of good inputs: colour PNG, non-square JPEG, grayscale, RGBA (in a folder)."""
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = tiny_data[0][0]
    paths = {
        "scene": folder / "scene.png",
        "wide": folder / "wide.jpg",
        "gray": folder / "gray.png",
        "rgba": folder / "rgba.png",
    }
    cv2.imwrite(str(paths["scene"]), rgb[:, :, ::-1])
    cv2.imwrite(str(paths["wide"]), cv2.resize(rgb, (120, 50))[:, :, ::-1])
    cv2.imwrite(str(paths["gray"]), rgb[:, :, 0])
    cv2.imwrite(
        str(paths["rgba"]), np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)])
    )
    return paths


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path} is not a viewable image"
    return image


# -- colour helpers -----------------------------------------------------------------------


def test_colorize_and_overlay_golden():
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    palette = voc_palette(3)  # (0,0,0), (128,0,0), (0,128,0)
    color = colorize(labels, palette)
    assert color.dtype == np.uint8 and color.shape == (2, 2, 3)
    assert color.tolist() == [[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], [0, 0, 0]]]
    blended = overlay(np.full((2, 2, 3), 100, np.uint8), labels, palette, alpha=0.25)
    assert blended[0, 1].tolist() == [107, 75, 75]  # 0.75*100 + 0.25*128 = 107
    with pytest.raises(InvalidInputError):
        overlay(np.zeros((3, 3, 3), np.uint8), labels, palette)


# -- harness ------------------------------------------------------------------------------


def test_percentiles_and_summary_are_exact_on_known_values():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0 and percentile(values, 90) == pytest.approx(4.6)
    stats = summarize(values)
    assert (stats["p50"], stats["min"], stats["max"], stats["mean"]) == (3.0, 1.0, 5.0, 3.0)
    calls = []
    times = timed_repeats(lambda: calls.append(1), warmup=2, min_time_s=10.0, max_runs=7)
    assert len(times) == 7 and len(calls) == 9
    assert len(timed_repeats(lambda: None, warmup=0, min_time_s=0.0, max_runs=50)) == 3  # min_runs


def test_benchmark_gives_a_row_of_measured_latencies(tflite_model):
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(tflite_model, threads=1) as runtime:
        row = benchmark(Segmenter(runtime), warmup=1, min_time_s=0.2, max_runs=20)
    assert row["runtime"] == "tflite" and row["threads"] == 1 and row["image_size"] == [64, 64]
    assert 3 <= row["runs"] <= 20
    assert 0 < row["latency_min_ms"] <= row["latency_p50_ms"] <= row["latency_p90_ms"]
    assert row["fps"] == pytest.approx(1000 / row["latency_p50_ms"])
    assert set(row["stages"]) == {"preprocess", "infer", "postprocess"}
    assert sum(row["stages"].values()) <= row["latency_p90_ms"] * 1.5
    assert row["peak_mem_mb"] is None or row["peak_mem_mb"] > 10


# -- predict ------------------------------------------------------------------------------


def test_predict_writes_viewable_pngs(tflite_model, images, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [
            "predict",
            str(tflite_model),
            str(images["scene"].parent),
            "--out",
            str(out),
            "--alpha",
            "0.4",
        ]
    )
    assert status == 0, capsys.readouterr().err
    from edge_deeplab.imageio import read_image
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(tflite_model) as runtime:
        segmenter = Segmenter(runtime)
        palette = np.array(segmenter.metadata.palette, np.uint8)
        for name, path in images.items():
            rgb = read_image(path)
            mask, color, over = (
                read(out / f"{name}_{kind}.png") for kind in ("mask", "color", "overlay")
            )
            assert mask.ndim == 2 and mask.dtype == np.uint8 and mask.shape == rgb.shape[:2]
            assert mask.max() < 3
            np.testing.assert_array_equal(mask, segmenter.predict(rgb).labels)
            assert color.shape == (*rgb.shape[:2], 3)
            np.testing.assert_array_equal(color[:, :, ::-1], palette[mask])
            expected = np.rint(rgb * 0.6 + palette[mask] * 0.4)
            assert np.abs(over[:, :, ::-1].astype(int) - expected).max() <= 1


def test_predict_goes_on_past_bad_images(tflite_model, images, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    cv2.imwrite(str(bad / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(bad / "deep.png"), np.full((8, 8, 3), 40000, np.uint16))
    (bad / "text.jpg").write_bytes(b"hello, not a jpeg")
    out = tmp_path / "out"
    status = main(["predict", str(tflite_model), str(images["scene"]), str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1
    for name, why in [
        ("empty.png", "empty"),
        ("tiny.png", "too small"),
        ("deep.png", "16-bit"),
        ("text.jpg", ""),
    ]:
        line = next((text for text in err.splitlines() if name in text), None)
        assert line is not None and why in line, err
    assert (out / "scene_mask.png").is_file() and not (out / "empty_mask.png").exists()


@pytest.mark.parametrize(
    "case,message",
    [
        ("png.tflite", "not a TFLite model"),
        ("notir.xml", "not an OpenVINO IR"),
        ("png.onnx", "ONNX"),
        ("missing.tflite", "no such model"),
    ],
)
def test_bad_model_files(case, message, tmp_path, images, capsys):
    path = tmp_path / case
    if case.startswith("png"):
        path.write_bytes(images["scene"].read_bytes())
    elif case == "notir.xml":
        path.write_text('<?xml version="1.0"?><config><item/></config>')
    status = main(["predict", str(path), str(images["scene"]), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err


def test_missing_device_names_valid_ones(tflite_model, images, tmp_path, capsys):
    status = main(["bench", str(tflite_model), "--device", "TPU", "--min-time", "0"])
    err = capsys.readouterr().err
    assert status == 2 and "valid devices: CPU" in err


def test_non_image_model_is_refused(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    path = tmp_path / "vector.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
        str(path),
    )
    status = main(["bench", str(path), "--preset", "pascal-voc", "--min-time", "0"])
    assert status == 2 and "expected an image tensor" in capsys.readouterr().err


# -- bench --------------------------------------------------------------------------------


def test_bench_writes_its_row_as_json(tflite_model, images, tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = main(
        [
            "bench",
            str(tflite_model),
            str(tflite_model),
            "--threads",
            "1",
            "--min-time",
            "0.2",
            "--max-runs",
            "15",
            "--image",
            str(images["wide"]),
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0 and "p50 ms" in printed
    rows = json.loads(out.read_text())
    assert len(rows) == 2
    for row in rows:
        for key in (
            "model",
            "runtime",
            "threads",
            "latency_p50_ms",
            "latency_p90_ms",
            "fps",
            "stages",
        ):
            assert key in row
        assert row["threads"] == 1 and row["runtime"] == "tflite" and row["image_size"] == [50, 120]
        assert row["latency_p50_ms"] <= row["latency_p90_ms"] and row["stages"]["infer"] > 0


# -- the edge-side rule -------------------------------------------------------------------

EDGE_CHECK = """
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
sys.modules["keras"] = None
import edge_deeplab.runtimes, edge_deeplab.segmenter, edge_deeplab.visualize
import edge_deeplab.bench.harness, edge_deeplab.cli.predict_cmd, edge_deeplab.cli.bench_cmd
for name in ("tflite", "onnx", "openvino", "tensorrt", "keras"):
    __import__(f"edge_deeplab.runtimes.{name}_runtime")
from edge_deeplab.cli.main import main
status = main(["predict", sys.argv[1], sys.argv[2], "--out", sys.argv[3]])
status |= main(["bench", sys.argv[1], "--min-time", "0.1", "--max-runs", "5"])
heavy = ("tensorflow", "keras")
loaded = [m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in heavy]
assert not loaded, loaded
sys.exit(status)
"""


def test_edge_side_runs_without_tensorflow(tflite_model, images, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            EDGE_CHECK,
            str(tflite_model),
            str(images["scene"]),
            str(tmp_path / "masks"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "masks" / "scene_mask.png").is_file()

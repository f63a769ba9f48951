"""The lean host path (issue 11): raw-pixel int8 artifacts, and what reaches the engine.

- int8 artifacts that take uint8 pixels (normalisation in the graph) give the class maps
  of the int8-I/O ones where int8 holds the normalised pixels exactly (TFLite), lose
  nothing against Keras where it does not, and equal the float-input ones (OpenVINO INT8,
  ONNX QDQ);
- the engine gets the model-size batch in its own dtype, never a full-frame float array;
- the per-channel input table is exactly the old normalise + quantise;
- Coral's uint8 model gets the raw pixels under the PASCAL preset;
- without OpenCV, numpy resizes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_INT8_AGREEMENT, decided_agreement, float_margins

from edge_deeplab.data.host_input import input_table, raw_pixels_match
from edge_deeplab.data.preprocessing import normalize, resize
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runtimes import load_runtime
from edge_deeplab.runtimes.base import TensorSpec
from edge_deeplab.segmenter import Segmenter

AGREEMENT = 0.995
# The pixel artifact and the float-input one of OpenVINO and ONNX normalise in float before
# the first quantisation, but each is calibrated on its own input (the pixel set spans exactly
# 0..255): the first quantiser's range differs by a hair, and the barely trained tiny model's
# near-tied logits follow it (ONNX 98.996-100% of all pixels between CI runs). Judged on the
# pixels the float model decides (conftest.DECIDED_MARGIN).
PIXEL_VS_FLOAT_INPUT = 0.995
TINY_INT8_NOISE = 0.015  # agreement points two int8 calibrations of the tiny model differ by
PIXEL_TARGETS = ("tflite", "openvino", "onnx")


class SpyRuntime:
    """Passes everything to a real runtime and records the batches `run` gets."""

    def __init__(self, runtime):
        self._runtime = runtime
        self.batches = []

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def run(self, batch):
        self.batches.append((batch.dtype, batch.shape))
        return self._runtime.run(batch)


def _convert_int8(run, out_root, targets, ios=("pixels", "int8")) -> dict:
    """{(target, io): ConversionResult} for each io, with conftest's `tiny_converted` options
    (the same calibration and parity images)."""
    from edge_deeplab.converters import convert

    found = {}
    for io in ios:
        results = convert(run, targets=targets, precisions=["int8"], out_dir=out_root / io,
                          calib_data="synthetic", calib_size=64, parity_images=16,
                          io_dtype=io, int8_agreement=TINY_INT8_AGREEMENT, progress=False)
        found.update({(r.target, io): r for r in results if r.path})
    return found


@pytest.fixture(scope="module")
def int8_results(tiny_run, tiny_converted, tmp_path_factory):
    """The tiny run (mean = std = 127.5) as int8 TFLite, OpenVINO and ONNX: pixel input from
    the session's conversion (the default io), int8 I/O made here the same way."""
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters import CONVERTERS

    targets = [t for t in PIXEL_TARGETS if CONVERTERS.get(t).available()[0]]
    session = tiny_converted[0]
    found = {(t, "pixels"): session[(t, "int8")] for t in targets if session[(t, "int8")].path}
    found.update(_convert_int8(tiny_run, tmp_path_factory.mktemp("int8"), targets, ios=("int8",)))
    return found


@pytest.fixture(scope="module")
def int8_artifacts(int8_results) -> dict:
    return {key: Path(result.path) for key, result in int8_results.items()}


@pytest.fixture(scope="module")
def run_128(tiny_run, tmp_path_factory) -> Path:
    """The tiny run with its normalisation declared as mean = std = 128."""
    run = tmp_path_factory.mktemp("run128") / "run"
    shutil.copytree(tiny_run, run)
    meta = json.loads((run / "metadata.json").read_text(encoding="utf-8"))
    meta.update(mean=[128.0] * 3, std=[128.0] * 3)
    (run / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return run


def _class_maps(path, images) -> np.ndarray:
    with Segmenter(load_runtime(path, threads=2)) as segmenter:
        return np.stack([r.labels for r in segmenter.predict_batch(images)])


def _first_conv_input(path, image: np.ndarray) -> np.ndarray:
    """The int8 tensor the first convolution of a TFLite artifact reads for one model-size image."""
    from edge_deeplab.runtimes.tflite_runtime import interpreter_module

    interpreter = interpreter_module().Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    conv = next(op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D")
    tensor = interpreter.get_input_details()[0]
    interpreter.set_tensor(tensor["index"], image[None].astype(tensor["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(conv["inputs"][0])[0]


def test_pixel_tflite_equals_int8_io_where_int8_holds_the_normalisation(run_128, tiny_data, tmp_path):
    """mean = std = 128: normalised pixels are exactly int8 values (scale 1/128), so the
    graph's normalisation loses nothing: the first convolution reads p - 128, bit for bit,
    as it does from the host's int8 input.

    The class maps are not held to equality: the two conversions calibrate the rest of the
    graph a hair apart (one activation scale 0.0666 vs 0.0666 + 0.05%), which flips near-tie
    pixels of the barely trained model (99.5% here, 99.37% on a CI CPU); a lost normalisation
    drops tens of points."""
    pytest.importorskip("tensorflow")
    results = _convert_int8(run_128, tmp_path, ["tflite"])
    images = list(tiny_data[0][:8])
    pixels, int8 = results[("tflite", "pixels")].path, results[("tflite", "int8")].path
    for image in images[:2]:
        shifted = image.astype(np.int16) - 128
        assert np.array_equal(_first_conv_input(pixels, image), shifted)
        assert np.array_equal(_first_conv_input(int8, shifted), shifted)
    maps = {io: _class_maps(path, images) for io, path in (("pixels", pixels), ("int8", int8))}
    assert (maps["pixels"] == maps["int8"]).mean() >= 1 - TINY_INT8_NOISE


def test_pixel_artifacts_lose_nothing_against_int8_io(int8_results, tiny_run, tiny_data):
    """mean = std = 127.5: no int8 grid holds (p - 127.5) / 127.5 (half a step off), so
    both the host's quantisation (int8 I/O) and the graph's round once, each its own way:
    the pixel artifact agrees with Keras as well as the int8-I/O one (TFLite), within the
    tiny model's noise; OpenVINO and ONNX normalise in float before the first quantisation:
    the same class on every pixel the float model decides (PIXEL_VS_FLOAT_INPUT).

    The noise: two int8 calibrations of this barely trained model differ by up to a point
    and a half of agreement on their own (a CI run had pixels 97.8% vs int8 I/O 98.3%), so
    "at least as well" is held to 1.5 points, and the maps are compared on decided pixels
    (ONNX agreed on 98.996% of all pixels in one CI run); a pixel path that lost the
    normalisation (e.g. a wrong scale) drops tens of points on them."""
    images = list(tiny_data[0][:8])
    margins = float_margins(tiny_run, images)
    for target in PIXEL_TARGETS:
        if (target, "pixels") not in int8_results:
            continue
        pixels, int8 = int8_results[(target, "pixels")], int8_results[(target, "int8")]
        assert pixels.parity["agreement"] >= int8.parity["agreement"] - TINY_INT8_NOISE, target
        maps = _class_maps(pixels.path, images), _class_maps(int8.path, images)
        assert (maps[0] == maps[1]).mean() >= TINY_INT8_AGREEMENT, target
        if target != "tflite":
            assert decided_agreement(*maps, margins) >= PIXEL_VS_FLOAT_INPUT, target


@pytest.mark.parametrize("io", ["pixels", "int8"])
def test_metadata_records_the_input_kind(int8_artifacts, io):
    for target in PIXEL_TARGETS:
        if (target, io) not in int8_artifacts:
            continue
        with Segmenter(load_runtime(int8_artifacts[(target, io)])) as segmenter:
            assert segmenter.takes_pixels == (io == "pixels")
            assert segmenter.metadata.input_kind == ("pixels" if io == "pixels" else "normalized")
            if io == "pixels":
                assert np.dtype(segmenter.runtime.input_spec.dtype) == np.uint8


def test_pixel_tflite_input_is_raw_uint8(int8_artifacts):
    with load_runtime(int8_artifacts[("tflite", "pixels")]) as runtime:
        spec = runtime.input_spec
        assert (np.dtype(spec.dtype), spec.scale, spec.zero_point) == (np.uint8, 1.0, 0)
        assert runtime.metadata.source["io_dtype"] == "pixels"


@pytest.mark.parametrize("io", ["pixels", "int8"])
def test_engine_gets_model_size_batch_never_full_frame_float(int8_artifacts, io):
    """A 1080p BGR frame: the engine gets (1, 64, 64, 3) in its own dtype, and predict
    allocates far less than one full-frame float32 array (24 MB)."""
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    spy = SpyRuntime(load_runtime(int8_artifacts[("tflite", io)], threads=2))
    segmenter = Segmenter(spy, upsample="labels")
    segmenter.predict(frame, order="BGR")  # warm: buffers made once
    tracemalloc.start()
    labels = segmenter.predict(frame, order="BGR").labels
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    expected = np.uint8 if io == "pixels" else np.int8
    assert spy.batches and all(b == (np.dtype(expected), (1, 64, 64, 3)) for b in spy.batches)
    assert labels.shape == (1080, 1920)
    assert peak < 1080 * 1920 * 4, f"predict allocated {peak / 1e6:.1f} MB"


@pytest.mark.parametrize(
    "dtype, scale, zero_point",
    [(np.int8, 2 / 255, -1), (np.uint8, 1 / 128, 128), (np.int8, 0.0123, 7), (np.float32, None, None)],
)
def test_input_table_is_the_old_normalise_and_quantise(dtype, scale, zero_point):
    meta = ArtifactMetadata(labels=("a", "b"), input_size=(4, 4), mean=(123.7, 116.3, 103.5),
                            std=(58.4, 57.1, 57.4))
    spec = TensorSpec("x", (1, 4, 4, 3), np.dtype(dtype), scale, zero_point)
    pixels = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    old = normalize(pixels, meta.mean, meta.std).astype(np.float32)
    if scale is not None:
        info = np.iinfo(dtype)
        old = np.clip(np.round(old / scale + zero_point), info.min, info.max).astype(dtype)
    table = input_table(meta, spec)
    assert table.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(table, old)


def test_preprocess_batches_are_the_callers_and_predict_reuses_its_buffer(int8_artifacts, tiny_data):
    """Public `preprocess` gives a new batch each call (callers keep them, e.g. the
    quantization debugger); `predict` writes into one reused buffer."""
    a, b = (np.ascontiguousarray(image) for image in tiny_data[0][:2])
    spy = SpyRuntime(load_runtime(int8_artifacts[("tflite", "pixels")]))
    segmenter = Segmenter(spy)
    first, second = segmenter.preprocess([a])[0], segmenter.preprocess([b])[0]
    np.testing.assert_array_equal(first[0], a)
    np.testing.assert_array_equal(second[0], b)
    seen = []
    spy.run = lambda batch: seen.append(batch) or spy._runtime.run(batch)
    segmenter.predict(a)
    segmenter.predict(b)
    assert seen[0] is seen[1]


def test_raw_pixels_match_rule():
    pascal = ArtifactMetadata(labels=("a",), input_size=(4, 4))  # mean = std = 127.5
    coral = TensorSpec("x", (1, 4, 4, 3), np.dtype(np.uint8), 1 / 128, 128)
    assert raw_pixels_match(pascal, coral)
    assert not raw_pixels_match(pascal, TensorSpec("x", (1, 4, 4, 3), np.dtype(np.uint8), 1 / 64, 128))
    assert not raw_pixels_match(pascal, TensorSpec("x", (1, 4, 4, 3), np.dtype(np.int8), 1 / 128, 0))
    imagenet = pascal.replace(mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4))
    assert not raw_pixels_match(imagenet, coral)


def test_coral_gets_raw_pixels_under_the_preset(shared_dir):
    """PASCAL preset (mean = std = 127.5) on Coral's uint8 model: the pixels go in as they
    are, as Coral's pipeline feeds them; the class map equals the bare interpreter's."""
    anchors = shared_dir / "anchors/pascal"
    from edge_deeplab.imageio import read_image

    image = read_image(anchors / "bird_segmentation.bmp")
    spy = SpyRuntime(load_runtime(anchors / "deeplabv3_mnv2_pascal_quant.tflite", threads=2))
    segmenter = Segmenter(spy, preset="pascal-voc")
    assert segmenter.takes_pixels
    batch, _, _ = segmenter.preprocess([image])
    np.testing.assert_array_equal(batch, image[None])
    labels = segmenter.predict(image).labels
    np.testing.assert_array_equal(labels, spy._runtime.run(image[None])[0].astype(np.uint8))


def test_without_opencv_numpy_resizes(int8_artifacts, tiny_data, monkeypatch):
    """The edge install without OpenCV: numpy resizes in and out, and the class maps are
    those OpenCV's path gives (up to resampling differences at class borders)."""
    image = resize(np.ascontiguousarray(tiny_data[0][0]), (120, 100))  # with OpenCV
    with Segmenter(load_runtime(int8_artifacts[("tflite", "pixels")])) as segmenter:
        with_cv2 = segmenter.predict(image).labels
        monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
        without = segmenter.predict(image).labels
        without_bgr = segmenter.predict(np.ascontiguousarray(image[:, :, ::-1]), order="BGR").labels
    assert without.shape == (120, 100)
    np.testing.assert_array_equal(without, without_bgr)
    assert (without == with_cv2).mean() > 0.95


def test_numpy_resize_matches_opencv_bilinear(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(9, 13, 4)).astype(np.float32)
    ours = cv2.resize(scores, (40, 30), interpolation=cv2.INTER_LINEAR)
    labels = rng.integers(0, 5, (9, 13), dtype=np.uint8)
    nearest = cv2.resize(labels, (40, 30), interpolation=cv2.INTER_NEAREST)
    monkeypatch.setitem(sys.modules, "cv2", None)
    np.testing.assert_allclose(resize(scores, (30, 40)), ours, atol=1e-4)
    np.testing.assert_array_equal(resize(labels, (30, 40), nearest=True), nearest)


def test_reduce_shrink_is_block_averaging_then_close_to_area(shared_dir):
    """The default shrink: exact area averaging at 2x, near it at other factors."""
    cv2 = pytest.importorskip("cv2")
    video = shared_dir / "media" / "one-by-one-person-detection.mp4"
    if not video.is_file():
        pytest.skip(f"{video} is absent (see ../shared/DATA.md)")
    ok, frame = cv2.VideoCapture(str(video)).read()
    assert ok and frame.shape == (432, 768, 3)
    np.testing.assert_array_equal(resize(frame, (216, 384), shrink="reduce"),
                                  cv2.resize(frame, (384, 216), interpolation=cv2.INTER_AREA))
    quarter = resize(frame, (108, 192), shrink="reduce").astype(int)  # halved twice: rounded twice
    assert np.abs(quarter - cv2.resize(frame, (192, 108), interpolation=cv2.INTER_AREA)).max() <= 1

    def psnr_to_area(shrink):
        area = resize(frame, (145, 257), shrink="area").astype(np.float64)
        error = np.mean((resize(frame, (145, 257), shrink=shrink) - area) ** 2)
        return 10 * np.log10(255.0**2 / error)

    assert psnr_to_area("reduce") > psnr_to_area("linear") + 3  # measured 45.7 vs 39.4 dB
    big = cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC)  # a 1080p frame
    area = resize(big, (145, 257), shrink="area").astype(np.float64)
    error = np.mean((resize(big, (145, 257), shrink="reduce") - area) ** 2)
    assert 10 * np.log10(255.0**2 / error) > 44  # measured 47.9 dB (a single 7x box then bilinear: 37.8)


@pytest.mark.parametrize("source, size", [((145, 257), (432, 768)), ((145, 257), (1080, 1920)),
                                          ((64, 64), (65, 300)), ((9, 13), (30, 5)), ((7, 5, 2), (50, 12))])
def test_nearest_enlarge_gives_opencvs_own_pixels(source, size):
    """The class-map upsample (columns, then whole rows repeated) is OpenCV's nearest exactly."""
    cv2 = pytest.importorskip("cv2")
    labels = np.random.default_rng(2).integers(0, 21, source, dtype=np.uint8)
    expected = cv2.resize(labels, size[::-1], interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(resize(labels, size, nearest=True), expected.reshape(*size, *source[2:]))


@pytest.mark.parametrize("opencv", [True, False])
@pytest.mark.parametrize("raw", [True, False])
def test_reused_buffer_equals_a_fresh_write_whatever_the_sizes(raw, opencv, monkeypatch):
    """The reused input buffer keeps its letterbox bands while the region stays and
    repaints them when it moves; every step writes straight into it where it can (also
    into a pillarbox region, which is not contiguous). Each call equals a fresh buffer."""
    from edge_deeplab.data.host_input import InputWriter

    if not opencv:
        monkeypatch.setitem(sys.modules, "cv2", None)
    meta = ArtifactMetadata(labels=("a", "b"), input_size=(32, 32), mean=(120.0, 110.0, 100.0), std=(60.0,) * 3,
                            resize="letterbox")
    spec = TensorSpec("x", (1, 32, 32, 3), np.dtype(np.uint8 if raw else np.float32))
    writer = InputWriter(meta, spec, raw=raw)
    rng = np.random.default_rng(4)
    shapes = [(48, 96), (96, 40), (32, 32), (48, 96), (48, 96), (20, 30), (64, 64)]
    for shape, order in zip(shapes, ["BGR", "RGB", "RGB", "BGR", "RGB", "BGR", "BGR"]):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        reused, placements = writer.write([image], [order], reuse=True)
        fresh, again = InputWriter(meta, spec, raw=raw).write([image], [order])
        assert placements == again
        np.testing.assert_array_equal(reused, fresh, err_msg=f"{shape} {order}")
        top, left, rh, rw = placements[0].region
        assert (top, left) != (0, 0) or shape in [(32, 32), (64, 64)]  # letterbox or pillarbox
        if (rh, rw) != (32, 32):  # the bands are the pad value (black), the region is not
            assert (reused[0, :top] == writer.pad).all() and (reused[0, :, :left] == writer.pad).all()
        rgb = image if order == "RGB" else image[:, :, ::-1]
        expected = resize(np.ascontiguousarray(rgb), (rh, rw))
        region = reused[0, top : top + rh, left : left + rw]
        np.testing.assert_array_equal(region, expected if raw else writer.table[expected, np.arange(3)])

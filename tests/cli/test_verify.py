"""`edge-deeplab verify`: every artifact's embedded self-test, run where it is called."""

from __future__ import annotations

import shutil

import numpy as np
import pytest


@pytest.mark.slow
def test_verify_passes_on_every_converted_artifact(tiny_converted, capsys):
    from edge_deeplab.cli.main import main

    results, _ = tiny_converted
    written = [r for r in results.values() if r.path is not None]
    assert {r.target for r in written} >= {"tflite", "onnx", "openvino"}
    for result in written:
        assert main(["verify", str(result.path)]) == 0, (result.target, result.precision)
        out = capsys.readouterr().out
        assert "input 3: agreement" in out and out.strip().splitlines()[-1].startswith("ok: agreement")


@pytest.mark.slow
def test_verify_fails_on_a_damaged_artifact(tiny_converted, tmp_path, capsys):
    """One weight tensor scaled (the classifier's kernel, sign flipped): the file loads and
    runs, its metadata is intact, and only its class maps give it away."""
    import onnx
    from onnx import numpy_helper

    from edge_deeplab.cli.main import main

    results, _ = tiny_converted
    model = onnx.load(str(results["onnx", "fp32"].path))
    kernels = [t for t in model.graph.initializer if len(t.dims) == 4]
    target = next(t for t in kernels if t.dims[0] == 3)  # the classifier: 3 classes out
    target.CopyFrom(numpy_helper.from_array(-3.0 * numpy_helper.to_array(target), target.name))
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    assert main(["verify", str(damaged)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("FAILED: agreement") and "(bar 99.9%)" in out[-1]
    assert "the engine differed: it was fed the converter's input pixels bit for bit" in out[-2]


def test_verify_names_the_way_out_for_a_model_without_self_test(shared_dir, capsys):
    from edge_deeplab.cli.main import main

    coral = shared_dir / "anchors" / "pascal" / "deeplabv3_mnv2_dm05_pascal_quant.tflite"
    assert main(["verify", str(coral), "--preset", "pascal-voc"]) != 0
    err = capsys.readouterr().err
    assert "carries no self-test" in err and "--reference MODEL" in err


@pytest.mark.slow
def test_verify_against_a_reference_model(tiny_converted, tmp_path, capsys):
    from edge_deeplab.cli.main import main

    results, _ = tiny_converted
    plain = tmp_path / "plain.onnx"  # our artifact without its self-test: compare instead
    shutil.copy(results["onnx", "fp32"].path, plain)
    status = main(["verify", str(plain), "--reference", str(results["tflite", "fp32"].path)])
    out = capsys.readouterr().out
    assert status == 0 and "against" in out and "ok: agreement" in out


class _FakeReference:
    """A Segmenter stand-in: class 2 everywhere, with a 64x64 stretch-resized input."""

    def __init__(self):
        from edge_deeplab.metadata import ArtifactMetadata

        self.metadata = ArtifactMetadata(labels=("a", "b", "c"), input_size=(64, 64))

    def predict_batch(self, images):
        from edge_deeplab.segmenter import SegmentationResult

        return [SegmentationResult(np.full(image.shape[:2], 2, np.uint8)) for image in images]


def test_selftest_round_trip_and_damage():
    from edge_deeplab import selftest
    from edge_deeplab.errors import InvalidInputError

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((200, 100), (40, 60))]
    small = selftest.thumbnails(images)
    assert [s.shape for s in small] == [(96, 48, 3), (40, 60, 3)]
    entry = selftest.build(_FakeReference(), images, 0.97)
    got_images, got_maps, digests = selftest.inputs_and_labels(entry)
    assert all(np.array_equal(a, b) for a, b in zip(got_images, small))
    assert all(np.array_equal(m, np.full(s.shape[:2], 2, np.uint8)) for m, s in zip(got_maps, small))
    assert digests == [selftest.input_digest(s, _FakeReference().metadata) for s in small]
    entry["inputs"][0]["labels"] = entry["inputs"][0]["labels"][:-8]
    with pytest.raises(InvalidInputError, match="self-test in the metadata is damaged"):
        selftest.inputs_and_labels(entry)


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(version=99), "has version 99; this edge-deeplab reads versions 1, 2"),
    (lambda e: e.update(inputs=[]), "holds no inputs"),
    (lambda e: e["inputs"][0].update(shape=[20000, 20000, 3]), "is damaged"),
    (lambda e: e["inputs"][0].update(image=_bomb()), "inflates past .* decompression bomb"),
])
def test_selftest_refuses_unknown_empty_and_inflated_entries(change, message):
    from edge_deeplab import selftest
    from edge_deeplab.errors import InvalidInputError

    entry = selftest.build(_FakeReference(), [np.zeros((64, 64, 3), np.uint8)], 0.97)
    change(entry)
    with pytest.raises(InvalidInputError, match=message):
        selftest.inputs_and_labels(entry)


def _bomb() -> str:
    """64 MB of zeros in 64 KB: decompressed no further than the declared 64x64x3 bytes."""
    import base64
    import zlib

    return base64.b64encode(zlib.compress(bytes(64 << 20), 9)).decode("ascii")


def test_selftest_host_path_is_the_same_with_any_opencv_or_none(monkeypatch):
    """The engine's inputs and the score upsampling never go through OpenCV inside the
    self-test: an OpenCV whose bilinear is one level off (as opencv-python-headless 5.1 on
    aarch64 was), or no OpenCV at all, gives the same digests and the same class maps."""
    import sys

    from edge_deeplab import selftest

    images = [np.random.default_rng(i).integers(0, 255, (48, 80, 3), dtype=np.uint8) for i in range(2)]
    reference = _FakeReference()
    entry = selftest.build(reference, images, 0.97)
    thumbs, _, digests = selftest.inputs_and_labels(entry)

    cv2 = pytest.importorskip("cv2")
    real_resize = cv2.resize
    monkeypatch.setattr(cv2, "resize", lambda *a, **k: np.clip(real_resize(*a, **k).astype(int) + 1, 0, 255)
                        .astype(np.uint8))
    assert [selftest.input_digest(t, reference.metadata) for t in thumbs] == digests
    from edge_deeplab.data.preprocessing import input_pixels  # outside the self-test, the patch bites

    assert not np.array_equal(input_pixels(thumbs[0], reference.metadata)[0],
                              _numpy_pixels(thumbs[0], reference.metadata))
    monkeypatch.setitem(sys.modules, "cv2", None)  # an edge install without OpenCV
    assert [selftest.input_digest(t, reference.metadata) for t in thumbs] == digests


def _numpy_pixels(image, meta):
    from edge_deeplab.data.preprocessing import input_pixels, numpy_only

    with numpy_only():
        return input_pixels(image, meta)[0]

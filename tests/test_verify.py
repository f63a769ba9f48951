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
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("FAILED: agreement") and "(bar 99.9%)" in last


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


def test_selftest_round_trip_and_damage():
    from edge_deeplab import selftest
    from edge_deeplab.errors import InvalidInputError

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in ((200, 100), (40, 60))]
    small = selftest.thumbnails(images)
    assert [s.shape for s in small] == [(96, 48, 3), (40, 60, 3)]
    maps = [np.full(s.shape[:2], 2, np.uint8) for s in small]
    entry = selftest.build(small, maps, 0.97)
    got_images, got_maps = selftest.inputs_and_labels(entry)
    assert all(np.array_equal(a, b) for a, b in zip(got_images, small))
    assert all(np.array_equal(a, b) for a, b in zip(got_maps, maps))
    entry["inputs"][0]["labels"] = entry["inputs"][0]["labels"][:-8]
    with pytest.raises(InvalidInputError, match="self-test in the metadata is damaged"):
        selftest.inputs_and_labels(entry)

"""Importing DeepLab weights from .tflite files: published (TF-slim), quantised, and our own."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from edge_deeplab.config import ModelConfig  # noqa: E402
from edge_deeplab.errors import InvalidInputError, ModelLoadError  # noqa: E402
from edge_deeplab.imageio import read_image  # noqa: E402
from edge_deeplab.model import build_deeplab_v3  # noqa: E402
from edge_deeplab.model.tflite_weights import read_tflite_weights  # noqa: E402
from edge_deeplab.model.weight_import import import_tflite_weights, resolve_model_config  # noqa: E402

FLOAT_257 = "deeplabv3_257_mv_gpu.tflite"
CORAL = "deeplabv3_mnv2_pascal_quant.tflite"


@pytest.fixture(scope="module")
def pascal(shared_dir):
    folder = shared_dir / "anchors" / "pascal"
    if not (folder / FLOAT_257).is_file():
        pytest.skip(f"published models not found in {folder}")
    return folder


def _interpreter_output(path, image: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], image[None])
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0]


def _imported(path, num_classes=21, size=None):
    config = resolve_model_config(ModelConfig(num_classes=num_classes, weights=str(path)))
    config = config.replace(input_size=size or config.input_size)
    return config, build_deeplab_v3(config)


def test_float_257_reproduces_the_tflite_logits(pascal):
    from edge_deeplab.data.preprocessing import resize

    rgb = resize(read_image(pascal / "bird_segmentation.bmp"), (257, 257))
    x = rgb.astype(np.float32) / 127.5 - 1.0  # the published model's normalisation
    config, model = _imported(pascal / FLOAT_257, size=(257, 257))
    assert (config.alpha, config.output_stride, config.head, config.head_filters) == (0.5, 8, "lite", 256)
    assert config.channel_divisor == 1 and config.align_corners
    ours = model(x[None], training=False).numpy()[0]
    theirs = _interpreter_output(pascal / FLOAT_257, x)
    diff = float(np.abs(ours - theirs).max())
    agreement = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
    print(f"float 257 import: max logit difference {diff:.2e}, argmax agreement {agreement:.4%}")
    assert agreement >= 0.995
    assert diff < 1e-3


def test_coral_uint8_dequantised_agrees_with_its_argmax(pascal):
    rgb = read_image(pascal / "bird_segmentation.bmp")  # 513x513: Coral's model size
    config, model = _imported(pascal / CORAL, size=(513, 513))
    assert (config.alpha, config.output_stride, config.head) == (1.0, 16, "lite")
    x = (rgb.astype(np.float32) - 128.0) / 128.0  # the uint8 input's scale and zero point
    ours = model(x[None], training=False).numpy()[0].argmax(-1)
    theirs = _interpreter_output(pascal / CORAL, rgb)
    agreement = float((ours == theirs).mean())
    print(f"Coral uint8 import (float activations): argmax agreement {agreement:.4%}")
    assert agreement >= 0.97


def test_class_count_change_reinitialises_only_the_classifier(pascal):
    file = read_tflite_weights(pascal / FLOAT_257)
    config = resolve_model_config(ModelConfig(num_classes=5, input_size=(65, 65), weights=str(pascal / FLOAT_257)))
    model = build_deeplab_v3(config.replace(weights=None))
    summary = import_tflite_weights(model, config)
    assert summary.reinitialised == [("logits", "5 classes here, 21 in the file")]
    assert len(summary.matched) == len(file.convs) - 1 and not summary.unused
    np.testing.assert_array_equal(model.get_layer("block_7_expand").kernel.numpy(),
                                  file.convs["block_7_expand"].kernel)
    np.testing.assert_array_equal(model.get_layer("block_7_expand_BN").beta.numpy(),
                                  file.convs["block_7_expand"].bias)
    assert model.get_layer("logits").kernel.shape == (1, 1, 256, 5)
    kept = build_deeplab_v3(config.replace(num_classes=21, weights=None))
    assert import_tflite_weights(kept, config.replace(num_classes=21)).reinitialised == []


def test_decoder_on_imported_weights_is_new_and_reported(pascal):
    config = resolve_model_config(ModelConfig(num_classes=21, input_size=(65, 65), decoder=True,
                                              weights=str(pascal / FLOAT_257)), explicit={"decoder"})
    assert config.decoder and config.head == "lite"
    assert resolve_model_config(config) == config  # train() resolves again: the addition stays
    narrow = ModelConfig(num_classes=21, input_size=(65, 65), decoder_filters=32, weights=str(pascal / FLOAT_257))
    assert resolve_model_config(narrow).decoder  # the API: a decoder width asks for a decoder
    model = build_deeplab_v3(config.replace(weights=None))
    summary = import_tflite_weights(model, config)
    new = {layer for layer, why in summary.reinitialised}
    assert new and all(layer.startswith("decoder_") for layer in new)
    assert "concat_projection" not in summary.unused and "logits" in summary.matched


def test_explicit_flag_that_contradicts_the_file_names_both_values(pascal):
    with pytest.raises(InvalidInputError, match=r"output-stride 16 contradicts .* \(output stride 8\)"):
        resolve_model_config(ModelConfig(weights=str(pascal / FLOAT_257)), explicit={"output_stride"})


def test_corrupt_tflite_file_gives_a_load_error(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x00not a flatbuffer" * 100)
    with pytest.raises(ModelLoadError, match="not a TFLite model"):
        read_tflite_weights(bad)


def test_foreign_tflite_model_names_what_is_missing(tmp_path):
    tf = pytest.importorskip("tensorflow")
    import keras

    net = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="stem"),
                            keras.layers.DepthwiseConv2D(3, name="dw")])
    path = tmp_path / "classifier.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(net).convert())
    done = subprocess.run(
        [sys.executable, "-m", "edge_deeplab.cli.main", "train", "--weights", str(path), "--epochs", "1",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert "not a DeepLab model" in message or "not a MobileNetV2 DeepLab" in message
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_our_own_artifacts_import_back(tiny_run, tmp_path):
    """A model we converted (fp32 and int8) imports into the same Keras model it came from."""
    import edge_deeplab as ed
    from edge_deeplab.training.checkpoints import load_checkpoint

    results = ed.convert(tiny_run, targets=["tflite"], precisions=["fp32"], out_dir=tmp_path)
    reference = load_checkpoint(tiny_run / "model.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    for result in results:
        config, model = _imported(result.path, num_classes=3, size=(64, 64))
        assert config.alpha == 0.35 and config.head == "aspp" and not config.align_corners
        diff = np.abs(model(x, training=False).numpy() - reference(x, training=False).numpy()).max()
        assert diff < 1e-4, f"{result.path.name}: {diff}"

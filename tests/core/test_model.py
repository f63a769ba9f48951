"""Output shapes of the DeepLab variants (alpha, output stride, head, decoder)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_deeplab.config import ModelConfig
from edge_deeplab.errors import InvalidInputError

pytest.importorskip("tensorflow")


def _build(**kw):
    from edge_deeplab.model import build_deeplab_v3

    cfg = ModelConfig(
        **{"num_classes": 3, "input_size": (64, 80), "alpha": 0.35, "head_filters": 16, **kw}
    )
    return build_deeplab_v3(cfg)


def _feature_shape(model):
    from edge_deeplab.model import LOGITS

    return tuple(model.get_layer(LOGITS).output.shape[1:3])


@pytest.mark.parametrize(
    "kw",
    [
        {"alpha": 0.35, "output_stride": 16, "head": "aspp", "decoder": False},
        {"alpha": 0.5, "output_stride": 16, "head": "lite", "decoder": False},
        {"alpha": 0.35, "output_stride": 8, "head": "aspp", "decoder": False},
        {"alpha": 0.35, "output_stride": 16, "head": "lite", "decoder": True, "num_classes": 5},
    ],
)
def test_the_model_outputs_float_logits_at_the_input_size(kw):
    model = _build(**kw)
    classes = kw.get("num_classes", 3)
    assert tuple(model.output.shape) == (None, 64, 80, classes)
    out = model(np.zeros((2, 64, 80, 3), np.float32), training=False)
    assert out.shape == (2, 64, 80, classes) and out.dtype.name == "float32"


def test_output_stride_8_doubles_the_feature_map():
    os16 = _feature_shape(_build(output_stride=16, decoder=False))
    os8 = _feature_shape(_build(output_stride=8, decoder=False))
    assert os16 == (4, 5)
    assert os8 == (8, 10)


def test_decoder_logits_are_at_stride_4():
    assert _feature_shape(_build(decoder=True)) == (16, 20)


def test_imagenet_weights_explain_instead_of_downloading():
    with pytest.raises(InvalidInputError, match="download"):
        _build(weights="imagenet")


def test_missing_weights_file(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        _build(weights=str(tmp_path / "nothing.weights.h5"))


def test_bn_momentum_is_applied():
    from edge_deeplab.model import build_deeplab_v3

    model = build_deeplab_v3(
        ModelConfig(
            num_classes=2, input_size=(32, 32), bn_momentum=0.8, decoder=False, head_filters=8
        )
    )
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert bns and all(abs(layer.momentum - 0.8) < 1e-9 for layer in bns)

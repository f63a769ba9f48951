"""Golden tests of Segmenter's pre/post-processing with hand-made arrays and a fake engine.

The fake Runtime records the batch it is given and returns an output the test builds by
hand, so every expected value below is computed on paper, not by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_deeplab.errors import InvalidInputError
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runtimes.base import Runtime, TensorSpec
from edge_deeplab.segmenter import Segmenter


class FakeRuntime(Runtime):
    """A Runtime whose output is `make_output(batch)`; it remembers every batch it ran."""

    name = "fake"
    extra = "none"

    def __init__(self, path, in_spec: TensorSpec, out_spec: TensorSpec, make_output, metadata=None):
        super().__init__(path)
        self._in, self._out, self._make, self._meta = in_spec, out_spec, make_output, metadata
        self.batches = []

    @property
    def input_spec(self):
        return self._in

    @property
    def output_spec(self):
        return self._out

    @property
    def metadata(self):
        return self._meta

    def run(self, batch):
        self.batches.append(batch.copy())
        return self._make(batch)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "fake.bin"
    path.write_bytes(b"fake")
    return path


def meta(size=(16, 16), classes=3, **kw) -> ArtifactMetadata:
    return ArtifactMetadata(labels=tuple(f"c{i}" for i in range(classes)), input_size=size, **kw)


def f32(shape):
    return TensorSpec("x", shape, np.dtype(np.float32))


def onehot_logits(labels: np.ndarray, classes: int, high: float = 4.0) -> np.ndarray:
    """(N, H, W) class map -> (N, H, W, C) logits with `high` at the class, 0 elsewhere."""
    return (np.eye(classes, dtype=np.float32)[labels] * high).astype(np.float32)


def test_normalisation_per_channel(model_file):
    m = meta(mean=(100.0, 50.0, 0.0), std=(50.0, 25.0, 10.0))
    rt = FakeRuntime(
        model_file,
        f32((1, 16, 16, 3)),
        f32((1, 16, 16, 3)),
        lambda b: np.zeros((1, 16, 16, 3), np.float32),
    )
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 20
    Segmenter(rt, m).predict(image)
    x = rt.batches[0]
    assert x.dtype == np.float32 and x.shape == (1, 16, 16, 3)
    np.testing.assert_allclose(
        x[0, 0, 0], [(200 - 100) / 50, (100 - 50) / 25, (20 - 0) / 10], rtol=1e-6
    )


def test_bgr_input_is_reordered(model_file):
    rt = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        f32((1, 8, 8, 2)),
        lambda b: np.zeros((1, 8, 8, 2), np.float32),
    )
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 255, 0  # blue full, red zero
    Segmenter(rt, meta((8, 8), 2)).predict(bgr, order="BGR")
    np.testing.assert_allclose(rt.batches[0][0, 0, 0], [-1.0, -1.0, 1.0], atol=1e-6)  # R, G, B


def test_stretch_resize_and_full_logits(model_file):
    """A 32x64 image stretched into 16x16; logits say class 1 left, 2 right -> same at 32x64."""

    def out(batch):
        labels = np.zeros((1, 16, 16), np.int64)
        labels[:, :, :8], labels[:, :, 8:] = 1, 2
        return onehot_logits(labels, 3)

    rt = FakeRuntime(model_file, f32((1, 16, 16, 3)), f32((1, 16, 16, 3)), out)
    result = Segmenter(rt, meta()).predict(np.full((32, 64, 3), 90, np.uint8))
    assert rt.batches[0].shape == (1, 16, 16, 3)
    assert result.labels.shape == (32, 64) and result.labels.dtype == np.uint8
    assert (result.labels[:, :30] == 1).all() and (result.labels[:, 34:] == 2).all()


def test_letterbox_pads_with_normalised_black_and_crops_it_back(model_file):
    """A 32x64 image letterboxed into 32x32 sits in rows 8..23; padding rows are black."""

    def out(batch):
        labels = np.full((1, 32, 32), 2, np.int64)  # class 2 in the padding
        labels[:, 8:24, :] = 1  # class 1 on the image
        return onehot_logits(labels, 3)

    rt = FakeRuntime(model_file, f32((1, 32, 32, 3)), f32((1, 32, 32, 3)), out)
    m = meta((32, 32), resize="letterbox")
    result = Segmenter(rt, m).predict(np.full((32, 64, 3), 255, np.uint8))
    x = rt.batches[0][0]
    np.testing.assert_allclose(x[:8], -1.0)  # black = (0 - 127.5) / 127.5
    np.testing.assert_allclose(x[24:], -1.0)
    np.testing.assert_allclose(x[8:24], 1.0)  # white image
    assert result.labels.shape == (32, 64)
    assert (result.labels == 1).all(), "letterbox padding leaked into the class map"


@pytest.mark.parametrize(
    "dtype,scale,zero,pixels,expected",
    [
        # int8, scale 1/128, zero 0: x = (p - 127.5) / 127.5; q = round(x * 128), clipped
        # (64 -> -0.498 -> -63.75 -> -64).
        (np.int8, 1 / 128, 0, [0, 255, 64], [-128, 127, -64]),
        # uint8 like Coral's models: scale 1/128, zero point 128.
        (np.uint8, 1 / 128, 128, [0, 255, 64], [0, 255, 64]),
    ],
)
def test_input_is_quantised_with_the_tensors_scale_and_zero_point(model_file, dtype, scale, zero, pixels, expected):
    spec = TensorSpec("x", (1, 1, 3, 3), np.dtype(dtype), scale, zero)
    rt = FakeRuntime(
        model_file, spec, f32((1, 1, 3, 2)), lambda b: np.zeros((1, 1, 3, 2), np.float32)
    )
    seg = Segmenter(rt, meta((1, 3), 2))
    x = (np.asarray(pixels, np.float32)[None, :, None].repeat(3, axis=2) - 127.5) / 127.5
    q = seg.quantize_input(x[None])
    assert q.dtype == dtype
    np.testing.assert_array_equal(q[0, 0, :, 0], expected)


def test_output_dequantisation_and_probabilities(model_file):
    """int8 scores with scale 0.5, zero point -10: real = 0.5 * (q + 10)."""
    q = np.array([[[[-10, -6, -8]]]], np.int8)  # real scores 0, 2, 1
    out_spec = TensorSpec("y", (1, 1, 1, 3), np.dtype(np.int8), 0.5, -10)
    rt = FakeRuntime(model_file, f32((1, 1, 1, 3)), out_spec, lambda b: q)
    seg = Segmenter(rt, meta((1, 1), 3))
    np.testing.assert_allclose(seg.dequantize_output(q[0]), [[[0.0, 2.0, 1.0]]])
    result = seg.predict(np.zeros((4, 4, 3), np.uint8), probabilities=True)
    expected = np.exp([0.0, 2.0, 1.0]) / np.exp([0.0, 2.0, 1.0]).sum()
    assert (result.labels == 1).all()
    np.testing.assert_allclose(result.probabilities[2, 2], expected, rtol=1e-5)
    np.testing.assert_allclose(result.probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_low_resolution_logits_are_upsampled(model_file):
    """16x16 input, 4x4 logits (class 1 in the left two columns, 0 right) -> 40x40 class map."""

    def out(batch):
        labels = np.zeros((1, 4, 4), np.int64)
        labels[:, :, :2] = 1
        return onehot_logits(labels, 2)

    rt = FakeRuntime(model_file, f32((1, 16, 16, 3)), f32((1, 4, 4, 2)), out)
    seg = Segmenter(rt, labels=("a", "b"))
    assert seg.metadata.output_resolution == "feature" and seg.metadata.head == "logits"
    labels = seg.predict(np.zeros((40, 40, 3), np.uint8)).labels
    assert labels.shape == (40, 40)
    assert (labels[:, :18] == 1).all() and (labels[:, 22:] == 0).all()


@pytest.mark.parametrize(
    "shape,dtype", [((1, 8, 8), np.int64), ((1, 8, 8), np.uint8), ((1, 8, 8, 1), np.int32)]
)
def test_argmax_map_output(model_file, shape, dtype):
    """An in-graph ArgMax (Coral: int64 (N, H, W)) is resized nearest to the image size."""

    def out(batch):
        labels = np.zeros(shape, dtype)
        labels[:, 4:] = 7  # bottom half is class 7
        return labels

    rt = FakeRuntime(model_file, f32((1, 8, 8, 3)), TensorSpec("y", shape, np.dtype(dtype)), out)
    seg = Segmenter(rt, labels=[f"c{i}" for i in range(8)])
    assert seg.metadata.head == "argmax", "an integer class map must be detected as argmax"
    result = seg.predict(np.zeros((16, 24, 3), np.uint8), probabilities=True)
    assert result.labels.shape == (16, 24) and result.labels.dtype == np.uint8
    assert (result.labels[:8] == 0).all() and (result.labels[8:] == 7).all()
    assert result.probabilities is None  # a class map has no scores


def test_head_kind_detected_from_tensors(model_file):
    coral = FakeRuntime(
        model_file,
        TensorSpec("x", (1, 8, 8, 3), np.dtype(np.uint8), 1 / 128, 128),
        TensorSpec("y", (1, 8, 8), np.dtype(np.int64)),
        None,
    )
    assert Segmenter(coral, preset="pascal-voc").metadata.head == "argmax"
    quant_scores = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        TensorSpec("y", (1, 8, 8, 21), np.dtype(np.uint8), 0.1, 0),
        None,
    )
    assert Segmenter(quant_scores, preset="pascal-voc").metadata.head == "logits"


def test_batch_of_different_sizes(model_file):
    """Dynamic batch: one engine call for 3 images; each result at its own size."""

    def out(batch):
        # class = 1 where the (normalised) red channel is positive, else 0
        return onehot_logits((batch[..., 0] > 0).astype(np.int64), 2)

    rt = FakeRuntime(model_file, f32((None, 8, 8, 3)), f32((None, 8, 8, 2)), out)
    images = [
        np.full((10, 12, 3), 250, np.uint8),
        np.zeros((20, 6, 3), np.uint8),
        np.full((8, 8, 3), 200, np.uint8),
    ]
    results = Segmenter(rt, meta((8, 8), 2)).predict_batch(images)
    assert len(rt.batches) == 1 and rt.batches[0].shape == (3, 8, 8, 3)
    assert [r.labels.shape for r in results] == [(10, 12), (20, 6), (8, 8)]
    assert (
        (results[0].labels == 1).all()
        and (results[1].labels == 0).all()
        and (results[2].labels == 1).all()
    )


def test_batch_split_when_model_takes_one(model_file):
    rt = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        f32((1, 8, 8, 2)),
        lambda b: np.zeros((1, 8, 8, 2), np.float32),
    )
    results = Segmenter(rt, meta((8, 8), 2)).predict_batch([np.zeros((8, 8, 3), np.uint8)] * 3)
    assert len(rt.batches) == 3 and len(results) == 3


def test_timings_are_reported(model_file):
    rt = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        f32((1, 8, 8, 2)),
        lambda b: np.zeros((1, 8, 8, 2), np.float32),
    )
    timings = Segmenter(rt, meta((8, 8), 2)).predict(np.zeros((8, 8, 3), np.uint8)).timings
    assert set(timings) == {"preprocess", "infer", "postprocess"} and all(
        v >= 0 for v in timings.values()
    )


def test_model_without_image_input_is_refused(model_file):
    rt = FakeRuntime(model_file, f32((1, 10)), f32((1, 3)), None)
    with pytest.raises(InvalidInputError, match="image tensor"):
        Segmenter(rt, labels=("a", "b", "c"))


def test_foreign_model_needs_preset_or_labels(model_file):
    rt = FakeRuntime(model_file, f32((1, 8, 8, 3)), f32((1, 8, 8, 21)), None)
    with pytest.raises(InvalidInputError, match="--preset"):
        Segmenter(rt)


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((1, 1, 3), np.uint8), "too small"),
        (np.zeros((8, 8, 3), np.uint16), "uint8"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
    ],
)
def test_bad_images_are_refused(model_file, image, message):
    rt = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        f32((1, 8, 8, 2)),
        lambda b: np.zeros((1, 8, 8, 2), np.float32),
    )
    with pytest.raises(InvalidInputError, match=message):
        Segmenter(rt, meta((8, 8), 2)).predict(image)


def test_grayscale_and_rgba_are_accepted(model_file):
    rt = FakeRuntime(
        model_file,
        f32((1, 8, 8, 3)),
        f32((1, 8, 8, 2)),
        lambda b: np.zeros((1, 8, 8, 2), np.float32),
    )
    seg = Segmenter(rt, meta((8, 8), 2))
    assert seg.predict(np.full((8, 8), 255, np.uint8)).labels.shape == (8, 8)
    assert seg.predict(np.full((8, 8, 4), 255, np.uint8)).labels.shape == (8, 8)
    np.testing.assert_allclose(rt.batches[0], 1.0)  # grey 255 -> all channels 1.0


def test_label_count_must_match_logits_channels():
    from edge_deeplab.errors import InvalidInputError
    from edge_deeplab.runtimes.base import Runtime, TensorSpec
    from edge_deeplab.segmenter import Segmenter

    class ThreeClassLogits(Runtime):
        name = "fake3"

        def __init__(self):
            self.path = "three.tflite"

        input_spec = TensorSpec("image", (1, 32, 32, 3), np.dtype(np.float32))
        output_spec = TensorSpec("logits", (1, 32, 32, 3), np.dtype(np.float32))

        def run(self, batch):
            return np.zeros((batch.shape[0], 32, 32, 3), np.float32)

    with pytest.raises(InvalidInputError, match="3 class scores but 21 labels"):
        Segmenter(ThreeClassLogits(), preset="pascal-voc")

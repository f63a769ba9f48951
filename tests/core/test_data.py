"""Synthetic dataset determinism, dataset formats, the tf.data pipeline and calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_deeplab.config import AugmentConfig, DataConfig
from edge_deeplab.data import synthetic
from edge_deeplab.data.datasets import DATASETS, load_dataset
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.imageio import write_image
from edge_deeplab.metadata import ArtifactMetadata


def test_synthetic_is_deterministic_per_seed():
    a_img, a_mask = synthetic.generate(6, size=(48, 64), seed=3, num_classes=5)
    b_img, b_mask = synthetic.generate(6, size=(48, 64), seed=3, num_classes=5)
    assert a_img.dtype == np.uint8 and a_img.shape == (6, 48, 64, 3)
    assert a_mask.dtype == np.uint8 and a_mask.shape == (6, 48, 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = synthetic.generate(6, size=(48, 64), seed=4, num_classes=5)
    assert not np.array_equal(a_img, c_img)


def test_synthetic_image_does_not_depend_on_n():
    few, few_masks = synthetic.generate(2, seed=1)
    many, many_masks = synthetic.generate(5, seed=1)
    assert np.array_equal(few, many[:2]) and np.array_equal(few_masks, many_masks[:2])


def test_synthetic_classes_and_labels():
    _, masks = synthetic.generate(24, size=(64, 64), seed=0, num_classes=4)
    assert set(np.unique(masks)) == {0, 1, 2, 3}
    assert synthetic.labels(4) == ("background", "disk", "box", "triangle")
    with pytest.raises(InvalidInputError, match="num_classes"):
        synthetic.generate(1, num_classes=99)


def test_synthetic_objects_are_not_flat_colour():
    """A class is not one colour: the same class has different mean colours across images."""
    images, masks = synthetic.generate(12, size=(64, 64), seed=0, num_classes=2)
    means = [images[i][masks[i] == 1].mean(0) for i in range(12) if (masks[i] == 1).sum() > 50]
    assert np.std(np.stack(means), axis=0).mean() > 20
    inside = [
        images[i][masks[i] == 1].std(0).mean() for i in range(12) if (masks[i] == 1).sum() > 50
    ]
    assert np.mean(inside) > 15  # textured, not flat


def test_registry_and_synthetic_dataset_splits():
    assert {"synthetic", "folder", "voc"} <= set(DATASETS.names())
    cfg = DataConfig(synthetic_train=4, synthetic_val=3, synthetic_size=(32, 32))
    train, val = load_dataset(cfg, "train"), load_dataset(cfg, "val")
    assert len(train) == 4 and len(val) == 3 and train.num_classes == 4
    assert not np.array_equal(train[0][0], val[0][0])
    with pytest.raises(InvalidInputError, match="split"):
        load_dataset(cfg, "test")


def _folder(root, split_layout: str, n=3, size=(40, 50)):
    images, masks = synthetic.generate(n, size=size, seed=0, num_classes=3)
    if split_layout == "camvid":
        img_dir, mask_dir = root / "train", root / "trainannot"
    else:
        img_dir, mask_dir = root / "train" / "images", root / "train" / "masks"
    for i in range(n):
        write_image(img_dir / f"{i:03d}.png", images[i])
        write_image(mask_dir / f"{i:03d}.png", masks[i])
    return images, masks


@pytest.mark.parametrize("layout", ["camvid", "images_masks"])
def test_folder_format_round_trip(tmp_path, layout):
    images, masks = _folder(tmp_path, layout)
    ds = load_dataset(DataConfig(format="folder", path=str(tmp_path), num_classes=3), "train")
    assert len(ds) == 3 and ds.names == ["000", "001", "002"]
    assert np.array_equal(ds[1][0], images[1]) and np.array_equal(ds[1][1], masks[1])


def test_voc_format_reads_palette_masks(tmp_path):
    from PIL import Image

    from edge_deeplab.metadata import voc_palette

    images, masks = synthetic.generate(2, size=(32, 40), seed=0, num_classes=3)
    masks[0][:2] = 255  # VOC's object border = ignore
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")
    (tmp_path / "SegmentationClass").mkdir()
    for name, image, mask in zip("ab", images, masks):
        write_image(tmp_path / "JPEGImages" / f"{name}.jpg", image)
        pil = Image.fromarray(mask, "P")
        pil.putpalette([c for colour in voc_palette(256) for c in colour])
        pil.save(tmp_path / "SegmentationClass" / f"{name}.png")
    ds = load_dataset(DataConfig(format="voc", path=str(tmp_path)), "val")
    assert ds.num_classes == 21 and ds.labels[15] == "person"
    assert np.array_equal(ds[0][1], masks[0]) and ds.ignore_label == 255


def _meta(size=(48, 56), classes=4):
    return ArtifactMetadata(labels=synthetic.labels(classes), input_size=size)


def test_train_pipeline_dtypes_shapes_and_padding():
    pytest.importorskip("tensorflow")
    from edge_deeplab.data.pipeline import train_pipeline

    ds = load_dataset(
        DataConfig(synthetic_train=8, synthetic_size=(48, 56), ignore_label=200), "train"
    )
    # Scales < 1 shrink the image below the input size: the padding must carry the ignore label
    # (and stay the mean pixel, blurred or not).
    augment = AugmentConfig(scale_range=(0.5, 0.6), blur=1.0)
    x, y = next(iter(train_pipeline(ds, _meta(), batch_size=4, augment=augment)))
    assert x.shape == (4, 48, 56, 3) and x.dtype.name == "float32"
    assert y.shape == (4, 48, 56) and y.dtype.name == "int32"
    values = set(np.unique(y.numpy()).tolist())
    assert 200 in values and values <= {0, 1, 2, 3, 200}
    x = x.numpy()
    assert -1.0001 <= x.min() and x.max() <= 1.0001
    pad = y.numpy() == 200
    assert np.allclose(x[pad], 0.0, atol=1e-5)  # mean pixel, normalised


def test_blur_softens_edges_keeps_flat_colour_and_is_off_at_probability_0():
    tf = pytest.importorskip("tensorflow")
    from edge_deeplab.data.pipeline import _blur

    edge = np.zeros((32, 40, 3), np.float32)
    edge[:, 20:] = 255.0
    out = _blur(tf, tf.constant(edge), AugmentConfig(blur=1.0, blur_sigma=(1.5, 1.5))).numpy()
    row = out[16, :, 0]
    assert out.shape == edge.shape and np.all(np.diff(row) >= -1e-3)  # a ramp, no ringing
    assert 50 < row[19] < 128 < row[20] < 205  # the step is spread over the pixels beside it
    assert np.allclose(row[:14], 0, atol=1e-3) and np.allclose(row[26:], 255, atol=1e-3)  # 3 sigma away
    flat = np.full((32, 40, 3), 100.0, np.float32)
    assert np.allclose(_blur(tf, tf.constant(flat), AugmentConfig(blur=1.0)).numpy(), 100.0, atol=1e-3)
    never = _blur(tf, tf.constant(edge), AugmentConfig(blur=0.0, blur_sigma=(1.5, 1.5))).numpy()
    assert np.array_equal(never, edge)


def test_augment_config_checks_blur_and_reads_its_json_lists_back():
    with pytest.raises(InvalidInputError, match="probability"):
        AugmentConfig(blur=1.5)
    with pytest.raises(InvalidInputError, match="blur_sigma"):
        AugmentConfig(blur_sigma=(0.0, 1.0))
    config = AugmentConfig(blur=0.5, blur_sigma=(1, 2))
    assert AugmentConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_val_arrays_use_the_shared_preprocessing():
    from edge_deeplab.data.pipeline import val_arrays
    from edge_deeplab.data.preprocessing import preprocess

    ds = load_dataset(DataConfig(synthetic_val=3, synthetic_size=(40, 40)), "val")
    meta = _meta(size=(32, 48))
    x, y = val_arrays(ds, meta)
    assert x.shape == (3, 32, 48, 3) and y.shape == (3, 32, 48) and y.dtype == np.int32
    assert np.array_equal(x[2], preprocess(ds[2][0], meta)[0])


def test_calibration_batches_are_normalised_float32_at_the_model_size(tmp_path):
    from edge_deeplab.data.calibration import calibration_batches

    meta = _meta(size=(32, 32))
    batch = calibration_batches("synthetic", meta, 5)
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.float32
    _folder(tmp_path, "camvid", n=4)
    batch = calibration_batches(tmp_path, meta, 3)
    assert batch.shape == (3, 32, 32, 3)  # masks in trainannot/ are skipped, 4 images sampled to 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no images"):
        calibration_batches(tmp_path / "empty", meta, 3)


def test_calibration_stays_uint8_pixels_until_a_target_needs_floats():
    """The job keeps the calibration images as uint8 pixels; the normalised floats are
    derived from them, and the pixel-input targets get the pixels (first image spanning
    0..255) without a normalise / un-normalise round trip."""
    from types import SimpleNamespace

    from edge_deeplab.converters.job import ConversionJob
    from edge_deeplab.data.calibration import calibration_batches, calibration_pixels
    from edge_deeplab.data.preprocessing import input_pixels, preprocess

    meta = _meta(size=(32, 48))
    pixels = calibration_pixels("synthetic", meta, 4)
    assert pixels.dtype == np.uint8 and pixels.shape == (4, 32, 48, 3)
    assert np.array_equal(calibration_batches("synthetic", meta, 4), np.stack(
        [preprocess(p, meta)[0] for p in pixels]))  # the same THE preprocessing, at input size
    wide = np.full((20, 60, 3), 200, np.uint8)  # letterboxed: black bands, normalised like black
    assert input_pixels(wide, meta.replace(resize="letterbox"))[0][0, 0].tolist() == [0, 0, 0]
    original = pixels.copy()
    job = ConversionJob(SimpleNamespace(metadata=meta), Path("."), lambda: pixels, print, "pixels")
    fed = job.pixel_calibration()
    assert fed.dtype == np.uint8 and fed[0, 0, 0].tolist() == [0, 0, 0] and fed[0, 0, -1].tolist() == [255] * 3
    assert np.array_equal(fed[1:], original[1:]) and np.array_equal(fed[0, 1:], original[0, 1:])
    assert np.array_equal(job.calibration_pixels(), original), "the cached pixels are not touched"
    assert np.allclose(job.calibration() * np.asarray(meta.std) + np.asarray(meta.mean), pixels, atol=1e-3)


def test_train_pipeline_with_images_of_different_sizes():
    pytest.importorskip("tensorflow")
    from edge_deeplab.data.datasets import SegDataset
    from edge_deeplab.data.pipeline import train_pipeline

    images, masks = [], []
    for i, size in enumerate([(30, 40), (50, 36), (44, 44), (64, 20)]):
        image, mask = synthetic.generate(1, size=(max(size[0], 16), max(size[1], 16)), seed=i)
        images.append(image[0])
        masks.append(mask[0])
    ds = SegDataset(images, masks, synthetic.labels(4), ignore_label=255)
    assert ds.same_size() is None
    x, y = next(
        iter(train_pipeline(ds, _meta(size=(32, 32)), batch_size=4, augment=AugmentConfig()))
    )
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 32, 32)
    assert set(np.unique(y.numpy()).tolist()) <= {0, 1, 2, 3, 255}

"""Every bad dataset input gives a one-line InvalidInputError naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from edge_deeplab.config import DataConfig
from edge_deeplab.data.datasets import load_dataset
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.imageio import write_image

cv2 = pytest.importorskip("cv2")


def _dataset(root, n=2, size=(24, 32)):
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(root / "train" / f"im{i}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        write_image(root / "trainannot" / f"im{i}.png", rng.integers(0, 3, size, dtype=np.uint8))
    return root


def _load(root, **kw):
    return load_dataset(DataConfig(format="folder", path=str(root), num_classes=3, **kw), "train")


def _error(root, **kw) -> str:
    with pytest.raises(InvalidInputError) as info:
        _load(root, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_dataset_loads(tmp_path):
    assert len(_load(_dataset(tmp_path))) == 2


def test_a_truncated_png_is_named_in_one_line(tmp_path):
    root = _dataset(tmp_path)
    path = root / "train" / "im1.png"
    path.write_bytes(path.read_bytes()[:60])
    assert "im1.png" in _error(root)


def test_a_truncated_jpeg_is_named_in_one_line(tmp_path):
    root = _dataset(tmp_path)
    (root / "train" / "im1.png").unlink()
    write_image(root / "train" / "im1.jpg", np.full((24, 32, 3), 99, np.uint8))
    data = (root / "train" / "im1.jpg").read_bytes()
    (root / "train" / "im1.jpg").write_bytes(data[: len(data) // 2])
    assert "im1.jpg" in _error(root) and "truncated" in _error(root)


def test_not_an_image(tmp_path):
    root = _dataset(tmp_path)
    (root / "train" / "im0.png").write_bytes(b"this is not a png at all")
    assert "im0.png" in _error(root)


def test_mask_size_differs_from_image(tmp_path):
    root = _dataset(tmp_path)
    write_image(root / "trainannot" / "im0.png", np.zeros((20, 32), np.uint8))
    message = _error(root)
    assert "im0.png" in message and "32x20" in message and "32x24" in message


def test_label_out_of_range(tmp_path):
    root = _dataset(tmp_path)
    mask = np.zeros((24, 32), np.uint8)
    mask[0, 0] = 7
    write_image(root / "trainannot" / "im1.png", mask)
    message = _error(root)
    assert "im1.png" in message and "7" in message and "0..2" in message


def test_ignore_label_is_allowed(tmp_path):
    root = _dataset(tmp_path)
    mask = np.zeros((24, 32), np.uint8)
    mask[0, 0] = 11
    write_image(root / "trainannot" / "im1.png", mask)
    assert len(_load(root, ignore_label=11)) == 2
    assert "11" in _error(root)  # with the default ignore label 255, 11 is out of range


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    assert "no images" in _error(tmp_path)
    assert "no such folder" in _error(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    assert "no 'train' split" in _error(other)


def test_image_without_mask_is_not_skipped(tmp_path):
    root = _dataset(tmp_path)
    (root / "trainannot" / "im1.png").unlink()
    assert "im1.png" in _error(root) and "no mask" in _error(root)


def test_16_bit_image(tmp_path):
    root = _dataset(tmp_path)
    cv2.imwrite(str(root / "train" / "im0.png"), np.full((24, 32, 3), 40000, np.uint16))
    message = _error(root)
    assert "im0.png" in message and "16" in message


def test_colour_mask_is_refused(tmp_path):
    root = _dataset(tmp_path)
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[..., 0] = 128
    write_image(root / "trainannot" / "im0.png", rgb)
    message = _error(root)
    assert "im0.png" in message and "colour" in message


def test_grayscale_and_rgba_images_are_converted(tmp_path):
    root = _dataset(tmp_path)
    cv2.imwrite(str(root / "train" / "im0.png"), np.full((24, 32), 77, np.uint8))
    cv2.imwrite(str(root / "train" / "im1.png"), np.full((24, 32, 4), 200, np.uint8))
    ds = _load(root)
    assert ds[0][0].shape == (24, 32, 3) and (ds[0][0] == 77).all()
    assert ds[1][0].shape == (24, 32, 3) and (ds[1][0] == 200).all()


def test_folder_needs_class_count(tmp_path):
    root = _dataset(tmp_path)
    with pytest.raises(InvalidInputError, match="--num-classes"):
        load_dataset(DataConfig(format="folder", path=str(root)), "train")


def test_voc_missing_split_list(tmp_path):
    with pytest.raises(InvalidInputError, match="val.txt"):
        load_dataset(DataConfig(format="voc", path=str(tmp_path)), "val")

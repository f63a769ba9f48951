"""Metrics against hand-computed confusion matrices, and evaluate() over a Segmenter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge_deeplab.errors import InvalidInputError
from edge_deeplab.evaluation import EvalResult, evaluate
from edge_deeplab.evaluation.metrics import (
    confusion_matrix,
    iou_per_class,
    miou_from_confusion,
    pixel_accuracy,
)
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.runtimes.base import TensorSpec
from edge_deeplab.segmenter import Segmenter


def test_confusion_matrix_by_hand():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = confusion_matrix(pred, target, 3, ignore_label=255)
    # rows: ground truth, columns: prediction; the 255 pixel is not counted
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert pixel_accuracy(cm) == pytest.approx(3 / 5)
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 0 / (1 + 0) = 0
    assert iou_per_class(cm).tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert miou_from_confusion(cm) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_classes_absent_from_both_are_left_out_of_the_mean():
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 0])
    cm = confusion_matrix(pred, target, 4)
    ious = iou_per_class(cm)
    assert math.isnan(ious[2]) and math.isnan(ious[3])
    assert miou_from_confusion(cm) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_predicted_but_absent_class_counts_as_zero():
    cm = confusion_matrix(np.array([2, 0]), np.array([0, 0]), 3)
    assert miou_from_confusion(cm) == pytest.approx((0.5 + 0.0) / 2)


def test_confusion_rejects_bad_values():
    with pytest.raises(InvalidInputError, match="shape"):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(InvalidInputError, match="ground truth"):
        confusion_matrix(np.zeros(2), np.array([0, 5]), 2)


class _OracleRuntime:
    """A fake engine whose logits come from a lookup of the image's first pixel."""

    path = "oracle"
    metadata = None

    def __init__(self, table, size, classes, argmax=False):
        self.table = table
        self.input_spec = TensorSpec("image", (None, *size, 3), np.dtype(np.float32))
        shape = (None, *size) if argmax else (None, *size, classes)
        self.output_spec = TensorSpec("out", shape, np.dtype(np.int64 if argmax else np.float32))
        self.argmax = argmax

    def run(self, batch):
        out = np.stack([self.table[round(float(x[0, 0, 0]), 3)] for x in batch])
        return out.argmax(-1) if self.argmax else out

    def close(self):
        pass


def _setup(argmax=False):
    """Two 8x8 images whose 'model' output is fixed logits; one right, one half wrong."""
    size, classes = (8, 8), 2
    meta = ArtifactMetadata(
        labels=("bg", "fg"), input_size=size, head="argmax" if argmax else "logits"
    )
    img_a = np.full((8, 8, 3), 0, np.uint8)
    img_b = np.full((8, 8, 3), 255, np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 1
    right = np.zeros((8, 8, 2), np.float32)
    right[:, :4, 0], right[:, 4:, 1] = 5, 5
    wrong = np.zeros((8, 8, 2), np.float32)
    wrong[:, :, 0] = 5
    table = {-1.0: right, 1.0: wrong}
    seg = Segmenter(_OracleRuntime(table, size, classes, argmax), meta)
    return seg, [(img_a, mask), (img_b, mask)]


def test_evaluate_scores_a_segmenter():
    seg, data = _setup()
    result = evaluate(seg, data)
    assert isinstance(result, EvalResult) and result.num_images == 2
    assert result.confusion.tolist() == [[64, 0], [32, 32]]
    assert result.pixel_accuracy == pytest.approx(96 / 128)
    assert result.per_class_iou["bg"] == pytest.approx(64 / 96)
    assert result.per_class_iou["fg"] == pytest.approx(32 / 64)
    d = json.loads(json.dumps(result.to_dict()))
    assert {"miou", "pixel_accuracy", "per_class_iou", "num_images", "confusion"} <= set(d)
    assert evaluate(seg, data, limit=1).miou == pytest.approx(1.0)


def test_multiscale_and_flip_average_probabilities():
    seg, data = _setup()
    result = evaluate(seg, data[:1], scales=(1.0,), flip=True)
    # Mirroring the 'right' logits and averaging them with the unmirrored ones gives a tie
    # everywhere: argmax takes class 0, so fg is lost; this shows the flip was really averaged.
    assert result.confusion.tolist() == [[32, 0], [32, 0]]
    result = evaluate(seg, data[:1], scales=(0.5, 1.0))
    assert result.miou == pytest.approx(1.0)


def test_argmax_models_refuse_multiscale():
    seg, data = _setup(argmax=True)
    assert evaluate(seg, data).confusion.tolist() == [[64, 0], [32, 32]]
    with pytest.raises(InvalidInputError, match="class map"):
        evaluate(seg, data, flip=True)
    with pytest.raises(InvalidInputError, match="empty"):
        evaluate(seg, [])


def test_eval_cli_on_a_run_folder(tiny_run, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from edge_deeplab.cli.main import main

    out = tmp_path / "eval.json"
    args = ["eval", str(tiny_run), "--data", "synthetic", "--limit", "6", "--json", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "background" in printed
    data = json.loads(out.read_text())
    assert data["num_images"] == 6 and 0.0 <= data["miou"] <= 1.0
    assert set(data["per_class_iou"]) == {"background", "disk", "box"}
    assert np.asarray(data["confusion"]).shape == (3, 3)
    multi = tmp_path / "multi.json"
    args = [
        "eval",
        str(tiny_run),
        "--limit",
        "2",
        "--scales",
        "0.75,1",
        "--flip",
        "--json",
        str(multi),
    ]
    assert main(args) == 0
    assert json.loads(multi.read_text())["scales"] == [0.75, 1.0]


@pytest.mark.parametrize("scales", [(float("nan"),), (float("inf"),), (1e6,), (0.0,), (1.0, -0.5), ()])
def test_absurd_scales_are_refused_before_any_work(scales):
    from edge_deeplab.errors import InvalidInputError
    from edge_deeplab.evaluation import evaluate

    with pytest.raises(InvalidInputError, match="scales must be numbers from 0.1 to 4"):
        evaluate(None, [], scales=scales)

"""The budgets of accuracy-controlled int8 ("int8-mixed"): validation images and scores.

An int8-mixed artifact must score within `max_miou_drop` points of the float model on the
validation images and, when `max_class_drop` is given, lose no more than that many IoU
points in any one class (a mean can hide a lost thin class). The float scores are the Keras
model's, through the same Segmenter and the same head placement as the artifact, computed
once per head placement; every trial the search makes is scored the same way, both drops
from one evaluation (`Validation.drop`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from edge_deeplab.config import DataConfig
from edge_deeplab.errors import InvalidInputError

DEFAULT_BUDGET = 0.5  # mIoU points: what users hold PTQ tools to (OpenVINO publishes 0.03-0.46)


# The smallest budget the folded score divides by: a budget of 0 reads as "0.01 points",
# a drop nobody can measure on a validation set of this toolkit's sizes.
BUDGET_FLOOR = 0.01


@dataclass(frozen=True)
class Drop:
    """What an artifact loses against float on the validation images, in points (positive: worse).

    mean: mIoU points. worst_class: IoU points of the class that lost most (None where no
    class is scored on both sides), worst_class_name: that class.
    """

    mean: float
    worst_class: Optional[float] = None
    worst_class_name: str = ""


def class_drop(reference: Dict[str, float], scored: Dict[str, float]) -> Drop:
    """(worst class drop, its name) as a Drop with mean 0: IoU points per class, classes that
    either side has no IoU for (absent from ground truth and prediction: NaN) left out, as the
    report's per-class deltas do."""
    drops = {name: (reference[name] - value) * 100 for name, value in scored.items()
             if name in reference and not math.isnan(value) and not math.isnan(reference[name])}
    if not drops:
        return Drop(0.0)
    name = max(drops, key=drops.get)
    return Drop(0.0, float(drops[name]), name)


def holds(drop: Drop, budget: float, class_budget: Optional[float]) -> bool:
    """The acceptance rule of every int8-mixed search and of the written artifact: the mean
    within `budget` AND (when a class budget is set) every class within `class_budget`."""
    if drop.mean > budget:
        return False
    return class_budget is None or drop.worst_class is None or drop.worst_class <= class_budget


def severity(drop: Drop, budget: float, class_budget: Optional[float]) -> float:
    """Both budgets folded into one figure that is <= 1 exactly when both hold (for budgets
    of at least BUDGET_FLOOR): the larger of each drop as a fraction of its budget.

    For a search that takes one scalar and one allowed drop (NNCF's accuracy control).
    """
    parts = [drop.mean / max(budget, BUDGET_FLOOR)]
    if class_budget is not None and drop.worst_class is not None:
        parts.append(drop.worst_class / max(class_budget, BUDGET_FLOOR))
    return max(parts)


class Validation:
    """Validation images and the float reference's scores on them: built before a conversion
    job (a missing or broken --val-data fails before any work) and handed to it.

    Args:
        dataset: a SegDataset (or any sequence of (rgb, mask) with labels/ignore_label).
        reference_for: (head, resolution) -> a Segmenter over the Keras model
            (`job.KerasReferences`).
        budget: the allowed drop in mIoU points.
        class_budget: the allowed drop of any one class's IoU, in points (None: unchecked).
    """

    def __init__(self, dataset, reference_for: Callable, budget: float, class_budget: Optional[float] = None):
        self.dataset = dataset
        self.budget = float(budget)
        self.class_budget = None if class_budget is None else float(class_budget)
        self._reference_for = reference_for
        self._reference: Dict[tuple, object] = {}
        self._per_image: Dict[tuple, np.ndarray] = {}  # (head, resolution, index) -> confusion

    def score(self, segmenter, dataset=None, progress: bool = True):
        """The EvalResult of `segmenter` on the validation images (or on `dataset`, a part of them)."""
        from edge_deeplab.evaluation import evaluate

        return evaluate(segmenter, self.dataset if dataset is None else dataset, progress=progress)

    def miou(self, segmenter, dataset=None) -> float:
        """mIoU of `segmenter` on the validation images (or on `dataset`, a part of them)."""
        return float(self.score(segmenter, dataset).miou)

    def reference(self, head: str, resolution: str):
        """The float model's EvalResult on all the validation images, once per head placement."""
        if (head, resolution) not in self._reference:
            self._reference[head, resolution] = self.score(self._reference_for(head, resolution))
        return self._reference[head, resolution]

    def reference_miou(self, head: str, resolution: str) -> float:
        return float(self.reference(head, resolution).miou)

    def drop(self, segmenter) -> Drop:
        """What the artifact behind `segmenter` loses against float: mean and worst class,
        from one evaluation."""
        meta = segmenter.metadata
        reference = self.reference(meta.head, meta.output_resolution)
        return _drop(reference.miou, reference.per_class_iou, self.score(segmenter))

    def holds(self, drop: Drop) -> bool:
        return holds(drop, self.budget, self.class_budget)

    def severity_on(self, segmenter, indices: Sequence[int]) -> float:
        """`severity` of the artifact behind `segmenter` on the validation images `indices`,
        against the float model on the same images (its per-image confusions, each image
        scored once, summed)."""
        from edge_deeplab.data.evaluation_set import subset
        from edge_deeplab.evaluation import miou_from_confusion
        from edge_deeplab.evaluation.metrics import named_ious

        indices = list(indices)
        meta = segmenter.metadata
        scored = self.score(segmenter, subset(self.dataset, indices), progress=False)
        confusion = sum(self._reference_confusion(meta.head, meta.output_resolution, i) for i in indices)
        drop = _drop(miou_from_confusion(confusion), named_ious(confusion, scored.labels), scored)
        return severity(drop, self.budget, self.class_budget)

    def _reference_confusion(self, head: str, resolution: str, index: int) -> np.ndarray:
        from edge_deeplab.data.evaluation_set import subset

        key = (head, resolution, index)
        if key not in self._per_image:
            reference = self._reference_for(head, resolution)
            self._per_image[key] = self.score(reference, subset(self.dataset, [index]), progress=False).confusion
        return self._per_image[key]


def _drop(reference_miou: float, reference_per_class: Dict[str, float], scored) -> Drop:
    """Mean and worst-class drop of the EvalResult `scored` against the float scores given."""
    worst = class_drop(reference_per_class, scored.per_class_iou)
    return Drop((float(reference_miou) - float(scored.miou)) * 100, worst.worst_class, worst.worst_class_name)


def required(validation: Optional[Validation]) -> Validation:
    """The job's Validation, which a budgeted precision cannot do without."""
    if validation is None:
        raise InvalidInputError("int8-mixed needs validation images (ConvertOptions.val_data)")
    return validation


def accuracy_record(method: str, float_layers, ranked: int, **extra) -> dict:
    """What an int8-mixed converter says of its search; `measured` completes it."""
    return {"method": method, "float_layers": list(float_layers), "quantized_layers": int(ranked), **extra}


def trial(k: int, drop: Drop) -> dict:
    """One step of a search, as its record's "trials" list keeps it."""
    return {"float_layers": k, **_drop_fields(drop)}


def _drop_fields(drop: Drop) -> dict:
    worst = None if drop.worst_class is None else round(float(drop.worst_class), 4)
    return {"miou_drop_points": round(float(drop.mean), 4), "worst_class_drop_points": worst,
            "worst_class": drop.worst_class_name}


def measured(record: dict, validation: Validation, drop: Drop) -> dict:
    """The record with the drops measured on the written artifact and the verdict (both budgets).

    What an int8-mixed artifact's metadata carries as source["accuracy_control"].
    """
    class_budget = validation.class_budget
    return {
        **record,
        "budget_points": round(validation.budget, 4),
        "class_budget_points": None if class_budget is None else round(class_budget, 4),
        **_drop_fields(drop),
        "budget_met": validation.holds(drop),
    }


def missed(record: dict) -> str:
    """Why a measured record misses its budget ("" when it does not): the mean first, then the class."""
    if record["budget_met"]:
        return ""
    if record["miou_drop_points"] > record["budget_points"]:
        return (f"mIoU drop {record['miou_drop_points']:.2f} points > budget {record['budget_points']:g} "
                f"with {float_layers(record)}")
    return (f"class {record['worst_class']!r} lost {record['worst_class_drop_points']:.2f} IoU points > class "
            f"budget {record['class_budget_points']:g} with {float_layers(record)}")


def describe(record: dict) -> str:
    """ "mIoU drop 0.31 (budget 0.5), worst class 'pole' 0.90 (budget 1), 3 of 75 layers in float"."""
    text = f"mIoU drop {record['miou_drop_points']:.2f} (budget {record['budget_points']:g})"
    if record.get("worst_class_drop_points") is not None:
        text += f", worst class {record['worst_class']!r} {record['worst_class_drop_points']:.2f}"
        if record.get("class_budget_points") is not None:
            text += f" (budget {record['class_budget_points']:g})"
    return f"{text}, {float_layers(record)}"


def load_validation(val_data, source, split: str = "val", limit: Optional[int] = None):
    """The validation SegDataset for the model `source`.

    `val_data`: a DataConfig, an already loaded dataset, "synthetic", or a dataset root
    (folder or VOC layout). None: the run's own synthetic val split for a model trained on
    the synthetic dataset, else an error asking for --val-data.
    """
    from edge_deeplab.data.evaluation_set import load_data

    meta = source.metadata
    if val_data is None:
        if source.data_format != "synthetic":
            raise InvalidInputError(
                "int8-mixed keeps the mIoU drop within a budget measured on validation images: "
                "give --val-data (a dataset root with masks, or 'synthetic')"
            )
        val_data = "synthetic"
    if isinstance(val_data, (str, Path)):
        val_data = _data_config(str(val_data), source)
    return load_data(val_data, meta, split, limit)


def _data_config(text: str, source) -> DataConfig:
    """'synthetic' (with the run's own seed and sizes) or a folder/VOC dataset root."""
    meta = source.metadata
    common = dict(labels=meta.labels, ignore_label=meta.ignore_label, synthetic_size=meta.input_size)
    if text == "synthetic":
        return DataConfig(format="synthetic", **common, **_synthetic_fields(source.path))
    root = Path(text)
    if not root.is_dir():
        raise InvalidInputError(f"--val-data {root}: no such dataset folder (or give 'synthetic')")
    fmt = "voc" if (root / "JPEGImages").is_dir() else "folder"
    return DataConfig(format=fmt, path=str(root), **common)


def _synthetic_fields(model_path: Path) -> dict:
    """The run's synthetic seed and split sizes, so 'synthetic' means its own val split."""
    config = Path(model_path).parent / "config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8")).get("data", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {k: data[k] for k in ("synthetic_train", "synthetic_val", "seed") if k in data}


def float_layers(record: dict) -> str:
    """ "3 of 75 layers in float" (the total where the search counted it; "in 16-bit" where
    the search raised layers to 16-bit activations instead, int8-mixed16)."""
    count, total = len(record.get("float_layers", ())), record.get("quantized_layers") or 0
    lifted = record.get("lifted_to", "float")
    return f"{count} of {total} layers in {lifted}" if total else f"{count} layers in {lifted}"

"""The mIoU budget of accuracy-controlled int8 ("int8-mixed"): validation images and scores.

An int8-mixed artifact must score within `max_miou_drop` points of the float model on the
validation images. The float mIoU is the Keras model's, through the same Segmenter and the
same head placement as the artifact, computed once per head placement; every trial the
search makes is scored the same way (`Validation.drop`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Optional

from edge_deeplab.config import DataConfig
from edge_deeplab.errors import InvalidInputError

DEFAULT_BUDGET = 0.5  # mIoU points: what users hold PTQ tools to (OpenVINO publishes 0.03-0.46)


class Validation:
    """Validation images and the float reference's mIoU on them: built before a conversion
    job (a missing or broken --val-data fails before any work) and handed to it.

    Args:
        dataset: a SegDataset (or any sequence of (rgb, mask) with labels/ignore_label).
        reference_for: (head, resolution) -> a Segmenter over the Keras model
            (`job.KerasReferences`).
        budget: the allowed drop in mIoU points.
    """

    def __init__(self, dataset, reference_for: Callable, budget: float):
        self.dataset = dataset
        self.budget = float(budget)
        self._reference_for = reference_for
        self._reference: Dict[tuple, float] = {}

    def miou(self, segmenter, dataset=None) -> float:
        """mIoU of `segmenter` on the validation images (or on `dataset`, a part of them)."""
        from edge_deeplab.evaluation import evaluate

        return float(evaluate(segmenter, self.dataset if dataset is None else dataset).miou)

    def reference_miou(self, head: str, resolution: str) -> float:
        if (head, resolution) not in self._reference:
            self._reference[head, resolution] = self.miou(self._reference_for(head, resolution))
        return self._reference[head, resolution]

    def drop(self, segmenter) -> float:
        """mIoU points the artifact behind `segmenter` loses against float (positive: worse)."""
        meta = segmenter.metadata
        return (self.reference_miou(meta.head, meta.output_resolution) - self.miou(segmenter)) * 100


def required(validation: Optional[Validation]) -> Validation:
    """The job's Validation, which a budgeted precision cannot do without."""
    if validation is None:
        raise InvalidInputError("int8-mixed needs validation images (ConvertOptions.val_data)")
    return validation


def accuracy_record(method: str, float_layers, ranked: int, **extra) -> dict:
    """What an int8-mixed converter says of its search; `measured` completes it."""
    return {"method": method, "float_layers": list(float_layers), "quantized_layers": int(ranked), **extra}


def measured(record: dict, budget: float, drop: float) -> dict:
    """The record with the drop measured on the written artifact and the verdict.

    What an int8-mixed artifact's metadata carries as source["accuracy_control"].
    """
    return {
        **record,
        "budget_points": round(float(budget), 4),
        "miou_drop_points": round(float(drop), 4),
        "budget_met": bool(drop <= budget),
    }


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
    """ "3 of 75 layers in float" (the total where the search counted it)."""
    count, total = len(record.get("float_layers", ())), record.get("quantized_layers") or 0
    return f"{count} of {total} layers in float" if total else f"{count} layers in float"

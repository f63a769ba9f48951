"""edge-deeplab: a MobileNetV2 DeepLab v3 from training to a real-time camera on the edge.

The top-level names are imported lazily so that `import edge_deeplab` stays light on a
device without TensorFlow: `load_runtime` and `Segmenter` never import it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Segmenter": ("edge_deeplab.segmenter", "Segmenter"),
    "SegmentationResult": ("edge_deeplab.segmenter", "SegmentationResult"),
    "load_runtime": ("edge_deeplab.runtimes", "load_runtime"),
    "ArtifactMetadata": ("edge_deeplab.metadata", "ArtifactMetadata"),
    "ModelConfig": ("edge_deeplab.config", "ModelConfig"),
    "DataConfig": ("edge_deeplab.config", "DataConfig"),
    "TrainConfig": ("edge_deeplab.config", "TrainConfig"),
    "build_deeplab_v3": ("edge_deeplab.model", "build_deeplab_v3"),
    "train": ("edge_deeplab.training", "train"),
    "evaluate": ("edge_deeplab.evaluation", "evaluate"),
    "convert": ("edge_deeplab.converters", "convert"),
    "report": ("edge_deeplab.bench.report", "report"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'edge_deeplab' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value

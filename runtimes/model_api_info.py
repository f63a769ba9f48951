"""What openvino-model-api reads of a model: OpenVINO IRs (rt_info) and ONNX (metadata_props).

model_api (OpenVINO's demos, Geti) picks its model wrapper by `model_info/model_type` and
configures its pre/post-processing from the rest of `model_info`. Its SegmentationModel
wants per-class scores in NCHW (1, C, H, W) and takes images as OpenCV gives them (BGR), so a
logits artifact outputs NCHW scores (`SCORES_LAYOUT`; our runtimes hand them on as NHWC)
and says `reverse_input_channels`. Its class-map path (a 3-D output) fails in model_api
0.4.7 (`np.argmax(axis=2)` of a 2-D map), so an argmax artifact names a model type model_api
does not have: it refuses it with that name instead of crashing or misreading it.

model_api's ONNXRuntimeAdapter (0.4.7) feeds float32 only (its dtype table has no uint8)
and adds the batch axis only for a planar input, so a logits ONNX model also takes NCHW
float32 input, transposed by our runtime: normalised values for fp32, and for int8 the
pixels themselves as floats, normalised in the graph (model_api's `(p - m) / s` and our
`(p - m) * (1 / s)` differ by an ulp, right on int8 rounding edges where mean = std = 127.5).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping

import numpy as np

from edge_deeplab.metadata import ArtifactMetadata

MODEL_INFO = "model_info"
SCORES_LAYOUT = "NCHW"
NOT_FOR_MODEL_API = "edge-deeplab class map (for model_api convert with --head logits)"


def client_ready(meta: ArtifactMetadata) -> bool:
    """Whether model_api's SegmentationModel reads this artifact right."""
    return meta.head == "logits"


def model_info(meta: ArtifactMetadata) -> Dict[str, str]:
    """model_api's parameters (strings, lists space-separated) for an artifact with `meta`."""
    info = {
        "model_type": "Segmentation" if client_ready(meta) else NOT_FOR_MODEL_API,
        # A label with a space would split in two (model_api splits lists on whitespace).
        "labels": " ".join(label.replace(" ", "_") for label in meta.labels),
        "reverse_input_channels": str(meta.channel_order == "RGB"),
        "resize_type": "standard" if meta.resize == "stretch" else "fit_to_window_letterbox",
        "pad_value": "0",
        "blur_strength": "-1",  # a plain argmax of the scores, as our Segmenter does
        "soft_threshold": "-inf",
        "return_soft_prediction": "False",
    }
    if meta.input_kind == "normalized":  # pixel-input artifacts normalise in their graph
        info["mean_values"] = " ".join(f"{v:g}" for v in meta.mean)
        info["scale_values"] = " ".join(f"{v:g}" for v in meta.std)
    return info


def onnx_props(meta: ArtifactMetadata) -> Dict[str, str]:
    """`model_info` as ONNX metadata_props, keyed as model_api's ONNXRuntimeAdapter reads them."""
    return {f"{MODEL_INFO} {key}": value for key, value in model_info(meta).items()}


def planar_in_props(props: Mapping[str, str]) -> bool:
    """Whether an ONNX model with these metadata_props has planar (NCHW) input and scores: the
    Segmentation model type is written only where the converter transposed them."""
    return props.get(f"{MODEL_INFO} model_type") == "Segmentation"


def to_nhwc(array: np.ndarray) -> np.ndarray:
    """NCHW (model_api's layout) -> the NHWC our Segmenter reads, contiguous."""
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1))


def to_nchw(array: np.ndarray) -> np.ndarray:
    """Our NHWC batches -> NCHW, contiguous."""
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def nhwc_spec(spec):
    """The TensorSpec of an NCHW tensor as our runtimes present it (NHWC)."""
    return dataclasses.replace(spec, shape=(spec.shape[0], *spec.shape[2:], spec.shape[1]))

"""The fp32 ONNX export of a head placement, through tf2onnx from the SavedModel export.

Opset 17: tf2onnx tests 14-18, and 17 is the newest that TensorRT 8.6 (JetPack 5) parses.
The ONNX, OpenVINO and TensorRT targets all start from this export.
"""

from __future__ import annotations

from pathlib import Path

from edge_deeplab import deps
from edge_deeplab.errors import ConversionError, first_line

OPSET = 17


def export_onnx(job, placement, path: Path) -> Path:
    """Export the SavedModel of `placement` to an fp32 ONNX file at `path`.

    Contract: input "image" float32 (1, H, W, 3); output "scores" float32 (1, H', W', C) or
    "labels" uint8 (1, H', W').
    """
    tf2onnx = deps.optional("tf2onnx", "onnx", "ONNX export")
    saved_model = str(job.saved_model(placement))
    job.progress(f"  tf2onnx: opset {OPSET} ({placement.head}, {placement.resolution} resolution)")
    try:
        # The Python API of `python -m tf2onnx.convert --saved-model`.
        graph_def, inputs, outputs, _tables, renames = tf2onnx.tf_loader.from_saved_model(
            saved_model,
            None,
            None,
            signatures=["serving_default"],
            return_initialized_tables=True,
            return_tensors_to_rename=True,
        )
        tf2onnx.convert.from_graph_def(
            graph_def,
            name="edge_deeplab",
            input_names=inputs,
            output_names=outputs,
            opset=OPSET,
            tensors_to_rename=renames,
            output_path=str(path),
        )
    except Exception as exc:  # tf2onnx raises anything from ValueError to its own errors
        raise ConversionError(f"tf2onnx failed: {first_line(exc)}") from exc
    return path

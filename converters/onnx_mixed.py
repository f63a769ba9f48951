"""ONNX int8 under an mIoU budget ("int8-mixed"): onnxruntime's QDQ int8 with the fewest
layers left in float.

The same quantizer as the plain int8 artifact (`quantize_static`, U8/S8 QDQ), so what stays
int8 runs as fast. Layers are ranked by where the error enters (`quant_debug.onnx_error_entry`,
from onnxruntime's `qdq_loss_debug` activations of the QDQ and the float model: how many dB of
SQNR against float each activation loses over the activations it is computed from; its own
QDQ noise alone misses what int8 weights do); the search then leaves the top-k
producing nodes out of quantization (`nodes_to_exclude`), k = 0, 1, 2, 4, ... and bisects,
like the TFLite search (the same acceptance: the mean and, when set, every class within its
budget). Every trial is a real quantization scored through the Segmenter.

Why not NNCF here (it is used for OpenVINO): its ONNX QDQ keeps the Clip of every ReLU6 between
Conv and QuantizeLinear, which onnxruntime does not fuse: on the CamVid model it ran 2.9x
slower than onnxruntime's own int8 (228.7 vs 77.9 ms p50) at the same accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from .job import HeadPlacement
from .tflite_mixed import fewest_layers, trial_line
from .validation import Drop, accuracy_record, required, trial

RANKING_IMAGES = 8  # calibration images the debugger ranks layers on (it keeps every activation)


def convert_mixed(job, placement: HeadPlacement, fp32: Path, dest: Path, quantize, sixteen_bit: bool = False) -> dict:
    """Write the int8-mixed ONNX of `placement` to `dest`; returns its accuracy record.

    `quantize(dest, exclude)` makes the QDQ int8 model of `fp32` with the nodes `exclude`
    left in float (the converter's own quantization, calibration included). With
    `sixteen_bit` (int8-mixed16) it is `quantize(dest, tensors)`: the activation tensors named
    get 16-bit Q/DQ instead of leaving their producers in float.
    """
    from edge_deeplab.converters.quant_debug import onnx_error_entry

    validation = required(job.validation)
    precision = "int8-mixed16" if sixteen_bit else "int8-mixed"
    meta = job.source.metadata.replace(
        format="onnx", precision=precision, head=placement.head, output_resolution=placement.resolution
    )
    quantize(dest, ())
    job.progress("  ranking layers by the error each adds against float (onnxruntime qdq_loss_debug)")
    batches = job.calibration()
    entry = onnx_error_entry(fp32, dest, [batches[i : i + 1] for i in range(min(RANKING_IMAGES, len(batches)))])
    tensors = sorted(entry, key=lambda name: -entry[name])
    nodes = tensors if sixteen_bit else _producers(dest, tensors)
    lifted = "16-bit" if sixteen_bit else "float"

    def drop_for(k: int) -> Drop:
        if k:
            quantize(dest, nodes[:k])
        drop = _drop(dest, meta, validation)
        job.progress(f"  {k} layer(s) in {lifted}: {trial_line(drop)}")
        return drop

    k, met, trials = fewest_layers(drop_for, validation.holds, len(nodes))
    if trials[-1][0] != k:  # the last trial written was not the chosen one
        quantize(dest, nodes[:k])
    return accuracy_record(
        f"onnxruntime qdq_loss_debug error-entry ranking, fewest {lifted} layers", nodes[:k], len(nodes),
        trials=[trial(n, d) for n, d in trials], lifted_to=lifted,
    )


def _producers(path: Path, tensors: List[str]) -> List[str]:
    """The names of the nodes producing `tensors` (in order, each once) in the model at `path`."""
    import onnx

    producer = {}
    for node in onnx.load(str(path)).graph.node:
        for output in node.output:
            producer[output] = node
    names: List[str] = []
    for tensor in tensors:
        node = producer.get(tensor)
        if node is not None and node.op_type not in ("QuantizeLinear", "DequantizeLinear") and node.name not in names:
            names.append(node.name)
    return names


def _drop(path: Path, meta, validation) -> Drop:
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    with load_runtime(path, backend="onnxruntime") as runtime:
        return validation.drop(Segmenter(runtime, meta))

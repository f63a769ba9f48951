"""OpenVINO int8 under an mIoU budget ("int8-mixed") through NNCF's accuracy control.

(ONNX's int8-mixed uses onnxruntime's own quantizer instead: see `onnx_mixed.py` for why.)

`nncf.quantize_with_accuracy_control` quantizes the float model, scores it with our
validation function (mIoU through the Segmenter, the same as `eval` and the report), and
while the drop exceeds the budget ranks the quantized operations by how much each costs
and reverts the most harmful ones to float. NNCF names the reverted operations only in its
log, so the record reads them from there.

NNCF's accuracy control takes ONE scalar metric (higher is better) and one allowed drop. With
a class budget (`--max-class-drop`) the metric folds both budgets: on any set of validation
images it is 1 - severity, severity the larger of (mIoU drop / mIoU budget) and (worst class's
IoU drop / class budget), each drop measured against the Keras model on the same images
(`Validation.severity_on`), and max_drop is 1 (absolute). The float model then scores about 1
(it loses nothing against itself), so NNCF's "initial - quantized <= 1" is "both drops within
their budgets"; NNCF's per-image ranking scores each image the same way. (1 -, not just -:
NNCF divides by the initial metric even for an absolute drop, and -0 failed with "float
division by zero".) What NNCF compares
against is the float OpenVINO model, not Keras: the written artifact's drops are measured again
afterwards (`pipeline.check`), and that verdict is the one reported.
"""

from __future__ import annotations

import logging
import re
from typing import List

import numpy as np

from edge_deeplab import deps
from edge_deeplab.data.evaluation_set import subset
from edge_deeplab.errors import ConversionError, first_line

from .job import HeadPlacement
from .validation import accuracy_record, required


class _RevertedOperations(logging.Handler):
    """Collects the operations NNCF's log says it reverted to float, and the op count."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.names: List[str] = []
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        found = re.match(r"(\d+) out of (\d+) were reverted", text)
        if found:
            self.total = int(found.group(2))
            self.names = [line.strip() for line in text.splitlines()[1:] if line.strip()]
        found = re.match(r"Total number of quantized operations in the model: (\d+)", text)
        if found:
            self.total = int(found.group(1))


# NNCF's full BiasCorrection is the default, not FastBiasCorrection: it re-estimates each layer's
# bias shift on the already-quantized layers before it, so errors do not pile up down the
# 17 MobileNetV2 blocks. On the CamVid recipe's model (AVX2 EPYC, 200 calibration images,
# val at 360x480) INT8 scored 65.05 -> 65.63 against float 65.38, argmax agreement 98.55%
# -> 98.77%, for 40 s more conversion (71 s instead of 31). On a later recipe model (float 66.20,
# benchmarks/results/quant_recovery.json): full +0.64 points, fast -1.26, none -1.84, and min/max
# ranges beat NNCF's others on the worst class (1.02 against 1.11-2.56 points).
def nncf_settings(quant) -> dict:
    """The keyword arguments of `nncf.quantize` (and of its accuracy control, as
    advanced_quantization_parameters) that the QuantSettings `quant` decides."""
    return dict(fast_bias_correction=quant.bias_correction == "fast", advanced_parameters=advanced_parameters(quant))


def advanced_parameters(quant):
    """NNCF's settings for every OpenVINO int8 we make.

    - Activation ranges by the method `quant` names (`RANGE_ESTIMATORS`); the default is the
      plain min/max over the calibration images, as the TFLite converter does: NNCF's own
      default (the mean of per-image extremes) clips the logits and cut argmax agreement from
      97.5% to 93.9% on the tiny test model.
    - Weights of every convolution in 7 bits (`OverflowFix.ENABLE`): CPUs without VNNI (AVX2,
      AVX-512 before Cascade Lake: many of the laptops our users run on) multiply u8 x s8 pairs
      into int16 and saturate there, so an IR that passes parity on a VNNI build machine
      loses points on the user's CPU. NNCF's default fixes the first layer only: the smoke
      quickstart's IR agreed 94.2% with Keras on an AVX2 EPYC (bar 97%), 96.9% with this.
    - Weights per output channel unless `quant` says per tensor; bias correction full (the
      default), fast or none (`disable_bias_correction`).
    """
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    method = quant.calib_method or DEFAULT_RANGE_METHOD
    return AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(RangeEstimatorParametersSet, RANGE_ESTIMATORS[method]),
        overflow_fix=OverflowFix.ENABLE,
        weights_quantization_params=QuantizationParameters(per_channel=quant.per_channel),
        disable_bias_correction=quant.bias_correction == "none",
    )


# OpenVINO's default calibration method (`Converter.default_calib_method`).
DEFAULT_RANGE_METHOD = "minmax"
# Our method names (`quant_settings`) as NNCF's RangeEstimatorParametersSet.
RANGE_ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE", "mse": "HISTOGRAM",
                    "mean-minmax": "MEAN_MINMAX"}


def quantize_within_budget(job, model, placement: HeadPlacement):
    """(int8 model, accuracy record) of the OpenVINO `model` within the job's budget. The
    record's drop is measured later, on the written artifact."""
    nncf = deps.optional("nncf", "openvino", "accuracy-controlled int8")
    validation = required(job.validation)
    reference = job.reference(placement)
    meta = reference.metadata
    batches = job.calibration()
    images = list(range(len(validation.dataset)))

    validate, max_drop = _metric(validation, meta)
    classes = "" if validation.class_budget is None else f", {validation.class_budget:g} IoU points a class"
    job.progress(f"  nncf.quantize_with_accuracy_control: {len(batches)} calibration, "
                 f"{len(images)} validation images, budget {validation.budget:g} mIoU points{classes}")
    log = _RevertedOperations()
    logging.getLogger("nncf").addHandler(log)
    try:
        quantized = nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset([batches[i : i + 1] for i in range(len(batches))]),
            nncf.Dataset(images, lambda i: _preprocessed(reference, validation.dataset[i][0])),
            validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(batches),
            **_accuracy_control_settings(job.quant),
        )
    except Exception as exc:  # nncf raises its own errors, RuntimeError, ValueError
        reason = first_line(exc, skip=("Exception from", "Check "))
        raise ConversionError(f"nncf.quantize_with_accuracy_control failed: {reason}") from exc
    finally:
        logging.getLogger("nncf").removeHandler(log)
    return quantized, accuracy_record("NNCF quantize_with_accuracy_control", log.names, log.total)


def _accuracy_control_settings(quant) -> dict:
    settings = nncf_settings(quant)
    return dict(fast_bias_correction=settings["fast_bias_correction"],
                advanced_quantization_parameters=settings["advanced_parameters"])


def _metric(validation, meta):
    """(validation function, max_drop) for NNCF: mIoU and the mIoU budget as a fraction, or,
    with a class budget, the folded score of the module docstring and 1."""
    last: dict = {}  # NNCF scores one model many times (per image when ranking): one session each

    def segmenter(compiled):
        from edge_deeplab.runtimes.openvino_runtime import OpenVINORuntime
        from edge_deeplab.segmenter import Segmenter

        if last.get("model") is not compiled:  # its input takes one image a call: a static batch of 1
            last.update(model=compiled, runtime=OpenVINORuntime.from_compiled(compiled, meta))
        return Segmenter(last["runtime"])

    def miou(compiled, indices) -> float:
        return validation.miou(segmenter(compiled), subset(validation.dataset, indices))

    def folded(compiled, indices) -> float:
        return 1.0 - validation.severity_on(segmenter(compiled), indices)

    if validation.class_budget is None:
        return miou, validation.budget / 100
    return folded, 1.0


def _preprocessed(segmenter, rgb: np.ndarray) -> np.ndarray:
    return segmenter.preprocess([rgb])[0]

"""OpenVINO IR models (.xml + .bin) on CPU, GPU, NPU or AUTO.

The input is reshaped to a static shape (batch 1, the metadata's input size) before
compiling: on this CPU a static shape ran about 2x faster than a dynamic batch (PITFALLS).
Several infer requests can be kept for asynchronous use (`run_async`, `start_async`), for
callers that overlap several inferences; the demo pipeline overlaps capture and rendering
with the synchronous `run` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, ModelLoadError, first_line
from edge_deeplab.metadata import ArtifactMetadata

from . import model_api_info, openvino_metadata
from .base import RUNTIMES, Runtime, TensorSpec

HINTS = ("latency", "throughput", "cumulative_throughput", "none")
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")  # OpenVINO's meta-devices


@RUNTIMES.register
class OpenVINORuntime(Runtime):
    """An OpenVINO model compiled for one device.

    Args:
        path: .xml IR (its .bin beside it); OpenVINO also reads .onnx and .tflite when
            this runtime is asked for by name.
        threads: INFERENCE_NUM_THREADS (None: OpenVINO's default).
        device: "CPU" (default), "GPU", "NPU", "AUTO", or any device OpenVINO lists.
        hint: performance hint, "latency" (default), "throughput", or "none".
        requests: infer requests in the async pool (0: the device's optimal number).
        size: (height, width) to reshape a dynamic-size model to (default: the metadata's).
        inference_precision: compute precision on the device ("f32", "bf16", "f16"); None
            keeps the artifact's own (f32 for fp32/int8 IRs on the CPU).
    """

    name = "openvino"
    suffixes = (".xml",)
    extra = "openvino"
    libraries = ("openvino",)
    order = 40

    def __init__(
        self,
        path,
        *,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        hint: str = "latency",
        requests: int = 0,
        size: Optional[Tuple[int, int]] = None,
        inference_precision: Optional[str] = None,
    ):
        super().__init__(path, threads=threads, device=(device or "CPU").upper())
        ov = deps.openvino()
        self._ov = ov
        self._core = ov.Core()
        _check_device(self._core, self.device)
        if hint.lower() not in HINTS:
            raise InvalidInputError(
                f"openvino: unknown hint {hint!r}; valid hints: {', '.join(HINTS)}"
            )
        self.hint = hint.lower()
        self._requests = int(requests)
        self.inference_precision = inference_precision
        if self.path.suffix.lower() == ".xml":
            _check_ir(self.path)
        try:
            model = self._core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise ModelLoadError(
                f"{self.path}: OpenVINO cannot read it: {_first_line(exc)}"
            ) from None
        openvino_metadata.check_weights(model, self.path)  # an IR's .bin is the one its .xml names
        self._metadata = _read_metadata(model, self.path)
        self._model = model
        self._planar = openvino_metadata.scores_are_planar(model)
        self._compiled = self._request = self._queue = None
        static = _static_shape(
            model, size or (self._metadata.input_size if self._metadata else None)
        )
        if static is not None:
            self._compile(static)

    @classmethod
    def from_compiled(cls, compiled, metadata: Optional[ArtifactMetadata] = None) -> OpenVINORuntime:
        """A model OpenVINO compiled in memory (NNCF's trial models) as a Runtime, on the
        device it was compiled for; its tensors are the compiled ports' (NHWC, no file, no
        model_api layout). `metadata`: what a Segmenter reads as its metadata."""
        runtime = cls.__new__(cls)
        Runtime.__init__(runtime, None, device="CPU")
        runtime._ov, runtime._core = deps.openvino(), None
        runtime.hint, runtime._requests, runtime.inference_precision = "none", 0, None
        runtime._metadata, runtime._planar = metadata, False
        runtime._model = runtime._compiled = compiled
        runtime._request, runtime._queue = compiled.create_infer_request(), None
        return runtime

    # -- tensors ---------------------------------------------------------------------------
    @property
    def input_spec(self) -> TensorSpec:
        return _spec(self._model.inputs[0])

    @property
    def output_spec(self) -> TensorSpec:
        spec = _spec(self._model.outputs[0])
        if self._planar:  # handed on as NHWC
            spec = model_api_info.nhwc_spec(spec)
        return spec

    @property
    def device_name(self) -> str:
        if self._compiled is not None and self.device.startswith("AUTO"):
            try:  # AUTO reports which device it picked
                return f"AUTO:{','.join(self._compiled.get_property('EXECUTION_DEVICES'))}"
            except RuntimeError:
                pass
        return self.device

    # -- running ---------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """NHWC batch of input_spec.dtype -> the raw output tensor (a copy)."""
        self._ensure_compiled(batch.shape)
        try:
            # Sync call: the engine may read the batch in place and we copy the output once.
            result = self._request.infer(
                {0: np.ascontiguousarray(batch)}, share_inputs=True, share_outputs=True
            )
        except RuntimeError as exc:
            raise InvalidInputError(f"{self.path}: inference failed: {_first_line(exc)}") from None
        return self._nhwc(np.array(result[self._compiled.outputs[0]], copy=True))

    def _nhwc(self, output: np.ndarray) -> np.ndarray:
        """NCHW scores (model_api's layout, see model_api_info) -> NHWC, contiguous."""
        return model_api_info.to_nhwc(output) if self._planar else output

    def start_async(
        self,
        batch: np.ndarray,
        callback: Callable[[np.ndarray, object], None],
        userdata: object = None,
    ) -> None:
        """Queue one batch on the pool; `callback(output, userdata)` runs when it is done.

        Returns at once unless every request is busy. Call `wait_all()` to drain the pool.
        """
        self._ensure_compiled(batch.shape)
        self._pool().start_async({0: np.ascontiguousarray(batch)}, (callback, userdata))

    def _pool(self):
        """The AsyncInferQueue, created on first use with one callback for every job."""
        if self._queue is None:
            output = self._compiled.outputs[0]

            def done(request, data):
                callback, userdata = data
                callback(self._nhwc(np.array(request.get_tensor(output).data, copy=True)), userdata)

            self._queue = self._ov.AsyncInferQueue(self._compiled, self._requests)
            self._queue.set_callback(done)
        return self._queue

    def wait_all(self) -> None:
        """Block until every queued asynchronous request has finished."""
        if self._queue is not None:
            self._queue.wait_all()

    def run_async(self, batches: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run several batches through the pool of infer requests; outputs in input order."""
        outputs: List[Optional[np.ndarray]] = [None] * len(batches)

        def store(out, index):
            outputs[index] = out

        for index, batch in enumerate(batches):
            self.start_async(batch, store, index)
        self.wait_all()
        return outputs

    @property
    def num_requests(self) -> int:
        """How many infer requests the async pool holds (compiles if needed)."""
        return len(self._pool()) if self._compiled is not None else 0

    @classmethod
    def read_metadata(cls, path) -> Optional[ArtifactMetadata]:
        """rt_info["edge_deeplab"] of an OpenVINO IR .xml, or None."""
        ov = deps.openvino("reading OpenVINO metadata")
        try:
            model = ov.Core().read_model(str(path))
        except RuntimeError as exc:
            raise ModelLoadError(
                f"{path}: not a readable OpenVINO IR: {first_line(exc)}"
            ) from None
        return openvino_metadata.read(model, path)

    @classmethod
    def available(cls) -> bool:
        return deps.available("openvino")

    def close(self) -> None:
        if self._queue is not None:
            self._queue.wait_all()
        self._queue = self._request = self._compiled = None

    # -- compiling -------------------------------------------------------------------------
    def _ensure_compiled(self, shape) -> None:
        if self._compiled is None or tuple(self._compiled.inputs[0].get_shape()) != tuple(shape):
            if (
                self._compiled is not None
                and not self._model.inputs[0].get_partial_shape().is_dynamic
            ):
                raise InvalidInputError(
                    f"{self.path}: batch of shape {tuple(shape)}; "
                    f"the model takes {self.input_spec.shape}"
                )
            self._compile(tuple(int(d) for d in shape))

    def _compile(self, shape: Tuple[int, ...]) -> None:
        """Reshape to a static `shape` and compile for the device."""
        if self._model.inputs[0].get_partial_shape().is_dynamic:
            try:
                self._model.reshape({self._model.inputs[0]: self._ov.PartialShape(list(shape))})
            except RuntimeError as exc:
                raise InvalidInputError(
                    f"{self.path}: cannot reshape the input to {shape}: {_first_line(exc)}"
                ) from None
        config = {}
        if self.hint != "none":
            config["PERFORMANCE_HINT"] = self.hint.upper()
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.inference_precision is not None:
            config["INFERENCE_PRECISION_HINT"] = self.inference_precision
        elif self.device == "CPU":
            # On CPUs with AMX/AVX512-BF16 OpenVINO computes in bf16 by default: fp32 IRs
            # then disagree with Keras (99.4% argmax agreement, |logit diff| 0.34) and
            # NNCF int8 loses 3 more points. Compute what the artifact was converted to.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self._compiled = self._core.compile_model(self._model, self.device, config)
        except RuntimeError as exc:
            raise ModelLoadError(
                f"{self.path}: cannot compile for {self.device}: {_first_line(exc)}"
            ) from None
        self._request = self._compiled.create_infer_request()
        self._queue = None


def _check_device(core, device: str) -> None:
    """Refuse a device this machine does not have, naming the ones it has."""
    available = list(core.available_devices)
    base = device.split(":")[0]
    if base in VIRTUAL_DEVICES or base in available or base.split(".")[0] in available:
        return
    raise InvalidInputError(
        f"openvino: device {device!r} is not available here; valid devices: "
        f"{', '.join(available + list(VIRTUAL_DEVICES[:1]))}"
    )


def _check_ir(path: Path) -> None:
    """An IR is an XML whose root is <net> with a .bin beside it."""
    try:
        head = path.read_bytes()[:4096]
    except IsADirectoryError:
        raise ModelLoadError(f"{path}: is a folder, expected an OpenVINO .xml file") from None
    if b"<net" not in head:
        raise ModelLoadError(
            f"{path}: not an OpenVINO IR (no <net> element; expected the .xml of an .xml/.bin pair)"
        )
    if not path.with_suffix(".bin").is_file():
        raise ModelLoadError(
            f"{path}: the weights file {path.with_suffix('.bin').name} is missing beside it"
        )


def _static_shape(model, size) -> Optional[Tuple[int, ...]]:
    """Batch 1 and the known input size; None when H/W stay unknown until the first run."""
    shape = model.inputs[0].get_partial_shape()
    dims = [d.get_length() if d.is_static else None for d in shape]
    if len(dims) != 4:
        return tuple(dims) if all(d is not None for d in dims) else None
    dims[0] = 1 if dims[0] is None else dims[0]
    if size is not None and (dims[1] is None or dims[2] is None):
        dims[1], dims[2] = int(size[0]), int(size[1])
    return tuple(dims) if all(d is not None for d in dims) else None


def _spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    name = port.get_any_name() if port.get_names() else f"port{port.get_index()}"
    return TensorSpec(name, shape, np.dtype(port.get_element_type().to_dtype()))


def _read_metadata(model, path: Path) -> Optional[ArtifactMetadata]:
    """`rt_info["edge_deeplab"]` of the model already read (no second parse)."""
    if path.suffix.lower() != ".xml":  # an .onnx / .tflite read by OpenVINO keeps its own kind
        from . import read_metadata

        return read_metadata(path)
    return openvino_metadata.read(model, path)


def _first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines are source locations)."""
    return first_line(exc, skip=("Exception from ", "Check '"))

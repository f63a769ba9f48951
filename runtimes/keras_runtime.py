"""The reference engine: a trained Keras model (.keras) or a TensorFlow SavedModel folder.

This is the GPU path on a desktop: TensorFlow places the model on a GPU when it sees one
(else the CPU), and `mixed_precision=True` runs it in float16 compute on the GPU. The
model is called through a `tf.function` with `training=False`: calling it with
`training=None` once ran BatchNormalization in training mode (../shared/PITFALLS.md).
TensorFlow is imported only when this engine is opened.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, ModelLoadError, first_line
from edge_deeplab.metadata import ArtifactMetadata
from edge_deeplab.metadata_io import read_metadata_file
from edge_deeplab.runs import sidecar_metadata_path
from edge_deeplab.trust import load_keras_model, require_trusted

from .base import RUNTIMES, Runtime, TensorSpec


@RUNTIMES.register
class KerasRuntime(Runtime):
    """A Keras model or SavedModel run by TensorFlow.

    Args:
        path: a .keras file (a run folder resolves to its model.keras) or a SavedModel folder.
        threads: TensorFlow intra-op threads (only takes effect before TF's first op).
        device: "CPU", "GPU" or "GPU:N"; None: the first GPU TensorFlow sees, else the CPU.
        mixed_precision: compute in float16 (weights kept float32 in the file); meant for
            GPUs with tensor cores, where it is about 2x faster; on a CPU it is slower.
        trust_model: open a SavedModel folder (its graph can read and write files; see
            `edge_deeplab.trust`).
    """

    name = "keras"
    suffixes = (".keras", "saved_model")
    extra = "train"
    libraries = ("tensorflow", "keras")
    order = 10

    def __init__(
        self,
        path,
        *,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        mixed_precision: bool = False,
        trust_model: bool = False,
    ):
        super().__init__(path, threads=threads, device=device)
        require_trusted(self.path, trust_model)
        tf = deps.tensorflow("the Keras runtime")
        self._tf = tf
        _set_threads(tf, threads)
        self._device = _pick_device(tf, device)
        self.mixed_precision = bool(mixed_precision)
        self.model = None  # the Keras model run (None for a SavedModel folder)
        with tf.device(self._device):
            if self.path.is_dir():
                self._fn, in_sig, out_sig = _load_saved_model(tf, self.path)
            else:
                model = _load_keras(self.path, self.mixed_precision)
                in_sig, out_sig = model.inputs[0], model.outputs[0]
                self._fn = tf.function(lambda x: model(x, training=False))
                self.model = model
        self._in = _spec(in_sig, "input")
        self._out = _spec(out_sig, "output", force_float32=True)
        self._metadata = self.read_metadata(self.path)
        self.head, self.per_image = "logits", False  # a file holds its own head

    @classmethod
    def from_model(
        cls,
        model,
        metadata: Optional[ArtifactMetadata] = None,
        *,
        head: str = "logits",
        per_image: bool = False,
        device: Optional[str] = None,
    ) -> KerasRuntime:
        """A Keras model held in memory as a Runtime, called with training=False
        (BatchNormalization on its moving statistics, as deployed models run).

        Args:
            model: a keras.Model: float32 (N, H, W, 3) normalised in, float32 logits
                (N, H', W', C) out.
            metadata: what a Segmenter reads as its metadata (None: give it to the Segmenter).
            head: "logits", or "argmax": the uint8 class map (N, H', W'), the argmax taken
                here, so a reference has the head of the artifact it is compared with.
            per_image: call the model eagerly on one image at a time (see `run`), instead of
                a `tf.function` over the whole batch.
            device: as for a file; None: TensorFlow's own placement.
        """
        tf = deps.tensorflow("the Keras runtime")
        runtime = cls.__new__(cls)
        Runtime.__init__(runtime, None, device=device)
        runtime._tf = tf
        runtime._device = _pick_device(tf, device) if device else None
        runtime.mixed_precision = False
        runtime.model, runtime.head, runtime.per_image = model, head, bool(per_image)
        runtime._fn = None if per_image else tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        runtime._in, runtime._out = _model_specs(model, metadata, head)
        runtime._metadata = metadata
        return runtime

    @property
    def input_spec(self) -> TensorSpec:
        return self._in

    @property
    def output_spec(self) -> TensorSpec:
        return self._out

    @property
    def device_name(self) -> str:
        if self._device is None:
            return "TensorFlow's default"
        name = self._device.split("device:")[-1]
        return f"{name} (mixed fp16)" if self.mixed_precision else name

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NHWC normalised batch -> float32 output (logits or class map); with head
        "argmax", the uint8 class map."""
        batch = np.asarray(batch, np.float32)
        if self.per_image:
            # One image per call: Keras 3 runs a functional model eagerly node by node and holds
            # every intermediate tensor until the call returns, about 0.46 GB per 360x480 image
            # for the CamVid model: 32 parity images in one call took a conversion to 16.3 GB.
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        tf = self._tf
        with tf.device(self._device) if self._device else contextlib.nullcontext():
            tensor = tf.convert_to_tensor(batch)
            out = self._fn(tensor) if self._fn is not None else self.model(tensor, training=False)
        out = np.asarray(out)
        out = out.astype(np.float32) if out.dtype == np.float16 else out
        return np.argmax(out, axis=-1).astype(np.uint8) if self.head == "argmax" else out

    @classmethod
    def read_metadata(cls, path) -> Optional[ArtifactMetadata]:
        """metadata.json of the run (model.keras), `<model>.json` beside it, or in a SavedModel."""
        path = Path(path)
        candidates = [sidecar_metadata_path(path)]
        if path.is_dir():
            candidates += [path / "metadata.json", path / "assets" / "metadata.json"]
        for candidate in candidates:
            if candidate.is_file():
                return read_metadata_file(candidate)
        return None

    @classmethod
    def available(cls) -> bool:
        return deps.available("tensorflow")

    def close(self) -> None:
        self._fn = None
        self.model = None


def _set_threads(tf, threads: Optional[int]) -> None:
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
    except RuntimeError:
        pass  # TF already started in this process: its thread pool is fixed from then on


def _pick_device(tf, device: Optional[str]) -> str:
    """A TF device string; a device TF does not see is an error naming the ones it sees.

    With no device asked, the first GPU, else the CPU: with a warning where the machine has
    an NVIDIA GPU that TensorFlow cannot use (the plain wheel has no CUDA: the `gpu` extra).
    """
    logical = [d.name for d in tf.config.list_logical_devices()]
    gpus = [d for d in logical if ":GPU:" in d]
    if device is None:
        if not gpus:
            _warn_if_gpu_unused()
        return gpus[0] if gpus else "/device:CPU:0"
    wanted = device.upper()
    if ":" not in wanted:
        wanted += ":0"
    for name in logical:
        if name.upper().endswith("/DEVICE:" + wanted):
            return name
    valid = ", ".join(n.split("device:")[-1] for n in logical)
    hint = "" if gpus or "GPU" not in wanted else f"; {NO_GPU_HINT}"
    raise InvalidInputError(
        f"keras: device {device!r} is not visible to TensorFlow; valid devices: {valid}{hint}"
    )


NO_GPU_HINT = (
    "TensorFlow sees no GPU: on Linux with an NVIDIA driver, pip install 'edge-deeplab[gpu]' "
    "(tensorflow[and-cuda])"
)


def _warn_if_gpu_unused() -> None:
    from edge_deeplab.nvidia import gpu_name

    gpu = gpu_name()
    if gpu:
        warnings.warn(f"keras: running on the CPU although this machine has {gpu}; {NO_GPU_HINT}",
                      RuntimeWarning, stacklevel=4)


def _load_keras(path: Path, mixed_precision: bool):
    if path.suffix.lower() != ".keras":
        raise ModelLoadError(f"{path}: the keras runtime opens .keras files and SavedModel folders")
    keras = deps.keras("the Keras runtime")
    import edge_deeplab.keras_layers  # noqa: F401  registers ResizeBilinear for loading

    try:
        model = load_keras_model(keras, path)
    except (TypeError, ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(
            f"{path}: Keras cannot load it (corrupt or not a .keras file): {first_line(exc)}"
        ) from None
    if mixed_precision:
        model = _as_mixed_precision(keras, model)
    return model


def _as_mixed_precision(keras, model):
    """The same model with every layer computing in float16 (variables stay float32)."""

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "mixed_float16"
        return layer.__class__.from_config(config)

    mixed = keras.models.clone_model(model, clone_function=clone)
    mixed.set_weights(model.get_weights())
    return mixed


def _load_saved_model(tf, path: Path):
    """(callable, input signature, output signature) of a SavedModel's serving signature."""
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: not a loadable SavedModel: {first_line(exc)}") from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelLoadError(f"{path}: the SavedModel has no serving signature")
    fn = signatures.get("serving_default") or next(iter(signatures.values()))
    ((in_name, in_sig),) = fn.structured_input_signature[1].items()
    out_name, out_sig = sorted(fn.structured_outputs.items())[0]

    def call(x):
        return fn(**{in_name: x})[out_name]

    call.loaded = loaded  # keep the trackable alive as long as the callable
    return call, in_sig, out_sig


def _model_specs(model, metadata: Optional[ArtifactMetadata], head: str):
    """(input, output) TensorSpecs of an in-memory model with `head` (dynamic batch); a
    dynamic input size takes the metadata's."""
    shape = [int(v) if v else None for v in model.input_shape]
    if metadata is not None and None in shape[1:3]:
        shape[1:3] = metadata.input_size
    out = tuple(int(v) if v else None for v in model.output_shape)
    image = TensorSpec("image", (None, *shape[1:]), np.dtype(np.float32))
    if head == "argmax":
        return image, TensorSpec("labels", (None, *out[1:-1]), np.dtype(np.uint8))
    return image, TensorSpec("scores", (None, *out[1:]), np.dtype(np.float32))


def _spec(tensor, what: str, force_float32: bool = False) -> TensorSpec:
    shape = tuple(None if d is None else int(d) for d in tensor.shape)
    dtype = np.dtype(getattr(tensor.dtype, "as_numpy_dtype", tensor.dtype))
    if force_float32 and dtype == np.float16:
        dtype = np.dtype(np.float32)
    name = getattr(tensor, "name", None) or what
    return TensorSpec(str(name), shape, dtype)

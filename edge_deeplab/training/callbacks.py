"""Training callbacks: inference-mode validation, checkpoints and the epoch log line (the
time budget is in `budget`)."""

from __future__ import annotations

import logging
import numbers
import time
from pathlib import Path
from typing import List, Optional

from .. import deps
from ..metadata import ArtifactMetadata
from ..runtimes.keras_runtime import KerasRuntime
from .checkpoints import save_checkpoint

keras = deps.keras()
_log = logging.getLogger(__name__)


class ValidationCallback(keras.callbacks.Callback):
    """Val mIoU / pixel accuracy in inference mode after every epoch, added to the logs.

    Train-mode metrics flatter the model early on (BN batch statistics); this is what a
    deployed model would score.
    """

    def __init__(
        self, dataset, metadata: ArtifactMetadata, verbose: int = 1, limit: Optional[int] = None,
        every: int = 1, epochs: Optional[int] = None, eval_config=None,
    ):
        """`every`: validate every N epochs and after the last of `epochs`. `eval_config`:
        validate a copy of the model built at that config's input size (the weights are
        copied each time), when training runs on crops of another size."""
        super().__init__()
        self.dataset = dataset
        self.metadata = metadata
        self.verbose = verbose
        self.limit = limit
        self.every = every
        self.epochs = epochs
        self.eval_config = eval_config
        self._eval_model = None
        self.history: List[dict] = []

    def _model_to_score(self):
        if self.eval_config is None:
            return self.model
        if self._eval_model is None:
            from ..model import build_deeplab_v3

            self._eval_model = build_deeplab_v3(self.eval_config)
        self._eval_model.set_weights(self.model.get_weights())
        return self._eval_model

    def on_epoch_end(self, epoch, logs=None):
        from ..evaluation import evaluate
        from ..segmenter import Segmenter

        last = self.epochs is not None and epoch + 1 >= self.epochs
        if (epoch + 1) % self.every and not last and not self.model.stop_training:
            if logs is not None:  # CSVLogger fixes its columns at the first epoch
                logs["val_miou"] = logs["val_pixel_accuracy"] = float("nan")
            return
        start = time.perf_counter()
        # The model in memory, in inference mode: the code path `edge-deeplab eval` takes for every artifact.
        segmenter = Segmenter(KerasRuntime.from_model(self._model_to_score(), self.metadata))
        result = evaluate(segmenter, self.dataset, limit=self.limit, batch_size=16, progress=False)
        if logs is not None:
            logs["val_miou"] = result.miou
            logs["val_pixel_accuracy"] = result.pixel_accuracy
        self.history.append(
            {
                "epoch": epoch + 1,
                "val_miou": result.miou,
                "val_pixel_accuracy": result.pixel_accuracy,
            }
        )
        if self.verbose:
            _log.info(f"epoch {epoch + 1}: val mIoU {result.miou:.4f}  pixel accuracy {result.pixel_accuracy:.4f}  "
                      f"(inference mode, {time.perf_counter() - start:.1f} s)")


class CheckpointCallback(keras.callbacks.Callback):
    """An atomic checkpoint (model + optimizer state) after every epoch."""

    def __init__(self, folder: Path, write: bool = True):
        super().__init__()
        self.folder = Path(folder)
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if self.write:
            save_checkpoint(self.model, self.folder, epoch + 1, logs)


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch (its training metrics and time), where Keras draws no bar: a
    log file, CI or a pipe would get Keras' carriage-return bar redrawn in every batch."""

    def __init__(self):
        super().__init__()
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        metrics = "  ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items()
                            if isinstance(value, numbers.Real) and not name.startswith("val_"))
        _log.info(f"epoch {epoch + 1}: {metrics}  ({time.perf_counter() - self._start:.1f} s)")

"""TensorRT 10's entropy calibrator (weakly typed INT8), fed the job's calibration images.

TensorRT calls `get_batch` from C++, where a Python exception cannot travel: a failed
copy ends the calibration (returns None) and is kept in `error`, which the builder raises
once the build returns. The device buffer is freed by `free()` (the builder's finally),
and the calibration cache is written atomically under the engine's cache key, which
covers the calibration images, so a changed `--calib-data` never reuses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edge_deeplab.runtimes.cuda import CudaError, DeviceBuffer, cudart


def entropy_calibrator(trt, batches: np.ndarray, cache: Path, tick: Callable[[int], None]):
    """An IInt8EntropyCalibrator2 over `batches` (float32 NHWC), one image per batch."""
    cuda = cudart("TensorRT int8 calibration")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.index = 0
            self.error: Optional[CudaError] = None
            self.buffer = DeviceBuffer(cuda, batches[0:1].astype(np.float32).nbytes)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(batches) or self.error is not None:
                return None
            try:
                self.buffer.upload(np.ascontiguousarray(batches[self.index : self.index + 1], np.float32))
            except CudaError as exc:
                self.error = exc
                return None
            self.index += 1
            tick(self.index)
            return [self.buffer.pointer]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, cache)

        def free(self):
            self.buffer.free()

    return EntropyCalibrator()

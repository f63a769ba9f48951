"""Lazy imports of the heavy, optional frameworks.

Each helper imports its framework on first use and turns an ImportError into a
MissingDependencyError naming the pip extra, so the edge install (no TensorFlow)
never pays for what it does not use.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType
from typing import Optional

from .errors import MissingDependencyError

# Set before any TensorFlow import (ours, or tensorflow.lite as the TFLite fallback): grow GPU
# memory as needed. By default TensorFlow maps nearly all of it at start-up, and a TensorRT
# build or an ONNX Runtime CUDA session in the same process then runs out. A user's own
# setting wins.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def optional(module: str, extra: str, purpose: str, *, package: Optional[str] = None) -> ModuleType:
    """Import the optional `module`, or raise MissingDependencyError saying which pip extra
    installs it and what needs it (`package`: its pip distribution when named otherwise).

    Example: `onnx = deps.optional("onnx", "onnx", "writing ONNX metadata")`.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package or module, extra, purpose) from exc


def tensorflow(purpose: str = "training and conversion") -> ModuleType:
    # Keep TensorFlow's C++ start-up chatter (cuInit on CPU-only machines) out of the console.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return optional("tensorflow", "train", purpose)


def keras(purpose: str = "training and conversion") -> ModuleType:
    tensorflow(purpose)
    return optional("keras", "train", purpose)


def cv2(purpose: str = "image and video I/O") -> ModuleType:
    """OpenCV: pip's opencv-python, or the system build (JetPack's, with GStreamer)."""
    # OpenCV reads its decode limit once, at the first decode: ours, so formats whose header
    # `image_header` does not read (TIFF) are bounded too. A user's own setting wins.
    from .limits import MAX_IMAGE_PIXELS

    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS.value))
    return optional("cv2", "demo", purpose, package="opencv-python")


def onnxruntime(purpose: str = "running ONNX models") -> ModuleType:
    return optional("onnxruntime", "onnx", purpose)


def openvino(purpose: str = "running OpenVINO models") -> ModuleType:
    return optional("openvino", "openvino", purpose)


def matplotlib(purpose: str = "report charts") -> ModuleType:
    mpl = optional("matplotlib", "report", purpose)
    mpl.use("Agg")
    return mpl


def available(module: str) -> bool:
    """True when `module` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None

"""Where edge-deeplab keeps what it builds once and reuses: TensorRT engines, model exports."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$EDGE_DEEPLAB_CACHE, else ~/.cache/edge_deeplab."""
    return Path(os.environ.get("EDGE_DEEPLAB_CACHE") or Path.home() / ".cache" / "edge_deeplab")

"""The Source interface every frame source implements (cameras, files, folders, synthetic)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .uri_safety import redact_uri


class Source:
    """A frame source. `read()` -> BGR uint8 (H, W, 3), or None when none came.

    Attributes:
        uri: what the user gave, with any password masked (`uri_safety.redact_uri`): it is
            what messages, stats and the served page show.
        live: frames arrive on the source's own clock (drop stale ones) rather than on demand.
        fps: nominal frame rate, or None when unknown.
        announced: frames a file says it holds (from `start` on), or None when unknown.
    """

    live = False

    def __init__(self, uri: str):
        self.uri = redact_uri(uri)
        self.fps: Optional[float] = None
        self.announced: Optional[int] = None

    def open(self) -> Source:
        """Open (or reopen) the device/file; raises SourceError if it cannot be opened."""
        return self

    def read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (idempotent)."""

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

"""What a report records while it measures a variant: the class maps, the memory."""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np


class Recorder:
    """Passes calls to a Segmenter and keeps the class maps of `predict_batch`, so the
    evaluation pass also gives the predictions that agreement and examples need."""

    def __init__(self, segmenter):
        self._segmenter = segmenter
        self.labels_seen: List[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self._segmenter, name)

    def predict_batch(self, images, **kwargs):
        results = self._segmenter.predict_batch(images, **kwargs)
        self.labels_seen.extend(r.labels for r in results)
        return results


def current_rss_mb() -> Optional[float]:
    """This process's resident memory now, in MiB (Linux /proc; None elsewhere).

    The harness's peak_mem_mb is a process-wide high-water mark that never goes down, so in
    one report process it grows row after row; the RSS growth over one variant (load,
    evaluate, time) is a rough per-variant figure beside it.
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return None

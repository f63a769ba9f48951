"""`synthetic`: a camera stand-in made from the synthetic dataset, so the demo runs anywhere."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .source_base import Source


class SyntheticSource(Source):
    """A camera stand-in: objects from the synthetic dataset drift over a background.

    Deterministic: frame k depends only on (size, classes, seed, k). It is live (frames come
    at `fps` on their own clock) unless `fps` is 0, in which case frames come on demand.
    `frames` (0 = endless) ends the stream after that many frames.
    """

    def __init__(
        self,
        uri: str,
        size=(240, 320),
        fps: float = 30.0,
        classes: int = 4,
        seed: int = 0,
        frames: int = 0,
    ):
        super().__init__(uri)
        self.size = tuple(size)
        self.fps = float(fps) or None
        self.live = bool(fps)
        self.classes = classes
        self.seed = seed
        self.frames = frames
        self._index = 0
        self._layers = None
        self._next_time = 0.0

    def open(self) -> SyntheticSource:
        from edge_deeplab.data import synthetic

        images, masks = synthetic.generate(
            2, size=self.size, seed=self.seed, num_classes=self.classes
        )
        self._layers = (images[0][:, :, ::-1].copy(), images[1][:, :, ::-1].copy(), masks[1] > 0)
        self._index = 0
        self._next_time = time.perf_counter()
        return self

    def frame(self, index: int) -> np.ndarray:
        """Frame `index`: the foreground layer translated along a slow Lissajous path."""
        background, sprite, inside = self._layers
        h, w = self.size
        dy = int(round(0.25 * h * np.sin(index * 0.05)))
        dx = int(round(0.35 * w * np.sin(index * 0.031)))
        moved = np.roll(inside, (dy, dx), axis=(0, 1))
        return np.where(moved[:, :, None], np.roll(sprite, (dy, dx), axis=(0, 1)), background)

    def read(self) -> Optional[np.ndarray]:
        if self._layers is None or (self.frames and self._index >= self.frames):
            return None
        if self.live:  # behave like a camera: a frame every 1/fps seconds
            self._next_time += 1.0 / self.fps
            delay = self._next_time - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        out = self.frame(self._index)
        self._index += 1
        return out

"""Where a converted model's segmentation head sits: a value that the Converter base, the
ConversionJob and every target share (its own module, so that none imports another for it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadPlacement:
    """Where the segmentation head sits: "logits"/"argmax", at "full"/"feature" resolution."""

    head: str = "logits"
    resolution: str = "full"

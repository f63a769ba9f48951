"""The one spelling of what became of a conversion or a report variant.

`Status` is a `str` enum: a member equals, prints, formats and serialises (json) as its
value, so report.json and the `<artifact>.parity.json` reports read "ok", "parity failed",
..., and rows loaded back from JSON (plain strings) compare equal to the members.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """What became of one target x precision (converters) or one variant (the report)."""

    OK = "ok"
    CONVERSION_FAILED = "conversion failed"  # the converter raised: nothing written
    PARITY_FAILED = "parity failed"  # written (unless --strict), below the parity tolerance
    BUDGET_MISSED = "budget missed"  # int8-mixed over its mIoU budget: written, the best found
    NOT_AVAILABLE = "not available"  # this machine lacks the engine or converter
    RUN_FAILED = "run failed"  # the artifact would not load, evaluate or time (report only)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def written(self) -> bool:
        """Whether a conversion with this status left an artifact that can be measured."""
        return self in (Status.OK, Status.PARITY_FAILED, Status.BUDGET_MISSED)

    @property
    def failed(self) -> bool:
        """Whether what was asked for was not delivered: nothing made or run, or int8-mixed
        over its budget. Not "parity failed" (a warning: written and measured; `--strict`
        raises instead) nor "not available" (what "all" skips on this machine)."""
        return self in (Status.CONVERSION_FAILED, Status.BUDGET_MISSED, Status.RUN_FAILED)

"""One small error hierarchy: every error a user can cause is an EdgeDeeplabError.

The CLI prints these as one line (no traceback) and exits with status 2.
"""

from __future__ import annotations


class EdgeDeeplabError(Exception):
    """Base class of the errors a user can cause and fix."""


class MissingDependencyError(EdgeDeeplabError, ImportError):
    """An optional framework is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str, purpose: str = ""):
        self.package = package
        self.extra = extra
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"{package} is not installed{what}: pip install 'edge-deeplab[{extra}]'"
        )


class InvalidInputError(EdgeDeeplabError, ValueError):
    """A file, an image or an argument is not what was expected."""


class ModelLoadError(EdgeDeeplabError):
    """A model file cannot be read by the engine it was meant for."""


class ConversionError(EdgeDeeplabError):
    """A converter failed; nothing was left in the output folder."""


class ParityError(EdgeDeeplabError):
    """A converted artifact disagrees with the Keras reference beyond the tolerance table."""


class SourceError(EdgeDeeplabError):
    """A camera, video or stream cannot be opened or was lost."""

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


class OutputError(EdgeDeeplabError, OSError):
    """A file could not be written (a full disk, no permission); nothing partial was left."""


class SourceError(EdgeDeeplabError):
    """A camera, video or stream cannot be opened or was lost."""


def first_line(
    exc: BaseException, *, prefer: str = "", skip: tuple = (), last: bool = False
) -> str:
    """The informative line of a framework's multi-line error message.

    Args:
        exc: the exception.
        prefer: return the first line containing this text (case-insensitive), if any
            (the TFLite converter names the failing op on the line saying "error").
        skip: line prefixes that carry no information (OpenVINO's source locations).
        last: the last line instead (OpenCV puts its reason at the end).
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(tuple(skip))]
    for line in useful if prefer else ():
        if prefer.lower() in line.lower():
            return line
    return (useful or lines or [type(exc).__name__])[-1 if last else 0]

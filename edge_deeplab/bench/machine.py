"""What machine a report was measured on: CPU, cores, library versions, date.

Versions come from `importlib.metadata`, so describing the machine never imports a heavy
framework (TensorFlow takes seconds to import and may be absent on an edge device).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata as _metadata
from typing import Dict, Optional

# Distributions whose versions decide the numbers in a report (pip names), besides the
# ones each runtime and converter declares in its `libraries`.
CORE_LIBRARIES = ("edge-deeplab", "numpy")
IMAGE_LIBRARIES = ("opencv-python", "opencv-python-headless")


def libraries() -> tuple:
    """The core libraries, every engine's and converter's (registry order), then OpenCV."""
    from edge_deeplab.converters import CONVERTERS
    from edge_deeplab.runtimes import RUNTIMES

    declared = [name for registry in (RUNTIMES, CONVERTERS) for cls in registry.values()
                for name in cls.libraries]
    return tuple(dict.fromkeys([*CORE_LIBRARIES, *declared, *IMAGE_LIBRARIES]))


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo), else platform's guess."""
    found: Dict[str, str] = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                found.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    # x86 says "model name" ("model" is a number there); ARM boards say "Hardware" or "Model".
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if found.get(key):
            return found[key]
    return platform.processor() or platform.machine() or "unknown"


def library_versions(names=None) -> Dict[str, Optional[str]]:
    """pip name -> installed version, or None when the distribution is not installed.

    Args:
        names: pip distribution names (default: `libraries()`).
    """
    versions: Dict[str, Optional[str]] = {}
    for name in libraries() if names is None else names:
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask), which a container may limit."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def utc_now() -> str:
    """ISO 8601 UTC time, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def describe_machine() -> dict:
    """A JSON-ready description of this machine for a report's `machine` field."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "arch": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": {k: v for k, v in library_versions().items() if v is not None},
    }

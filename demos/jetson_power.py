"""In which power mode a Jetson runs: what a demo's `--stats` records (None elsewhere)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

from edge_deeplab.nvidia import is_jetson, jetson_model, read_text

CPU_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


def power_state() -> Optional[dict]:
    """{"model", "nvpmodel", "jetson_clocks"} on a Jetson, None elsewhere.

    nvpmodel: the power mode name `nvpmodel -q` reports (None if it cannot be run).
    jetson_clocks: True when CPU0's minimum frequency is pinned to its maximum, which is
    what `sudo jetson_clocks` does (read from sysfs: `jetson_clocks --show` needs root).
    """
    if not is_jetson():
        return None
    return {
        "model": jetson_model(),
        "nvpmodel": _nvpmodel_mode(),
        "jetson_clocks": _clocks_pinned(),
    }


def _nvpmodel_mode() -> Optional[str]:
    nvpmodel = shutil.which("nvpmodel")
    if not nvpmodel:
        return None
    try:
        done = subprocess.run([nvpmodel, "-q"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in done.stdout.splitlines():
        if "Power Mode" in line and ":" in line:  # "NV Power Mode: MAXN"
            return line.split(":", 1)[1].strip()
    return None


def _clocks_pinned() -> Optional[bool]:
    low, high = read_text(CPU_FREQ / "scaling_min_freq"), read_text(CPU_FREQ / "scaling_max_freq")
    if low is None or high is None:
        return None
    return low == high


__all__ = ["is_jetson", "power_state"]

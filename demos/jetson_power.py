"""Is this a Jetson, and in which power mode: what a demo's `--stats` records (None elsewhere)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
_DEVICE_MODEL = Path("/proc/device-tree/model")
_CPU_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


def is_jetson() -> bool:
    """True on an NVIDIA Jetson (L4T), judged from the system files JetPack installs."""
    if _TEGRA_RELEASE.exists():
        return True
    try:
        return "jetson" in _DEVICE_MODEL.read_text(errors="ignore").lower()
    except OSError:
        return False


def power_state() -> Optional[dict]:
    """{"model", "nvpmodel", "jetson_clocks"} on a Jetson, None elsewhere.

    nvpmodel: the power mode name `nvpmodel -q` reports (None if it cannot be run).
    jetson_clocks: True when CPU0's minimum frequency is pinned to its maximum, which is
    what `sudo jetson_clocks` does (read from sysfs: `jetson_clocks --show` needs root).
    """
    if not is_jetson():
        return None
    return {
        "model": _read(_DEVICE_MODEL),
        "nvpmodel": _nvpmodel_mode(),
        "jetson_clocks": _clocks_pinned(),
    }


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="ignore").strip("\x00\n ") or None
    except OSError:
        return None


def _nvpmodel_mode() -> Optional[str]:
    try:
        done = subprocess.run(
            ["nvpmodel", "-q"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    for line in done.stdout.splitlines():
        if "Power Mode" in line and ":" in line:  # "NV Power Mode: MAXN"
            return line.split(":", 1)[1].strip()
    return None


def _clocks_pinned() -> Optional[bool]:
    low, high = _read(_CPU_FREQ / "scaling_min_freq"), _read(_CPU_FREQ / "scaling_max_freq")
    if low is None or high is None:
        return None
    return low == high

"""The Jetson demo: `python -m edge_deeplab.demos.jetson MODEL` (see docs/jetson.md).

The same flags as the webcam demo, with Jetson defaults: the CSI camera `csi://0`, and the
GPU: a TensorRT engine (.engine/.plan) runs on TensorRT; an .onnx model runs on ONNX
Runtime's TensorRT execution provider in FP16 (engines cached beside the model). Also
reads the power mode and clock state, which `--stats` records (None off a Jetson).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from edge_deeplab.errors import InvalidInputError

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


def jetson_defaults(args: argparse.Namespace) -> None:
    """Pick the GPU engine for MODEL unless --runtime/--device say otherwise.

    The engine is the first registered one that opens MODEL's suffix and has a Jetson GPU
    path (`Runtime.jetson_options`).
    """
    from edge_deeplab.runtimes import RUNTIMES

    if args.runtime != "auto" or args.device is not None:
        return
    model = Path(args.model)
    for name, cls in RUNTIMES.items():
        options = cls.jetson_options(model) if model.suffix.lower() in cls.suffixes else None
        if options is not None:
            args.runtime = name
            args.device = options.get("device", args.device)
            return
    raise InvalidInputError(
        f"{args.model}: the Jetson demo runs a TensorRT engine or an .onnx model; "
        "build one with `edge-deeplab convert MODEL --to tensorrt --precision fp16` "
        "(or pass --runtime to run it anyway)"
    )


def main(argv: Optional[List[str]] = None) -> int:
    from .webcam import main as webcam_main

    return webcam_main(
        argv,
        prog="python -m edge_deeplab.demos.jetson",
        source="csi://0",
        configure=jetson_defaults,
    )


if __name__ == "__main__":
    sys.exit(main())

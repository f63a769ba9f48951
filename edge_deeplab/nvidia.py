"""Which NVIDIA GPU this machine has: a Jetson (L4T) module or a desktop card.

Read from files, not from CUDA, so it costs nothing and works before any driver call:
a Jetson is recognised by JetPack's release file, the device tree (model and
`compatible`, which every Tegra board carries) or the GPU's device nodes, whose names
changed between JetPack 5 (`/dev/nvhost-ctrl-gpu`) and JetPack 6 on Orin
(`/dev/nvgpu/igpu0/ctrl`); a desktop GPU by `nvidia-smi`. The paths are module
attributes so tests can point them at a fake root.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE = Path("/proc/device-tree")
JETSON_GPU_NODES = (Path("/dev/nvhost-ctrl-gpu"), Path("/dev/nvgpu/igpu0/ctrl"))


def read_text(path: Path) -> Optional[str]:
    """A small system file's text without NULs and whitespace, or None if unreadable."""
    try:
        return path.read_text(errors="ignore").replace("\x00", " ").strip() or None
    except OSError:
        return None


def jetson_model() -> Optional[str]:
    """The board's name from the device tree ("NVIDIA Jetson Orin Nano Developer Kit")."""
    return read_text(DEVICE_TREE / "model")


def is_jetson() -> bool:
    """True on an NVIDIA Jetson (L4T), judged from the system files JetPack installs."""
    if TEGRA_RELEASE.exists() or any(node.exists() for node in JETSON_GPU_NODES):
        return True
    compatible = (read_text(DEVICE_TREE / "compatible") or "").lower()
    return "nvidia,tegra" in compatible or "jetson" in (jetson_model() or "").lower()


def gpu_name() -> str:
    """The NVIDIA GPU's name (a Jetson's board name), or "" when there is none."""
    if is_jetson():
        return jetson_model() or "NVIDIA Jetson"
    return _smi_gpu_name()


def _smi_gpu_name() -> str:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ""
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = out.stdout.strip().splitlines() if out.returncode == 0 else []
    return lines[0].strip() if lines else ""

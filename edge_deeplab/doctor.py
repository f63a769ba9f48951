"""What this machine is and what it can run: the facts `edge-deeplab doctor` prints.

Everything is read from files, `importlib.metadata` and the registries' own availability
checks, so no engine or framework is imported (OpenCV, small and often a system build, is
the one exception: its build flags exist only at run time). The same object is printed as
text or, with `--json`, as one JSON object, which a remote caller reads back; its schema
(version `SCHEMA`) is stable, and a new key is added rather than an old one changed:

    {
      "schema": 1,
      "edge_deeplab": "0.1.0",                      # this package's version
      "host": {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "Linux 6.1.0",
               "python": "3.11.2", "executable": "/usr/bin/python3"},
      "cpu": {"model": str, "core": "Cortex-A76" | "", "arch": "aarch64" | "x86_64" | ...,
              "cores": int, "usable_cores": int,
              "features": {"asimd": true, "asimddp": false, ...}},  # INT8_FEATURES of the arch
      "emulated": bool, "emulation": [str, ...],    # the evidence when emulated
      "jetson": null | {"model": str, "l4t": "36.4.0" | null, "jetpack": "6.1" | null},
      "gpu": str,                                    # "" when there is no NVIDIA GPU
      "memory": {"total_mb": int | null, "available_mb": int | null},
      "disk": {"path": str, "free_mb": int | null}, # free space where the cache lives
      "libraries": {"numpy": "2.2.6", "onnxruntime": null, ...},   # null: not installed
      "opencv": null | {"version": str, "gstreamer": bool} | {"error": str},
      "formats": [{"format": "tflite", "suffix": ".tflite", "precisions": [...],
                   "runtime": "tflite", "available": bool, "engine": "ai-edge-litert 2.3.0",
                   "missing": str, "install": str}]           # missing/install "" when available
    }
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from edge_deeplab import __version__, cpu_features, deps, nvidia
from edge_deeplab.bench.machine import cpu_model, library_versions, usable_cores
from edge_deeplab.cache import cache_root
from edge_deeplab.errors import first_line

SCHEMA = 1
MEMINFO = Path("/proc/meminfo")
OS_RELEASE = Path("/etc/os-release")
# Distributions whose versions the doctor names (pip names), engines and image libraries first.
LIBRARIES = (
    "edge-deeplab", "numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "openvino",
    "tensorrt", "cuda-python", "tensorflow", "opencv-python", "opencv-python-headless", "opencv-contrib-python",
    "picamera2",
)
# JetPack release of each L4T release (L4T major.minor -> JetPack), for boards where the
# nvidia-jetpack meta package is not installed.
L4T_JETPACK = {
    "32.7": "4.6.x", "35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2", "35.5": "5.1.3",
    "35.6": "5.1.4", "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1/6.2",
}
JETSON_TENSORRT = "JetPack's TensorRT: sudo apt install python3-libnvinfer, in a venv made with --system-site-packages"


def memory() -> Dict[str, Optional[int]]:
    """Total and available memory in MB from /proc/meminfo (None where unknown)."""
    values: Dict[str, int] = {}
    try:
        for line in MEMINFO.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) // 1024  # kB -> MB
    except OSError:
        pass
    return {"total_mb": values.get("MemTotal"), "available_mb": values.get("MemAvailable")}


def disk(path: Optional[Path] = None) -> Dict[str, object]:
    """Free space (MB) on the file system holding `path` (default: the cache folder), judged
    at its nearest existing parent, since the cache may not exist yet."""
    path = Path(path or cache_root())
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free // (1024 * 1024)
    except OSError:
        free = None
    return {"path": str(path), "free_mb": free}


def os_name() -> str:
    """PRETTY_NAME of /etc/os-release ("Debian GNU/Linux 12 (bookworm)"), else platform's."""
    try:
        for line in OS_RELEASE.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def l4t_release(text: Optional[str] = None) -> Optional[str]:
    """L4T release from /etc/nv_tegra_release ("# R36 (release), REVISION: 4.0, ..." -> "36.4.0")."""
    text = nvidia.read_text(nvidia.TEGRA_RELEASE) if text is None else text
    if not text or not text.lstrip("# ").startswith("R"):
        return None
    major = text.lstrip("# ")[1:].split()[0]
    revision = text.split("REVISION:")[1].split(",")[0].strip() if "REVISION:" in text else ""
    return f"{major}.{revision}" if revision else major


def jetpack_version(l4t: Optional[str]) -> Optional[str]:
    """JetPack's version: the nvidia-jetpack package's, else the one of the L4T release."""
    dpkg = shutil.which("dpkg-query")
    if dpkg:
        try:
            out = subprocess.run([dpkg, "-W", "-f=${Version}", "nvidia-jetpack"], capture_output=True,
                                 text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().split("-")[0].split("+")[0]
    return L4T_JETPACK.get(".".join((l4t or "").split(".")[:2]))


def jetson() -> Optional[Dict[str, Optional[str]]]:
    """{"model", "l4t", "jetpack"} on a Jetson, else None."""
    if not nvidia.is_jetson():
        return None
    l4t = l4t_release()
    return {"model": nvidia.jetson_model() or "NVIDIA Jetson", "l4t": l4t, "jetpack": jetpack_version(l4t)}


def opencv() -> Optional[Dict[str, object]]:
    """OpenCV's version and whether it has GStreamer, None when there is no cv2, or the
    import's error (a system cv2 built for another numpy fails here, not later in a demo)."""
    if not deps.available("cv2"):
        return None
    try:
        import cv2

        from edge_deeplab.demos.sources import gstreamer_available

        return {"version": cv2.__version__, "gstreamer": gstreamer_available(cv2)}
    except (ImportError, AttributeError, OSError, RuntimeError) as exc:
        return {"error": first_line(exc)}


def install_line(runtime, on_jetson: bool) -> str:
    """The command that installs `runtime`'s engine here."""
    if runtime.name == "tensorrt" and on_jetson:
        return JETSON_TENSORRT
    return f'pip install "edge-deeplab[{runtime.extra}]"'


def formats(on_jetson: bool, versions: Dict[str, Optional[str]], gpu: str) -> List[Dict[str, object]]:
    """One entry per conversion target: can its runtime run here, with which engine, and if
    not, what is missing and the line that installs it."""
    from edge_deeplab.converters import CONVERTERS
    from edge_deeplab.runtimes import RUNTIMES

    rows = []
    for name, converter in CONVERTERS.items():
        runtime = RUNTIMES.get(converter.runtime)
        engines = [f"{lib} {versions[lib]}" for lib in runtime.libraries if versions.get(lib)]
        ok = bool(runtime.available())
        missing = "" if ok else _missing(runtime, engines, gpu)
        rows.append({
            "format": name, "suffix": converter.suffix, "precisions": list(converter.precisions),
            "runtime": runtime.name, "available": ok, "engine": engines[0] if engines else "",
            "missing": missing, "install": "" if ok else install_line(runtime, on_jetson),
        })
    return rows


def _missing(runtime, engines: List[str], gpu: str) -> str:
    if runtime.name == "tensorrt" and engines:
        return "an NVIDIA GPU that CUDA can use" if not gpu else "cuda-python for this CUDA driver"
    return " or ".join(runtime.libraries) or runtime.name


def collect() -> Dict[str, object]:
    """The doctor's findings as one JSON-ready dict (the schema in the module docstring)."""
    machine = cpu_features.normalize_machine(platform.machine())
    emulated, evidence = cpu_features.emulation(machine)
    versions = library_versions(LIBRARIES)
    board = jetson()
    gpu = nvidia.gpu_name()
    return {
        "schema": SCHEMA,
        "edge_deeplab": __version__,
        "host": {"os": os_name(), "kernel": f"{platform.system()} {platform.release()}",
                 "python": platform.python_version(), "executable": sys.executable},
        "cpu": {"model": cpu_model(), "core": cpu_features.arm_core(), "arch": machine,
                "cores": os.cpu_count() or 1, "usable_cores": usable_cores(),
                "features": cpu_features.isa_features(machine)},
        "emulated": emulated,
        "emulation": evidence,
        "jetson": board,
        "gpu": gpu,
        "memory": memory(),
        "disk": disk(),
        "libraries": versions,
        "opencv": opencv(),
        "formats": formats(board is not None, versions, gpu),
    }

"""Resolve docs/jetson.md's installs for a JetPack 6 board, from any machine.

`pip install --dry-run --only-binary=:all:` for Linux aarch64, CPython 3.10 (JetPack 6's
Ubuntu 22.04, glibc 2.35) with the doc's constraints, and checks what pip would install:
numpy below 2 (JetPack's OpenCV and TensorRT bindings are built against numpy 1.x; a pip
numpy 2 in the venv shadows the system one and breaks `import cv2`), cuda-python 12.x, and
none of the wheels that must come from JetPack or NVIDIA's Jetson index instead (OpenCV,
onnxruntime, TensorRT) nor TensorFlow. It needs the package registry, so it is a check to
run by hand (or before a release), not a unit test.

    python benchmarks/jetson_resolve.py [--out benchmarks/results/jetson_resolve.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# JetPack 6 is Ubuntu 22.04 (glibc 2.35): every manylinux tag up to 2_35 installs there.
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 36)]
PYTHON = "3.10"
# What docs/jetson.md has users pass with -c: keep in step with the doc.
CONSTRAINTS = ["numpy<2", "cuda-python>=12.6,<12.7"]
# Wheels pip must not bring: JetPack or NVIDIA's Jetson index provides them (OpenCV with
# GStreamer, TensorRT, onnxruntime-gpu), or TensorFlow, the 1.9 GB the edge install avoids.
JETPACK_OWN = ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "onnxruntime", "tensorrt")
EDGE_FORBIDDEN = JETPACK_OWN + ("tensorflow",)
INSTALLS = {  # name: (requirements, forbidden prefixes); one per install docs/jetson.md gives
    "tflite": (["{wheel}[tflite]"], EDGE_FORBIDDEN),
    "tflite+tensorrt-runtime": (["{wheel}[tflite]", "cuda-python"], EDGE_FORBIDDEN),
    "onnx-models": (["{wheel}", "onnx==1.23.2"], EDGE_FORBIDDEN),
    "convert-on-the-board": (["{wheel}[train]", "onnx==1.23.2", "tf2onnx==1.17.0", "cuda-python"], JETPACK_OWN),
}

def build_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(folder)],
                   check=True)
    return next(folder.glob("edge_deeplab-*.whl"))


def resolve(requirements: list, constraints: Path, report: Path) -> tuple:
    """(return code, pip's last lines, {name: version}) of one dry-run resolve."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
               "-c", str(constraints), "--report", str(report)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    done = subprocess.run(command + requirements, capture_output=True, text=True)
    tail = [line for line in (done.stdout + done.stderr).splitlines() if not line.startswith("WARNING: Location")]
    installs = {}
    if done.returncode == 0:
        for item in json.loads(report.read_text())["install"]:
            installs[item["metadata"]["name"].lower()] = item["metadata"]["version"]
    return done.returncode, tail[-3:], installs


def problems(installs: dict, forbidden: tuple) -> list:
    found = [f"{name} would be installed" for name in installs if name.startswith(forbidden)]
    numpy = installs.get("numpy", "")
    if numpy and int(numpy.split(".")[0]) >= 2:
        found.append(f"numpy {numpy} (JetPack's cv2 needs numpy 1.x)")
    cuda = installs.get("cuda-python", "")
    if cuda and not cuda.startswith("12."):
        found.append(f"cuda-python {cuda} (JetPack 6 has CUDA 12)")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/jetson_resolve.json")
    args = parser.parse_args(argv)
    results, failed = {}, False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = build_wheel(tmp)
        constraints = tmp / "constraints.txt"
        constraints.write_text("\n".join(CONSTRAINTS) + "\n")
        for name, (requirements, forbidden) in INSTALLS.items():
            code, tail, installs = resolve([r.format(wheel=wheel) for r in requirements], constraints,
                                           tmp / f"{name}.json")
            found = problems(installs, forbidden) if code == 0 else [f"pip could not resolve: {' / '.join(tail)}"]
            failed |= bool(found)
            results[name] = {"requirements": requirements, "installs": installs, "problems": found}
            verdict = "ok" if not found else "FAILED: " + "; ".join(found)
            print(f"{name:24s} {verdict}")
            print("    " + " ".join(f"{k}=={v}" for k, v in sorted(installs.items())))
    summary = {"python": PYTHON, "platforms": PLATFORMS, "constraints": CONSTRAINTS, "installs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".json.partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    partial.replace(args.out)
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

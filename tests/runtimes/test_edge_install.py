"""The edge install: `edge-deeplab[tflite]` + OpenCV in a fresh venv, no TensorFlow.

Proves on a real install that predict, bench, verify and demo run on a converted model with
TensorFlow neither installed nor imported (a Jetson or a small CPU box has no 1.9 GB wheel).
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPENCV = "opencv-python==5.0.0.93"

CHECK = """
import importlib.util, sys
assert importlib.util.find_spec("tensorflow") is None, "tensorflow is installed"
from edge_deeplab.cli.main import main
status = main(["predict", sys.argv[1], sys.argv[2], "--out", sys.argv[3]])
status |= main(["bench", sys.argv[1], "--min-time", "0.2"])
status |= main(["verify", sys.argv[1]])  # the self-test, on LiteRT alone
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "tensorflow was imported"
sys.exit(status)
"""


def _run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{cmd[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_tflite_extra_runs_predict_without_tensorflow(tmp_path, tiny_run, tiny_data):
    pytest.importorskip("tensorflow")
    from edge_deeplab.converters import convert
    from edge_deeplab.imageio import write_image

    results = convert(tiny_run, targets=["tflite"], precisions=["int8"], out_dir=tmp_path / "art",
                      calib_data="synthetic", calib_size=64, parity_images=8, progress=False)
    model = results[0].path
    image = tmp_path / "scene.png"
    write_image(image, tiny_data[0][0])

    env_dir = tmp_path / "edge-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", f"{REPO}[tflite]", OPENCV])
    _run([python, "-c", CHECK, model, image, tmp_path / "masks"], cwd=tmp_path)

    mask = tmp_path / "masks" / "scene_mask.png"
    assert mask.is_file() and (tmp_path / "masks" / "scene_overlay.png").is_file()
    listed = _run([python, "-m", "pip", "list"]).stdout.lower()
    assert "tensorflow" not in listed and "keras" not in listed

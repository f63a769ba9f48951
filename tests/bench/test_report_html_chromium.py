"""report.html opened in a real headless Chromium: the table and the embedded charts render.

Skipped where Debian's `chromium` is not installed (`apt-get install chromium`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from chromium_cdp import CHROMIUM
from report_rows import hand_examples, hand_report, hand_rows

from edge_deeplab.bench.report import write_report

pytestmark = pytest.mark.slow

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=5000",
)
PARETO_RED = (214, 39, 40)  # matplotlib's tab:red, the Pareto front's colour in the scatter


def _chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    profile = tmp_path / f"profile-{name}"  # a private profile per run: no shared state
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within 120 s: {' '.join(command)}")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    rows = hand_rows()
    return write_report(hand_report(rows, max_drop=1.0), out, hand_examples(rows))["html"]


def test_chromium_builds_the_table_and_images(page, tmp_path):
    done = _chromium(tmp_path, "dom", "--dump-dom", page.as_uri())
    dom = done.stdout
    assert done.returncode == 0 and "<table" in dom, done.stderr[-2000:]
    table = dom[dom.index('id="results"') : dom.index("</table>")]
    assert len(re.findall(r"<tr[ >]", table)) == 1 + len(hand_rows())
    assert "tflite int8" in table and "not available" in table
    images = re.findall(r'<img [^>]*src="(data:image/png;base64,[^"]+)"', dom)
    assert len(images) == 3  # scatter, per-class Δ IoU, examples


def test_chromium_screenshot_shows_the_page(page, tmp_path):
    cv2 = pytest.importorskip("cv2")
    shot = tmp_path / "report.png"
    done = _chromium(
        tmp_path, "shot", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (2000, 1280)
    assert float(image.std()) > 10.0  # not a blank page of one colour
    rgb = image[..., ::-1].astype(np.int16)
    red = np.all(np.abs(rgb - np.array(PARETO_RED)) <= 12, axis=-1)
    # The Pareto front is drawn in tab:red: the scatter PNG was decoded and painted.
    assert int(red.sum()) > 50, int(red.sum())  # 0 when the chart is not painted

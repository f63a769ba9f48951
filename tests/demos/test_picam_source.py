"""`picam://0`: the Raspberry Pi camera through picamera2, tested with a fake `picamera2`
package that implements the calls the source makes as the real one does (a Picamera2 per
camera number, IndexError for a camera that is not there, create_video_configuration with a
main stream of a size and format, configure, start, capture_array("main"), stop, close; its
"RGB888" arrays are B, G, R in memory)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edge_deeplab.cli.main import main
from edge_deeplab.demos.picamera_source import PicameraSource
from edge_deeplab.demos.sources import parse_source
from edge_deeplab.errors import SourceError

FAKE_PICAMERA2 = '''
"""A stand-in for picamera2 on a machine without a Pi camera (one camera, number 0)."""
import numpy as np

CAMERAS = 1
instances = []


class Picamera2:
    def __init__(self, camera_num=0):
        if camera_num >= CAMERAS:
            raise IndexError("list index out of range")
        self.camera_num, self.config, self.started, self.closed, self.frames = camera_num, None, False, False, 0
        instances.append(self)

    def create_video_configuration(self, main={}, lores=None, raw=None, transform=None, colour_space=None,
                                   buffer_count=6, controls={}, display="main", encode="main", queue=True,
                                   sensor={}, use_case="video"):
        return {"use_case": use_case, "buffer_count": buffer_count, "controls": dict(controls),
                "main": {"format": main.get("format", "XBGR8888"), "size": tuple(main.get("size", (1280, 720)))}}

    def configure(self, camera_config=None):
        self.config = camera_config

    def start(self, config=None, show_preview=False):
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def capture_array(self, name="main", wait=None):
        if not self.started:
            raise RuntimeError("Camera is not running")
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 200  # blue, stored first as libcamera's RGB888 is
        frame[:, (self.frames * 7) % width] = 255
        self.frames += 1
        return frame

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True
'''


@pytest.fixture
def fake_picamera2(tmp_path, monkeypatch):
    """The fake package on sys.path (and any real one shadowed); returns the imported module."""
    package = tmp_path / "fake" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_PICAMERA2)
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    import picamera2

    return picamera2


@pytest.fixture
def no_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # `import picamera2` raises ImportError


def test_picam_uri_options_set_camera_size_and_fps():
    source = parse_source("picam://0?width=320&height=240&fps=15")
    assert isinstance(source, PicameraSource) and source.live
    assert (source.camera, source.size, source.fps) == (0, (240, 320), 15.0)
    assert parse_source("picam://1").size == (720, 1280) and parse_source("picam://1").camera == 1


@pytest.mark.parametrize("uri, message", [("picam://front", "picam://CAMERA_NUMBER"),
                                          ("picam://0?width=wide", "not a whole number"),
                                          ("picam://0?height=0", "positive")])
def test_bad_picam_uris_are_refused_in_one_line(uri, message):
    with pytest.raises(SourceError, match=message):
        parse_source(uri)


def test_frames_are_bgr_at_the_size_asked(fake_picamera2):
    with parse_source("picam://0?width=160&height=120&fps=10") as source:
        frames = [source.read() for _ in range(3)]
    camera = fake_picamera2.instances[-1]
    assert camera.config["main"] == {"format": "RGB888", "size": (160, 120)}
    assert camera.config["controls"] == {"FrameRate": 10.0}
    assert all(frame.shape == (120, 160, 3) and frame.dtype == np.uint8 for frame in frames)
    assert frames[0][60, 80, 0] == 200 and frames[0][60, 80, 2] == 0  # blue stays first: BGR, as OpenCV's
    assert camera.closed and not camera.started


def test_a_camera_that_is_not_there(fake_picamera2):
    with pytest.raises(SourceError, match="no camera 1"):
        parse_source("picam://1").open()


def test_without_picamera2_the_error_names_the_package(no_picamera2):
    with pytest.raises(SourceError, match="sudo apt install python3-picamera2"):
        parse_source("picam://0").open()


@pytest.fixture(scope="module")
def anchor(shared_dir):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("cv2")
    return shared_dir / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite"


def test_demo_runs_on_the_fake_camera(fake_picamera2, anchor, tmp_path):
    out, stats = tmp_path / "picam.mp4", tmp_path / "stats.json"
    status = main(["demo", str(anchor), "--source", "picam://0?width=160&height=120", "--preset", "pascal-voc",
                   "--no-show", "--max-frames", "4", "--output", str(out), "--stats", str(stats)])
    assert status == 0
    assert out.is_file() and out.stat().st_size > 0
    assert json.loads(stats.read_text())["frames"] == 4
    assert fake_picamera2.instances[-1].closed


def test_demo_without_picamera2_says_what_to_install(no_picamera2, anchor, capsys):
    assert main(["demo", str(anchor), "--source", "picam://0", "--preset", "pascal-voc", "--no-show"]) == 2
    err = capsys.readouterr().err
    assert "sudo apt install python3-picamera2" in err and "Traceback" not in err

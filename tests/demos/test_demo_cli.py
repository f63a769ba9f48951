"""`edge-deeplab demo` end to end: headless runs, recordings, stats, reconnects, errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import default_sigint

from edge_deeplab.cli.common import add_log_flags
from edge_deeplab.cli.demo_cmd import add_demo_arguments
from edge_deeplab.cli.main import build_parser, main
from edge_deeplab.demos import jetson
from edge_deeplab.demos.pipeline import DemoOptions, run_pipeline
from edge_deeplab.demos.sources import Source
from edge_deeplab.errors import InvalidInputError, SourceError

cv2 = pytest.importorskip("cv2")


STATS_KEYS = {
    "frames",
    "fps",
    "model_fps",
    "latency_ms",
    "stages",
    "flicker",
    "dropped",
    "class_pixels",
}
STAGES = {"capture", "preprocess", "infer", "postprocess", "render"}


def decoded_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def anchor(shared_dir):
    path = shared_dir / "anchors" / "pascal" / "deeplabv3_257_mv_gpu.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    pytest.importorskip("ai_edge_litert")
    return path


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_run):
    from edge_deeplab.runtimes import load_runtime
    from edge_deeplab.segmenter import Segmenter

    segmenter = Segmenter(load_runtime(tiny_run))
    yield segmenter
    segmenter.runtime.close()


# ---------------------------------------------------------------- headless runs


def test_headless_synthetic_run_records_every_frame(tiny_run, tmp_path):
    out, stats_path = tmp_path / "demo.mp4", tmp_path / "stats.json"
    status = main(
        [
            "demo",
            str(tiny_run),
            "--source",
            "synthetic?size=64x96&fps=0&frames=40",
            "--no-show",
            "--max-frames",
            "24",
            "--smooth",
            "0.5",
            "--view",
            "side",
            "--output",
            str(out),
            "--stats",
            str(stats_path),
        ]
    )
    assert status == 0
    stats = json.loads(stats_path.read_text())
    assert STATS_KEYS <= set(stats) and set(stats["stages"]) == STAGES
    assert stats["frames"] == 24 and stats["dropped"] == 0 and stats["end"] == "max frames"
    assert stats["fps"] > 0 and stats["model_fps"] > 0 and stats["latency_ms"]["p50"] > 0
    assert 0.0 <= stats["flicker"] <= 1.0 and stats["power"] is None
    assert sum(stats["class_pixels"].values()) == pytest.approx(1.0, abs=1e-3)
    assert decoded_frames(out) == 24
    assert not list(tmp_path.glob(".*partial*"))  # the temporary recording was renamed


def test_live_synthetic_camera_drops_instead_of_lagging(tiny_segmenter):
    from edge_deeplab.demos.sources import parse_source

    source = parse_source("synthetic?size=64x64&fps=400")  # a camera faster than the model
    with source:
        stats = run_pipeline(tiny_segmenter, source, DemoOptions(max_frames=15, view="blur"))
    assert stats["frames"] == 15 and stats["live"] and stats["dropped"] > 0


def test_smoothing_belongs_to_the_segmenter_not_to_a_run(tiny_segmenter):
    from edge_deeplab.demos.sources import parse_source

    before = list(tiny_segmenter.score_filters)
    with parse_source("synthetic?size=64x64&fps=0&frames=4") as source:
        with pytest.raises(InvalidInputError, match="smoothing_filters"):
            run_pipeline(tiny_segmenter, source, DemoOptions(smooth=0.5))
    assert tiny_segmenter.score_filters == before  # the shared Segmenter is left as it was


def test_real_video_finds_the_people_walking(anchor, shared_dir, tmp_path):
    video = shared_dir / "media" / "one-by-one-person-detection.mp4"
    out, stats_path = tmp_path / "people.mp4", tmp_path / "stats.json"
    # People walk through the room from about frame 250 on; 60 frames keep this quick.
    status = main(
        [
            "demo",
            str(anchor),
            "--preset",
            "pascal-voc",
            "--source",
            f"{video}?start=250",
            "--no-show",
            "--max-frames",
            "60",
            "--threads",
            "2",
            "--output",
            str(out),
            "--stats",
            str(stats_path),
        ]
    )
    assert status == 0
    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == 60 and stats["dropped"] == 0 and not stats["live"]
    assert stats["class_pixels"].get("person", 0.0) > 0.02
    assert decoded_frames(out) == 60
    first = cv2.VideoCapture(str(out))
    ok, frame = first.read()
    first.release()
    assert ok and frame.shape == (432, 768, 3)


# ---------------------------------------------------------------- reconnects and errors


class DroppingCamera(Source):
    """A live camera that goes dark after `good` frames; it comes back if `recover`."""

    live = True

    def __init__(self, good, recover, size=(48, 64)):
        super().__init__("fake://camera")
        self.good, self.recover, self.size = good, recover, size
        self.sent = 0
        self.opens = 0

    def open(self):
        self.opens += 1
        if self.opens > 1 and not self.recover:
            raise SourceError("fake://camera: cannot open camera")
        if self.opens > 1:
            self.good = 10**9
            self.size = (self.size[0] * 2, self.size[1] * 2)  # it came back at a new resolution
        return self

    def read(self):
        if self.sent >= self.good:
            return None
        self.sent += 1
        time.sleep(0.01)
        rng = np.random.default_rng(self.sent)
        return rng.integers(0, 255, (*self.size, 3), dtype=np.uint8)


def test_camera_loss_is_survived_with_a_new_resolution(tiny_segmenter, tmp_path, logged):
    camera = DroppingCamera(good=5, recover=True).open()
    options = DemoOptions(max_frames=12, reconnect_timeout=5.0, output=str(tmp_path / "r.mp4"))
    stats = run_pipeline(tiny_segmenter, camera, options)
    assert stats["frames"] == 12 and stats["reconnects"] == 1 and stats["end"] == "max frames"
    assert stats["resolution_changes"] == 1
    assert any("stopped delivering" in m for m in logged)
    assert decoded_frames(tmp_path / "r.mp4") == 12


def test_camera_that_stays_lost_ends_the_demo_cleanly(tiny_segmenter, logged):
    camera = DroppingCamera(good=4, recover=False).open()
    options = DemoOptions(max_frames=50, reconnect_timeout=0.3)
    stats = run_pipeline(tiny_segmenter, camera, options)
    assert stats["end"] == "source lost" and 1 <= stats["frames"] <= 4
    assert any("camera lost" in m for m in logged)


def test_missing_source_is_an_immediate_one_line_error(tiny_run, tmp_path, capsys):
    t0 = time.perf_counter()
    assert main(["demo", str(tiny_run), "--source", str(tmp_path / "none.mp4"), "--no-show"]) == 2
    assert main(["demo", str(tiny_run), "--source", "v4l2:///dev/video97", "--no-show"]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 2 and "none.mp4: no such file or folder" in err[0] and "/dev/video97" in err[1]
    )


def test_show_without_a_display_is_a_clear_error(tiny_run, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("display detection is for Linux")
    assert main(["demo", str(tiny_run), "--source", "synthetic"]) == 2
    assert "--no-show" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--alpha", "1.5"], "--alpha"),
        (["--smooth", "0"], "--smooth"),
        (["--class", "unicorn"], "unicorn"),
    ],
)
def test_bad_flags_name_the_value(tiny_run, flags, message, capsys):
    argv = ["demo", str(tiny_run), "--source", "synthetic?fps=0&frames=2", "--no-show", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- entry points


def test_cli_and_python_module_share_one_flag_definition():
    argv = [
        "m.tflite",
        "--source",
        "csi://0",
        "--view",
        "blur",
        "--class",
        "person",
        "--smooth",
        "0.4",
        "--no-show",
        "--max-frames",
        "5",
        "--realtime",
        "--reconnect-timeout",
        "3",
        "--preset",
        "pascal-voc",
    ]
    standalone = argparse.ArgumentParser()
    add_demo_arguments(standalone)
    add_log_flags(standalone)  # as `standalone_main` adds them, and the CLI root to every command
    ours = vars(standalone.parse_args(argv))
    theirs = vars(build_parser().parse_args(["demo", *argv]))
    theirs.pop("handler"), theirs.pop("command")
    assert ours == theirs
    assert ours["target"] == "person" and ours["show"] is False and ours["reconnect_timeout"] == 3.0


def test_jetson_defaults_pick_the_gpu_engines(monkeypatch):
    def args(model, **extra):
        return argparse.Namespace(model=model, runtime="auto", device=None, **extra)

    engine = args("seg.engine")
    jetson.jetson_defaults(engine)
    assert engine.runtime == "tensorrt"
    monkeypatch.delenv("ORT_TENSORRT_FP16_ENABLE", raising=False)
    onnx = args("seg.onnx")
    jetson.jetson_defaults(onnx)
    assert (onnx.runtime, onnx.device) == ("onnxruntime", "tensorrt")
    import os

    assert os.environ["ORT_TENSORRT_FP16_ENABLE"] == "1"
    with pytest.raises(InvalidInputError, match="--to tensorrt"):
        jetson.jetson_defaults(args("seg.tflite"))
    if not jetson.is_jetson():
        assert jetson.power_state() is None


def test_demo_runs_without_tensorflow(anchor):
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from edge_deeplab.cli.main import main\n"
        f"status = main(['demo', {str(anchor)!r}, '--preset', 'pascal-voc', '--source',"
        " 'synthetic?size=96x128&fps=0&frames=3', '--no-show'])\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 frames (end of stream)" in result.stdout


@pytest.mark.parametrize("signum, status, end", [(2, 130, "interrupted"), (15, 143, "terminated")])
def test_signal_keeps_the_recording_and_writes_the_stats(anchor, tmp_path, signum, status, end):
    """Ctrl-C / SIGTERM on an endless headless demo: recording finalised, stats written."""
    import signal as signals

    out, stats_path = tmp_path / "demo.mp4", tmp_path / "stats.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "edge_deeplab.cli.main", "demo", str(anchor), "--preset", "pascal-voc",
         "--source", "synthetic?size=96x128&fps=0", "--no-show", "--output", str(out), "--stats", str(stats_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".*partial*")) and child.poll() is None:
        time.sleep(0.2)  # the recorder's staging file appears once frames flow
    time.sleep(3.0)
    child.send_signal(signals.Signals(signum))
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == status, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"{end} after" in stderr.strip().splitlines()[-1]
    stats = json.loads(stats_path.read_text())
    assert stats["end"] == end and stats["frames"] > 0
    assert out.is_file() and decoded_frames(out) >= 1
    assert not list(tmp_path.glob(".*partial*"))


def test_corrupt_frame_mid_folder_keeps_the_recording_so_far(tiny_run, tmp_path, capsys):
    from edge_deeplab.imageio import write_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        write_image(folder / f"f{i:02d}.png", np.full((64, 80, 3), i * 30, np.uint8))
    (folder / "f05.png").write_bytes(b"\x89PNG but not really" * 20)
    out = tmp_path / "out" / "demo.mp4"
    status = main(["demo", str(tiny_run), "--source", str(folder), "--no-show", "--output", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    assert "f05.png" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert "recording up to the failure kept" in err
    assert out.is_file() and decoded_frames(out) >= 1
    assert [p.name for p in out.parent.iterdir()] == ["demo.mp4"]  # no hidden .partial file


def test_truncated_video_says_how_many_frames_it_played(tiny_run, tmp_path, capsys):
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 64))
    for i in range(40):
        writer.write(np.full((64, 80, 3), i * 5, np.uint8))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    stats_path = tmp_path / "stats.json"
    status = main(["demo", str(tiny_run), "--source", str(tmp_path / "cut.avi"), "--no-show",
                   "--stats", str(stats_path)])
    assert status == 0
    err = capsys.readouterr().err
    stats = json.loads(stats_path.read_text())
    assert stats["end"] == "truncated stream"
    assert f"ends after {stats['frames']} of the 40 frames it announces" in err
    assert main(["demo", str(tiny_run), "--source", str(tmp_path / "full.avi"), "--no-show",
                 "--stats", str(stats_path)]) == 0
    assert json.loads(stats_path.read_text())["end"] == "end of stream"

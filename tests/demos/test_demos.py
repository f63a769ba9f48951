"""Demo building blocks: source URIs, capture hand-over, reconnects, smoothing, rendering."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_deeplab.demos import sources as sources_mod
from edge_deeplab.demos.capture import END, CaptureThread, Mailbox
from edge_deeplab.demos.render import VIEWS, Renderer, class_index, draw_hud
from edge_deeplab.demos.smoothing import FlickerMeter, ProbabilitySmoother, flicker, is_scene_cut
from edge_deeplab.demos.sources import (
    FolderSource,
    OpenCVSource,
    Source,
    csi_pipeline,
    gstreamer_available,
    parse_source,
)
from edge_deeplab.errors import InvalidInputError, SourceError

pytest.importorskip("cv2")


# ---------------------------------------------------------------- fake sources


class CountingCamera(Source):
    """A live source as fast as the CPU: frame k is filled with k (mod 256) in channel 0,
    its full index in `produced`."""

    live = True

    def __init__(self, shape=(8, 8, 3)):
        super().__init__("fake://counting")
        self.shape = shape
        self.produced = 0

    def read(self):
        image = np.zeros(self.shape, np.uint8)
        image[0, 0, 0] = self.produced % 256
        self.produced += 1
        time.sleep(0.001)  # a 1 kHz camera
        return image


class FlakyCamera(Source):
    """A camera that delivers `good` frames, then nothing; reopening fails `refusals`
    times, then it delivers again (or never, when `recover` is False)."""

    live = True

    def __init__(self, good=5, refusals=1, recover=True, shape=(8, 8, 3)):
        super().__init__("fake://flaky")
        self.good, self.refusals, self.recover, self.shape = good, refusals, recover, shape
        self.delivered = 0
        self.opens = 0
        self.broken = False

    def open(self):
        self.opens += 1
        if self.opens > 1:  # a reopen
            if self.refusals > 0 or not self.recover:
                self.refusals -= 1
                raise SourceError("fake://flaky: cannot open camera")
            self.broken = False
            self.good = 10**9
        return self

    def read(self):
        if self.broken or self.delivered >= self.good:
            self.broken = True
            return None
        self.delivered += 1
        time.sleep(0.002)
        return np.full(self.shape, self.delivered % 256, np.uint8)


class ListFile(Source):
    """A non-live (file-like) source over a list of frames."""

    def __init__(self, frames, fps=None):
        super().__init__("fake://file")
        self.frames = list(frames)
        self.fps = fps

    def read(self):
        return self.frames.pop(0) if self.frames else None


def drain(mailbox, wait=0.0, limit=None):
    items = []
    while limit is None or len(items) < limit:
        item = mailbox.get(timeout=5.0)
        if item is END or item is None:
            break
        items.append(item)
        time.sleep(wait)
    return items


# ---------------------------------------------------------------- source URIs


def test_csi_uri_builds_the_nvargus_pipeline():
    source = parse_source("csi://1?width=1920&height=1080&fps=60&flip=2")
    assert isinstance(source, OpenCVSource) and source.live and source.backend == "CAP_GSTREAMER"
    assert source.target == (
        "nvarguscamerasrc sensor-id=1 ! "
        "video/x-raw(memory:NVMM),width=1920,height=1080,framerate=60/1 ! "
        "nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )
    assert parse_source("csi://0").target == csi_pipeline(0, 1280, 720, 30, 0)


def test_rtsp_uri_uses_gstreamer_when_opencv_has_it(monkeypatch):
    monkeypatch.setattr(sources_mod, "gstreamer_available", lambda cv2=None: True)
    source = parse_source("rtsp://cam.local:554/live?latency=50")
    assert source.backend == "CAP_GSTREAMER" and source.live
    assert source.target.startswith('rtspsrc location="rtsp://cam.local:554/live" latency=50 ! ')
    assert source.target.endswith("! appsink drop=true max-buffers=1")
    monkeypatch.setattr(sources_mod, "gstreamer_available", lambda cv2=None: False)
    source = parse_source("rtsp://cam.local:554/live?latency=50&channel=2")
    assert source.backend == "CAP_FFMPEG" and source.target == "rtsp://cam.local:554/live?channel=2"


def test_gstreamer_detection_reads_the_build_information():
    class FakeCV2:
        def __init__(self, text):
            self.text = text

        def getBuildInformation(self):
            return self.text

    assert not gstreamer_available(FakeCV2("  Video I/O:\n    GStreamer:                   NO\n"))
    assert gstreamer_available(
        FakeCV2("  Video I/O:\n    GStreamer:                   YES (1.20.3)\n")
    )
    assert not gstreamer_available(FakeCV2("  Video I/O:\n    FFMPEG: YES\n"))


def test_csi_without_gstreamer_is_a_clear_error():
    if gstreamer_available():
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="GStreamer"):
        parse_source("csi://0").open()


@pytest.mark.parametrize(
    "uri", ["no/such/clip.mp4", "v4l2:///dev/video97", "ftp://host/x", "file:///nope.avi"]
)
def test_unopenable_sources_fail_at_once(uri):
    with pytest.raises(SourceError):
        parse_source(uri).open()


def test_missing_camera_index_is_a_source_error():
    t0 = time.perf_counter()
    with pytest.raises(SourceError, match="cannot open camera"):
        parse_source("97").open()
    assert time.perf_counter() - t0 < 10


def test_folder_and_image_sources_read_bgr_frames(tmp_path):
    from edge_deeplab.imageio import write_image

    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[..., 0] = 200  # red
    for name in ("b.png", "a.png"):
        write_image(tmp_path / name, rgb)
    with parse_source(str(tmp_path)) as folder:
        assert isinstance(folder, FolderSource) and not folder.live
        first, second, end = folder.read(), folder.read(), folder.read()
    assert first.shape == (12, 16, 3) and first[0, 0, 2] == 200 and first[0, 0, 0] == 0  # BGR
    assert second is not None and end is None
    with parse_source(str(tmp_path / "a.png")) as single:
        assert single.read() is not None and single.read() is None
    with pytest.raises(SourceError, match="no such file or folder"):
        parse_source(str(tmp_path / "empty_dir_does_not_exist"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        parse_source(str(tmp_path / "empty")).open()


def test_synthetic_source_is_deterministic_and_moves():
    a = parse_source("synthetic?size=48x64&fps=0&frames=5&seed=3").open()
    b = parse_source("synthetic?size=48x64&fps=0&frames=5&seed=3").open()
    frames_a = [a.read() for _ in range(6)]
    frames_b = [b.read() for _ in range(5)]
    assert frames_a[5] is None and not a.live
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
    assert frames_a[0].shape == (48, 64, 3) and frames_a[0].dtype == np.uint8
    assert not np.array_equal(frames_a[0], frames_a[4])  # the objects move
    assert parse_source("synthetic").live  # by default it behaves like a 30 fps camera


# ---------------------------------------------------------------- capture


def test_mailbox_latest_keeps_only_the_newest():
    box = Mailbox("latest")
    for i in range(5):
        assert box.put(i)
    assert box.get(timeout=0) == 4 and box.dropped == 4
    assert box.get(timeout=0.01) is None
    box.close()
    assert box.get() is END


def test_live_capture_drops_stale_frames_for_a_slow_consumer():
    camera = CountingCamera()
    capture = CaptureThread(camera, reconnect_timeout=0)
    assert capture.drop
    capture.start()
    got, lags = [], []
    while len(got) < 6:
        frame = capture.frames.get(timeout=5.0)
        assert frame is not None and frame is not END
        lags.append(camera.produced - 1 - frame.index)  # frames newer than the one handed over
        got.append(frame)
        time.sleep(0.05)  # a slow consumer: ~50 camera frames go by
    capture.stop()
    capture.join(5)
    indices = [frame.index for frame in got]
    assert indices == sorted(indices) and capture.dropped > 0
    assert min(np.diff(indices)) > 5  # what was produced while the consumer slept was skipped
    assert np.median(lags) <= 2  # and what it got was the newest frame, not a stale one
    assert all(frame.image[0, 0, 0] == frame.index % 256 for frame in got)


def test_file_capture_keeps_every_frame_in_order():
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(12)]
    capture = CaptureThread(ListFile(frames))
    assert not capture.drop
    capture.start()
    got = drain(capture.frames, wait=0.01)
    capture.join(5)
    assert [f.index for f in got] == list(range(12)) and capture.dropped == 0
    assert [int(f.image[0, 0, 0]) for f in got] == list(range(12))
    assert capture.end_reason == "end of stream"


def test_realtime_paces_a_file_at_its_frame_rate():
    frames = [np.zeros((4, 4, 3), np.uint8) for _ in range(6)]
    capture = CaptureThread(ListFile(frames, fps=50.0), realtime=True)
    t0 = time.perf_counter()
    capture.start()
    assert len(drain(capture.frames)) == 6
    assert time.perf_counter() - t0 >= 5 / 50.0


def test_lost_camera_reconnects_and_continues(logged):
    camera = FlakyCamera(good=5, refusals=2, recover=True).open()
    capture = CaptureThread(camera, reconnect_timeout=5.0, retry_interval=0.01)
    capture.start()
    got = drain(capture.frames, limit=10)
    capture.stop()
    capture.join(5)
    assert len(got) == 10 and capture.reconnects == 1
    assert any("stopped delivering" in m for m in logged)
    assert any("reconnected" in m for m in logged)
    assert capture.error is None


def test_camera_that_never_comes_back_ends_cleanly(logged):
    camera = FlakyCamera(good=3, recover=False).open()
    capture = CaptureThread(camera, reconnect_timeout=0.2, retry_interval=0.02)
    capture.start()
    got = drain(capture.frames)
    capture.join(5)
    assert len(got) <= 3 and capture.end_reason == "source lost" and capture.error is None
    assert any("giving up" in m for m in logged)


def test_capture_hands_unexpected_errors_to_the_caller():
    class Broken(Source):
        live = True

        def read(self):
            raise RuntimeError("driver crashed")

    capture = CaptureThread(Broken("fake://broken"))
    capture.start()
    assert capture.frames.get(timeout=5) is END
    capture.join(5)
    assert capture.end_reason == "capture failed" and "driver crashed" in str(capture.error)


# ---------------------------------------------------------------- smoothing and flicker


def test_ema_follows_the_formula():
    p1 = np.array([[[1.0, 0.0]]], np.float32)
    p2 = np.array([[[0.0, 1.0]]], np.float32)
    smoother = ProbabilitySmoother(0.25, cut_threshold=None)
    np.testing.assert_allclose(smoother.update(p1), p1)
    np.testing.assert_allclose(smoother.update(p2), [[[0.75, 0.25]]])
    np.testing.assert_allclose(smoother.update(p2), [[[0.5625, 0.4375]]])
    assert smoother.labels().tolist() == [[0]]
    with pytest.raises(InvalidInputError):
        ProbabilitySmoother(0.0)


def test_flicker_on_a_hand_made_sequence():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[0, :] = 1  # 10 of 100 pixels change
    assert flicker([a, b, b]) == pytest.approx(0.05)
    assert flicker([a]) is None
    meter = FlickerMeter()
    assert (
        meter.update(a) is None and meter.update(np.zeros((5, 5), np.uint8)) is None
    )  # size change
    assert meter.update(np.ones((5, 5), np.uint8)) == 1.0 and meter.pairs == 1


def test_smoothing_removes_boundary_flicker():
    # Half the frame is class 0 at 0.6, but every third frame noise tips it to 0.4: the raw
    # argmax flips there twice in every three frames; the average never drops below 0.5.
    frames = []
    for t in range(21):
        p = np.zeros((8, 8, 2), np.float32)
        p[..., 0] = 0.9
        p[:, :4, 0] = 0.4 if t % 3 == 2 else 0.6
        p[..., 1] = 1.0 - p[..., 0]
        frames.append(p)
    raw = flicker(np.argmax(p, -1) for p in frames)
    smoother = ProbabilitySmoother(0.3, cut_threshold=None)
    smooth = flicker(np.argmax(smoother.update(p), -1) for p in frames)
    assert raw == pytest.approx(0.5 * 2 / 3, abs=0.02)
    assert smooth == 0.0


def test_smoothing_resets_on_size_change_and_scene_cut():
    smoother = ProbabilitySmoother(0.5)
    dark, bright = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 220, np.uint8)
    a, b = np.full((16, 16, 2), 0.5, np.float32), np.zeros((16, 16, 2), np.float32)
    smoother.update(a, dark)
    np.testing.assert_allclose(smoother.update(b, dark + 5), 0.25)  # no cut: averaged
    np.testing.assert_allclose(smoother.update(b, bright), 0.0)  # cut: restarted
    assert smoother.resets == 1
    small = np.ones((4, 4, 2), np.float32)
    np.testing.assert_allclose(smoother.update(small, bright[:4, :4]), 1.0)  # size change
    assert smoother.resets == 2
    assert not is_scene_cut(None, np.zeros((32, 32), np.float32))


def test_smoothing_resets_when_only_the_frame_size_changes():
    """upsample="labels" keeps probabilities at the model's size: the frame's size decides."""
    smoother = ProbabilitySmoother(0.5, cut_threshold=None)
    probs = np.full((8, 8, 2), 0.5, np.float32)
    smoother.update(probs, np.zeros((432, 768, 3), np.uint8))
    np.testing.assert_allclose(smoother.update(np.zeros_like(probs), np.zeros((432, 768, 3), np.uint8)), 0.25)
    np.testing.assert_allclose(smoother.update(np.ones_like(probs), np.zeros((360, 480, 3), np.uint8)), 1.0)
    assert smoother.resets == 1


# ---------------------------------------------------------------- rendering


LABELS = ("background", "person", "dog")
PALETTE = ((0, 0, 0), (200, 0, 0), (0, 200, 0))


def scene():
    frame = np.full((40, 60, 3), 100, np.uint8)
    frame[::2] = 30  # texture, so blurring changes it
    labels = np.zeros((40, 60), np.uint8)
    labels[10:30, 20:40] = 1
    return frame, labels


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_renders(view):
    frame, labels = scene()
    out = Renderer(LABELS, PALETTE, view=view, target="person").render(frame, labels)
    assert out.dtype == np.uint8
    assert out.shape == ((40, 120, 3) if view == "side" else (40, 60, 3))


def test_overlay_and_mask_colours_are_bgr():
    frame, labels = scene()
    mask = Renderer(LABELS, PALETTE, view="mask", show_legend=False).render(frame, labels)
    assert mask[20, 30].tolist() == [0, 0, 200]  # RGB (200, 0, 0) drawn in BGR
    clear = Renderer(LABELS, PALETTE, view="overlay", alpha=0.0, show_legend=False)
    assert np.array_equal(clear.render(frame, labels), frame)


def test_renderer_colours_match_visualize():
    from edge_deeplab.visualize import colorize, overlay

    frame, labels = scene()
    labels[0:5, 0:5] = 2
    bgr = [c[::-1] for c in PALETTE]
    renderer = Renderer(LABELS, PALETTE, alpha=0.3, show_legend=False)
    assert np.array_equal(renderer.colorize(labels), colorize(labels, bgr))
    diff = renderer.render(frame, labels).astype(int) - overlay(frame, labels, bgr, 0.3)
    assert np.abs(diff).max() <= 1


def test_blur_and_replace_keep_the_chosen_class():
    frame, labels = scene()
    background = np.full((10, 10, 3), (1, 2, 250), np.uint8)
    blur = Renderer(LABELS, PALETTE, view="blur", target="person", show_legend=False).render(
        frame, labels
    )
    assert np.array_equal(blur[15:25, 25:35], frame[15:25, 25:35])  # person kept sharp
    assert not np.array_equal(blur[:, :8], frame[:, :8])  # background blurred
    replace = Renderer(
        LABELS, PALETTE, view="replace", target="Person", background=background, show_legend=False
    ).render(frame, labels)
    assert replace[2, 2].tolist() == [1, 2, 250] and np.array_equal(replace[20, 30], frame[20, 30])


def test_unknown_class_names_the_valid_ones():
    with pytest.raises(InvalidInputError, match="background, person, dog"):
        class_index(LABELS, "cat")


def test_renderer_keys_cycle_views_and_clamp_alpha():
    renderer = Renderer(LABELS, PALETTE, alpha=0.95)
    assert [renderer.next_view() for _ in VIEWS] == [*VIEWS[1:], VIEWS[0]]
    assert renderer.change_alpha(0.1) == 1.0 and renderer.change_alpha(-0.3) == 0.7


def test_hud_draws_in_place():
    frame, _ = scene()
    picture = np.full((60, 300, 3), 255, np.uint8)
    draw_hud(picture, 24.5, {"capture": 1.0, "infer": 20.0, "render": 3.0})
    assert (picture[:20, :100] < 255).any() and (picture[-1] == 255).all()


def test_threads_do_not_leak():
    before = threading.active_count()
    test_file_capture_keeps_every_frame_in_order()
    time.sleep(0.1)
    assert threading.active_count() <= before


def test_keys_switch_view_alpha_pause_and_snapshot(tmp_path, logged):
    from edge_deeplab.demos.pipeline import DemoOptions, _handle_key
    from edge_deeplab.demos.stats import Tally

    renderer, tally = Renderer(LABELS, PALETTE, alpha=0.5), Tally()
    options = DemoOptions(snapshot_dir=str(tmp_path))
    picture = np.zeros((8, 8, 3), np.uint8)
    assert _handle_key(ord("v"), picture, renderer, options, tally) is None
    assert renderer.view == "mask"
    _handle_key(ord("+"), picture, renderer, options, tally)
    _handle_key(ord("-"), picture, renderer, options, tally)
    _handle_key(ord("-"), picture, renderer, options, tally)
    assert renderer.alpha == pytest.approx(0.4)
    _handle_key(ord("s"), picture, renderer, options, tally)
    assert (tmp_path / "snapshot_0001.png").is_file()
    assert _handle_key(ord(" "), picture, renderer, options, tally) is picture
    assert logged == ["view: mask", f"snapshot: {tmp_path / 'snapshot_0001.png'}"]


def test_demo_tally_holds_a_fixed_window_of_timings():
    from types import SimpleNamespace

    from edge_deeplab.demos.stats import WINDOW, Tally, record

    tally = Tally()
    labels = np.zeros((4, 4), np.uint8)
    for i in range(WINDOW + 500):
        item = SimpleNamespace(frame=SimpleNamespace(captured=i * 0.1), labels=labels)
        record(tally, item, {"infer": 1.0, "preprocess": 0.5}, now=i * 0.1 + 0.02, fps=None)
    assert tally.frames == WINDOW + 500 and len(tally.latency) == WINDOW
    assert len(tally.stages["infer"]) == WINDOW
    assert tally.last_shown - tally.first_shown == pytest.approx((WINDOW + 499) * 0.1)


def test_recorder_refuses_a_video_whose_frames_never_reached_the_disk(tmp_path, monkeypatch):
    """OpenCV only warns when a write fails (a full disk): finish() reads the file back."""
    cv2 = pytest.importorskip("cv2")
    from edge_deeplab.demos.outputs import VideoRecorder
    from edge_deeplab.errors import InvalidInputError

    real = cv2.VideoWriter

    class FullDiskWriter:
        def __init__(self, *args):
            self._real = real(*args)

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return self._real.isOpened()

        def write(self, picture):  # what ENOSPC looks like from Python: nothing happens
            pass

        def release(self):
            self._real.release()

    monkeypatch.setattr(cv2, "VideoWriter", FullDiskWriter)
    recorder = VideoRecorder(tmp_path / "out.mp4", fps=10)
    for _ in range(5):
        recorder.write(np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="out.mp4: the recording could not be written"):
        recorder.finish()
    assert list(tmp_path.iterdir()) == []  # neither the final name nor the staging file


def test_recorder_keeps_a_good_video(tmp_path):
    pytest.importorskip("cv2")
    from edge_deeplab.demos.outputs import VideoRecorder

    recorder = VideoRecorder(tmp_path / "out.mp4", fps=10)
    for i in range(5):
        recorder.write(np.full((32, 48, 3), i * 40, np.uint8))
    assert recorder.finish() == tmp_path / "out.mp4"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_demo_options_are_frozen_and_check_themselves():
    import dataclasses

    from edge_deeplab.demos.pipeline import DemoOptions, smoothing_filters

    options = DemoOptions(smooth=0.4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.alpha = 0.9
    for bad, flag in (({"alpha": 1.5}, "--alpha"), ({"smooth": 0.0}, "--smooth"), ({"view": "x"}, "--view"),
                      ({"max_frames": -1}, "--max-frames"), ({"reconnect_timeout": -1.0}, "--reconnect-timeout")):
        with pytest.raises(InvalidInputError, match=flag):
            DemoOptions(**bad)
    (smoother,) = smoothing_filters(options)
    assert isinstance(smoother, ProbabilitySmoother) and smoother.alpha == 0.4
    assert smoothing_filters(DemoOptions()) == ()

"""Frame sources named by URI, in the style of jetson-inference's `videoSource`.

    0, 1, ...                 a webcam by index (V4L2 on Linux)
    v4l2:///dev/video0        a V4L2 device node
    clip.mp4, file:///x.mp4   a video file (clip.mp4?start=250 skips 250 frames)
    frames/, photo.jpg        a folder of images, read in name order (or one image)
    rtsp://host/stream        a network stream (GStreamer when OpenCV has it, else FFmpeg)
    csi://0                   a Jetson CSI camera (nvarguscamerasrc; needs OpenCV with GStreamer)
    picam://0                 a Raspberry Pi camera module through picamera2 (libcamera)
    synthetic                 generated moving scenes, so the demo runs anywhere

Options go in a query string: `csi://0?width=1920&height=1080&fps=30&flip=2`,
`picam://0?width=1280&height=720&fps=30`, `rtsp://cam/stream?latency=100`,
`synthetic?size=240x320&fps=30&classes=4&seed=0`.

Every source yields BGR uint8 (H, W, 3) frames (OpenCV's order). `live` sources (cameras,
streams, the synthetic camera) produce frames on their own clock, so stale ones may be
dropped; files and folders are read frame by frame and never dropped.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import SourceError
from edge_deeplab.imageio import IMAGE_SUFFIXES, list_images, read_image
from edge_deeplab.limits import MAX_INPUT_SIDE
from edge_deeplab.nvidia import is_jetson

from .picamera_source import PicameraSource
from .source_base import Source
from .synthetic_source import SyntheticSource
from .uri_safety import check_characters, check_plain_url, quoted, redact_uri, split_credentials

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif")


def gstreamer_available(cv2=None) -> bool:
    """Whether this OpenCV build can open GStreamer pipelines (pip wheels cannot)."""
    cv2 = cv2 or deps.cv2()
    match = re.search(r"^\s*GStreamer:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(match) and match.group(1).upper() != "NO"


def csi_pipeline(
    sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0
) -> str:
    """GStreamer pipeline for a Jetson CSI camera; appsink keeps only the newest buffer."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw,format=BGRx ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )


def rtsp_pipeline(url: str, latency: int = 200, jetson: bool = False) -> str:
    """GStreamer pipeline for an RTSP stream (decodebin picks H.264/H.265 and HW decoders).

    On a Jetson decodebin picks the hardware decoder (nvv4l2decoder), whose frames live in
    NVMM memory that videoconvert cannot read: nvvidconv copies them out first. The URL is
    quoted and its credentials go in rtspsrc's own properties (`uri_safety`).
    """
    convert = "nvvidconv ! video/x-raw,format=BGRx ! videoconvert" if jetson else "videoconvert"
    location, user, password = split_credentials(url, url)
    login = "".join(f" {name}={quoted(value, what, url)}" for name, value, what in (
        ("user-id", user, "user name"), ("user-pw", password, "password")) if value)
    return (
        f"rtspsrc location={quoted(location, 'URL', url)}{login} latency={latency} ! decodebin ! {convert} ! "
        "video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )


class OpenCVSource(Source):
    """Anything cv2.VideoCapture opens: a camera index, a device node, a file, a stream.

    Args:
        uri: the user's URI (for messages).
        target: what VideoCapture is given (index, path, URL or GStreamer pipeline).
        backend: cv2.CAP_* constant name ("CAP_V4L2", "CAP_GSTREAMER", "CAP_FFMPEG") or None.
        live: camera/stream (True) or file (False).
        start: frames of a file to skip.
    """

    def __init__(
        self, uri: str, target, backend: Optional[str] = None, live: bool = True, start: int = 0
    ):
        super().__init__(uri)
        self.target = target
        self.start = start
        self.backend = backend
        self.live = live
        self._cap = None

    def open(self) -> OpenCVSource:
        cv2 = deps.cv2("reading cameras and videos")
        if self.backend == "CAP_GSTREAMER" and not gstreamer_available(cv2):
            raise SourceError(
                f"{self.uri}: needs OpenCV built with GStreamer, and this OpenCV "
                f"({cv2.__version__}) has none (pip wheels lack it; "
                "on a Jetson use JetPack's OpenCV)"
            )
        self.close()
        api = getattr(cv2, self.backend) if self.backend else cv2.CAP_ANY
        with quiet_opencv(cv2):
            cap = cv2.VideoCapture(self.target, api, *decode_params(cv2, self.live))
        if not cap.isOpened():
            cap.release()
            what = "camera" if self.live else "video"
            raise SourceError(
                f"{self.uri}: cannot open {what} (not connected, busy, or not a {what})"
            )
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        if not self.live:  # what the file says it holds, to tell a truncated one
            self.announced = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) - self.start) or None
        if self.start and not self.live:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.start)
        self._cap = cap
        return self

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FolderSource(Source):
    """Images in a folder, in name order, as a finite non-live source."""

    def __init__(self, uri: str, folder: Path, fps: Optional[float] = None, start: int = 0):
        super().__init__(uri)
        self.folder = folder  # a folder, or a single image file (a one-frame stream)
        self.start = start
        self.fps = fps
        self._files: list = []
        self._next = 0

    def open(self) -> FolderSource:
        self._files = [self.folder] if self.folder.is_file() else list_images(self.folder)
        if not self._files:
            raise SourceError(f"{self.uri}: folder has no images")
        self._next = self.start
        return self

    def read(self) -> Optional[np.ndarray]:
        if self._next >= len(self._files):
            return None
        path = self._files[self._next]
        self._next += 1
        return np.ascontiguousarray(read_image(path)[:, :, ::-1])


def _query(text: str) -> Dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


def _int(options: Dict[str, str], key: str, default: int, uri: str) -> int:
    try:
        return int(options.get(key, default))
    except ValueError:
        raise SourceError(f"{redact_uri(uri)}: option {key}={options[key]!r} is not a whole number") from None


def _size(text: str, uri: str) -> Tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise SourceError(f"{redact_uri(uri)}: size must be HxW, got {text!r}") from None
    if len(values) > 2 or not all(1 <= v <= MAX_INPUT_SIDE.value for v in values):
        raise SourceError(f"{redact_uri(uri)}: size must be HxW with sides 1..{MAX_INPUT_SIDE.value}, got {text!r}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def parse_source(uri) -> Source:
    """Turn a URI (see the module docstring) into an unopened Source.

    Raises SourceError for a path that does not exist or a scheme we do not know.
    """
    text = str(uri).strip()
    if "://" in text:
        check_characters(text, text)
    if text.isdigit():
        return OpenCVSource(text, int(text), "CAP_V4L2" if _linux() else None, live=True)
    parts = urlsplit(text)
    scheme = "synthetic" if text.split("?")[0] == "synthetic" else parts.scheme.lower()
    builder = SCHEMES.get(scheme)
    if builder is not None:
        return builder(text, parts, _query(parts.query))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise SourceError(
            f"{redact_uri(text)}: unknown source; expected a camera index, v4l2://, csi://, picam://, rtsp://, "
            "a video file, an image folder or synthetic"
        )
    path, start = Path(text).expanduser(), 0
    if not path.exists() and "?" in text:  # clip.mp4?start=250
        base, query = text.split("?", 1)
        path, start = Path(base).expanduser(), _int(_query(query), "start", 0, text)
    return _path_source(text, path, start)


def _synthetic(text: str, parts, options: Dict[str, str]) -> Source:
    return SyntheticSource(
        text,
        size=_size(options.get("size", "240x320"), text),
        fps=float(options.get("fps", 30)),
        classes=_int(options, "classes", 4, text),
        seed=_int(options, "seed", 0, text),
        frames=_int(options, "frames", 0, text),
    )


def _csi(text: str, parts, options: Dict[str, str]) -> Source:
    sensor = parts.netloc or parts.path.strip("/") or "0"
    if not sensor.isdigit():
        raise SourceError(f"{text}: expected csi://SENSOR_ID, e.g. csi://0")
    pipeline = csi_pipeline(
        int(sensor),
        _int(options, "width", 1280, text),
        _int(options, "height", 720, text),
        _int(options, "fps", 30, text),
        _int(options, "flip", 0, text),
    )
    return OpenCVSource(text, pipeline, "CAP_GSTREAMER", live=True)


def _picam(text: str, parts, options: Dict[str, str]) -> Source:
    camera = parts.netloc or parts.path.strip("/") or "0"
    if not camera.isdigit():
        raise SourceError(f"{text}: expected picam://CAMERA_NUMBER, e.g. picam://0")
    size = (_int(options, "height", 720, text), _int(options, "width", 1280, text))
    if min(size) <= 0:
        raise SourceError(f"{text}: width and height must be positive")
    fps = _int(options, "fps", 0, text)
    return PicameraSource(text, int(camera), size, float(fps) if fps > 0 else None)


def _rtsp(text: str, parts, options: Dict[str, str]) -> Source:
    rest = urlencode({k: v for k, v in options.items() if k != "latency"})
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    cv2 = deps.cv2("reading network streams")
    if gstreamer_available(cv2):
        pipeline = rtsp_pipeline(url, _int(options, "latency", 200, text), jetson=is_jetson())
        return OpenCVSource(text, pipeline, "CAP_GSTREAMER", live=True)
    return OpenCVSource(text, check_plain_url(url, text), "CAP_FFMPEG", live=True)


def _v4l2(text: str, parts, options: Dict[str, str]) -> Source:
    device = parts.path or parts.netloc
    if not Path(device).exists():
        raise SourceError(f"{text}: no such camera device {device}")
    return OpenCVSource(text, device, "CAP_V4L2", live=True)


def _http(text: str, parts, options: Dict[str, str]) -> Source:
    return OpenCVSource(text, check_plain_url(text, text), "CAP_FFMPEG", live=True)


def _file(text: str, parts, options: Dict[str, str]) -> Source:
    return _path_source(text, Path(parts.path), _int(options, "start", 0, text))


# URI scheme -> builder(text, urlsplit parts, query options) of its Source.
SCHEMES: Dict[str, Callable[..., Source]] = {
    "synthetic": _synthetic,
    "csi": _csi,
    "picam": _picam,
    "rtsp": _rtsp,
    "rtsps": _rtsp,
    "v4l2": _v4l2,
    "http": _http,
    "https": _http,
    "file": _file,
}


def _path_source(uri: str, path: Path, start: int = 0) -> Source:
    """A video file or an image folder; `start` skips that many frames."""
    if start < 0:
        raise SourceError(f"{uri}: start must be >= 0, got {start}")
    if path.is_dir():
        return FolderSource(uri, path, start=start)
    if not path.exists():
        raise SourceError(f"{uri}: no such file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(uri, path, start=start)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SourceError(
            f"{uri}: not a video file (expected a video {', '.join(VIDEO_SUFFIXES)} or an image)"
        )
    return OpenCVSource(uri, str(path), "CAP_FFMPEG", live=False, start=start)


def _linux() -> bool:
    import sys

    return sys.platform.startswith("linux")


# How OpenCV's VideoCapture is opened for a source: quietly, and with few decoding threads.


@contextlib.contextmanager
def quiet_opencv(cv2):
    """OpenCV logs WARN/ERROR lines for a camera that is not there; we raise our own error."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def decode_params(cv2, live: bool) -> tuple:
    """VideoCapture params: one decoding thread for a video file.

    FFmpeg's default thread pool decodes a 768x432 H.264 frame in 1.44 ms of CPU here, one
    thread in 0.91 ms; with the model's threads already on every core of a small box, the
    pool only competes with inference. Cameras keep their backend's default.
    """
    if live or not hasattr(cv2, "CAP_PROP_N_THREADS"):  # OpenCV < 4.5.2 takes no params
        return ()
    return ([cv2.CAP_PROP_N_THREADS, 1],)

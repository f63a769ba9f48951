"""`picam://0`: a Raspberry Pi camera module through picamera2 (libcamera).

On a Pi 5 (and on any Pi running Bookworm's libcamera stack) the camera module is not a
V4L2 device that OpenCV's `VideoCapture(0)` can open: it is reached through libcamera, whose
Python binding is `picamera2`. It is a Debian package (`python3-picamera2`), not a pip one,
so a venv sees it only when made with `--system-site-packages`; it is imported when the
source opens, never before.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from edge_deeplab.errors import SourceError

from .source_base import Source

INSTALL = ("sudo apt install python3-picamera2, in a venv made with "
           "`python3 -m venv --system-site-packages` so it is seen")


class PicameraSource(Source):
    """Frames of a Pi camera (BGR uint8, like every source).

    picamera2's "RGB888" format is named after libcamera's (DRM) fourcc, whose bytes are
    stored B, G, R: the array it returns is already in OpenCV's order.

    Args:
        uri: the user's URI (for messages).
        camera: the camera's number (0 = the first connected).
        size: (height, width) of the frames asked for (the ISP scales the sensor's).
        fps: frame rate asked for, or None for the camera's default.
    """

    live = True

    def __init__(self, uri: str, camera: int = 0, size: Tuple[int, int] = (720, 1280), fps: Optional[float] = None):
        super().__init__(uri)
        self.camera = camera
        self.size = tuple(size)
        self.fps = fps
        self._camera = None

    def open(self) -> PicameraSource:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(f"{self.uri}: needs picamera2 (the Raspberry Pi camera library): {INSTALL}") from None
        self.close()
        try:
            camera = Picamera2(self.camera)
        except (IndexError, RuntimeError, OSError) as exc:
            raise SourceError(
                f"{self.uri}: no camera {self.camera} ({exc or type(exc).__name__}); "
                "`rpicam-hello --list-cameras` lists the connected ones"
            ) from None
        height, width = self.size
        controls = {"FrameRate": float(self.fps)} if self.fps else {}
        try:
            config = camera.create_video_configuration(main={"size": (width, height), "format": "RGB888"},
                                                       controls=controls)
            camera.configure(config)
            camera.start()
        except (RuntimeError, ValueError, OSError) as exc:
            camera.close()
            raise SourceError(f"{self.uri}: cannot start the camera at {width}x{height}: {exc}") from None
        self._camera = camera
        return self

    def read(self) -> Optional[np.ndarray]:
        if self._camera is None:
            return None
        try:
            frame = self._camera.capture_array("main")
        except (RuntimeError, OSError):
            return None  # the camera went away: the pipeline's reconnect logic takes over
        if frame is None or frame.ndim != 3:
            return None
        return np.ascontiguousarray(frame[:, :, :3])  # XRGB8888-style padding, if any, dropped

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()

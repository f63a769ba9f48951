"""Where rendered pictures go: a window (cv2.imshow), a video file, snapshots."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError, first_line
from edge_deeplab.imageio import write_image


def display_available() -> bool:
    """Whether a window can be opened (an X11/Wayland display on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """An OpenCV window; `show(picture)` returns the key pressed (-1 for none)."""

    def __init__(self, title: str = "edge-deeplab"):
        if not display_available():
            raise InvalidInputError(
                "no display to show the demo on (DISPLAY is not set): run with --no-show, "
                "and --output out.mp4 to record it"
            )
        self.cv2 = deps.cv2("showing the demo window")
        self.title = title
        try:
            self.cv2.namedWindow(title, self.cv2.WINDOW_NORMAL)
        except self.cv2.error as exc:  # headless OpenCV builds have no GUI backend
            raise InvalidInputError(
                f"this OpenCV cannot open windows ({first_line(exc, last=True)}): run with --no-show"
            ) from None

    def show(self, picture: np.ndarray, wait_ms: int = 1) -> int:
        self.cv2.imshow(self.title, picture)
        return self.cv2.waitKey(wait_ms) & 0xFF

    def poll(self, wait_ms: int = 30) -> int:
        return self.cv2.waitKey(wait_ms) & 0xFF

    def close(self) -> None:
        try:
            self.cv2.destroyWindow(self.title)
        except self.cv2.error:  # already closed by the user
            pass


class VideoRecorder:
    """Writes BGR pictures to a video file ('mp4v'), atomically.

    The file is written under a temporary name in the same folder and renamed when
    `finish()` is called; `abort()` removes it. Every picture is resized to the first one's
    size, because a video has one frame size (the "side" view and a camera that changes
    resolution would otherwise break it).
    """

    def __init__(self, path, fps: Optional[float]):
        self.path = Path(path)
        self.fps = float(fps) if fps else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self.frames = 0
        self._writer = None
        self._size = None

    def write(self, picture: np.ndarray) -> None:
        cv2 = deps.cv2("recording video")
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = (picture.shape[1], picture.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise InvalidInputError(
                    f"{self.path}: cannot write a video here (suffix or folder?)"
                )
        if (picture.shape[1], picture.shape[0]) != self._size:
            picture = cv2.resize(picture, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(picture)
        self.frames += 1

    def finish(self) -> Optional[Path]:
        """Close, check and move the file into place; None if nothing was written.

        OpenCV's writer reports a failed write (a full disk) only as a console warning, so
        the closed file is read back: a video that does not decode to the frames written
        is removed and reported, never renamed into place.

        Raises:
            InvalidInputError: the video could not be written (naming the path and why).
        """
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        problem = self._check_written()
        if problem:
            self.tmp.unlink(missing_ok=True)
            raise InvalidInputError(f"{self.path}: the recording could not be written ({problem})")
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise InvalidInputError(f"{self.path}: cannot write the recording ({exc.strerror})") from None
        return self.path

    def _check_written(self) -> Optional[str]:
        """Why the closed staging file is not the video written, or None."""
        cv2 = deps.cv2("recording video")
        if not self.tmp.is_file() or self.tmp.stat().st_size == 0:
            return "nothing reached the disk; is it full?"
        capture = cv2.VideoCapture(str(self.tmp))
        try:
            readable = capture.isOpened() and capture.read()[0]
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if readable else 0
        finally:
            capture.release()
        if not readable:
            return "the file does not decode; is the disk full?"
        if 0 < count < self.frames:
            return f"{count} of {self.frames} frames reached the disk; is it full?"
        return None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.tmp.exists():
            self.tmp.unlink()


def save_snapshot(folder, picture: np.ndarray, index: int) -> Path:
    """Write a BGR picture as <folder>/snapshot_<index>.png."""
    path = Path(folder) / f"snapshot_{index:04d}.png"
    write_image(path, np.ascontiguousarray(picture[:, :, ::-1]))
    return path

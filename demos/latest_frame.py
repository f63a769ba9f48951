"""The newest rendered picture of `demo --serve` and its JPEG, shared by the pipeline's
thread (which offers pictures and never waits), one encoder thread (which encodes only while
somebody watches) and the viewers' threads (which take the newest JPEG, or one newer than
their request)."""

from __future__ import annotations

import threading
from typing import Optional, Tuple

from edge_deeplab import deps

JPEG_QUALITY = 80


class LatestFrame:
    """The newest rendered picture and its JPEG, shared by the main thread and the viewers."""

    def __init__(self, quality: int = JPEG_QUALITY):
        self.quality = quality
        self._cond = threading.Condition()
        self._picture = None  # offered, not yet encoded
        self._jpeg: Optional[bytes] = None
        self._seq = 0
        self._offered = 0  # pictures offered so far: the number of the newest
        self._picture_number = 0  # which offer `_picture` is
        self._jpeg_number = 0  # which offer `_jpeg` was encoded from
        self._viewers = 0
        self._closed = False
        self.encoded = 0
        self.stats: dict = {}

    @property
    def watched(self) -> bool:
        return self._viewers > 0

    def offer(self, picture) -> None:
        """Hand over a BGR picture (the caller must not change it afterwards); never blocks long."""
        with self._cond:
            self._offered += 1
            self._picture, self._picture_number = picture, self._offered
            self._cond.notify_all()

    def join(self) -> None:
        with self._cond:
            self._viewers += 1
            self._cond.notify_all()

    def leave(self) -> None:
        with self._cond:
            self._viewers -= 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def encode_forever(self) -> None:
        """The encoder thread: JPEG the newest picture while anybody watches, until closed."""
        cv2 = deps.cv2("serving the demo")
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or (self._picture is not None and self._viewers))
                if self._closed:
                    return
                picture, self._picture = self._picture, None
                number = self._picture_number
            ok, buffer = cv2.imencode(".jpg", picture, params)
            if ok:
                with self._cond:
                    self._jpeg, self._seq = buffer.tobytes(), self._seq + 1
                    self._jpeg_number = number
                    self.encoded += 1
                    self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float) -> Optional[Tuple[int, bytes]]:
        """(seq, JPEG) newer than `after`; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > after, timeout)
            if self._closed or self._seq <= after:
                return None
            return self._seq, self._jpeg

    def fresh_jpeg(self, timeout: float) -> Optional[bytes]:
        """A JPEG of a picture offered after this call began (never a stale one: a stopped
        pipeline gives None after `timeout`, not its last frame for ever)."""
        with self._cond:
            mark = self._offered
            self._cond.wait_for(lambda: self._closed or self._jpeg_number > mark, timeout)
            return None if self._closed or self._jpeg_number <= mark else self._jpeg

    @property
    def closed(self) -> bool:
        return self._closed

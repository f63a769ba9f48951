"""The capture thread and the hand-over boxes between pipeline threads.

A live camera produces frames on its own clock. If the consumer is slower, the frames that
pile up are stale: showing them adds latency, not information. So a live source hands over
through a `Mailbox("latest")` that keeps only the newest frame (and counts the ones it
replaced), while a file or folder hands over through a `Mailbox("queue")` that blocks the
reader instead, so every frame is processed (and a recording has them all).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edge_deeplab.errors import SourceError

from .sources import Source

_log = logging.getLogger(__name__)  # disconnects, reconnects, a truncated file
END = object()  # what Mailbox.get returns once the producer has finished and the box is empty


@dataclass
class Frame:
    """One captured frame.

    image: BGR uint8 (H, W, 3).
    index: position in the source's stream (counting dropped frames too).
    captured: time.perf_counter() when the source handed it over.
    capture_ms: how long the read took.
    """

    image: np.ndarray
    index: int
    captured: float
    capture_ms: float


class Mailbox:
    """A one-producer, one-consumer hand-over.

    Args:
        mode: "latest" keeps only the newest item (put never blocks; replaced items are
            counted in `dropped`); "queue" keeps up to `capacity` items and put blocks when
            full (nothing is dropped).
        capacity: queue length in "queue" mode.
    """

    def __init__(self, mode: str = "latest", capacity: int = 4):
        if mode not in ("latest", "queue"):
            raise ValueError(f"mode must be 'latest' or 'queue', got {mode!r}")
        self.mode = mode
        self.capacity = 1 if mode == "latest" else max(1, capacity)
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> bool:
        """Hand over `item`; False when the box was closed (the consumer has gone)."""
        with self._cond:
            if self.mode == "latest":
                if self._items:
                    self._items.clear()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait(0.1)
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: Optional[float] = None):
        """The next item, END when closed and drained, or None after `timeout` seconds."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return END
                remaining = None if deadline is None else deadline - time.perf_counter()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items will come (producer side) or be taken (consumer side)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def discard(self) -> None:
        """Consumer gone: drop what is queued and unblock the producer."""
        with self._cond:
            self._items.clear()
            self._closed = True
            self._cond.notify_all()


class CaptureThread(threading.Thread):
    """Reads a Source into a Mailbox on its own thread.

    Args:
        source: an opened Source.
        drop: keep only the newest frame (default: the source is live).
        realtime: pace a non-live source at its frame rate (files otherwise go as fast
            as the pipeline takes them).
        reconnect_timeout: seconds to keep trying to reopen a live source that stopped
            delivering frames (0: give up at once).
        retry_interval: seconds between reopen attempts.
        max_frames: stop after this many frames (0: no limit).

    Disconnects, reconnects and a file shorter than it announces are logged (warnings).

    After the thread ends, `end_reason` is "end of stream", "stopped", "max frames",
    "source lost" or "capture failed", and `error` holds what failed, if anything.
    """

    def __init__(
        self,
        source: Source,
        *,
        drop: Optional[bool] = None,
        realtime: bool = False,
        reconnect_timeout: float = 10.0,
        retry_interval: float = 0.5,
        max_frames: int = 0,
    ):
        super().__init__(name="capture", daemon=True)
        self.source = source
        self.drop = source.live if drop is None else drop
        self.frames = Mailbox("latest" if self.drop else "queue", capacity=2)
        self.realtime = realtime and not source.live
        self.reconnect_timeout = reconnect_timeout
        self.retry_interval = retry_interval
        self.max_frames = max_frames
        self.reconnects = 0
        self.end_reason = ""
        self.error: Optional[BaseException] = None
        self._stop_event = threading.Event()
        self._index = 0

    @property
    def dropped(self) -> int:
        return self.frames.dropped

    def stop(self) -> None:
        self._stop_event.set()
        self.frames.discard()

    def run(self) -> None:
        try:
            self.end_reason = self._loop()
        except Exception as exc:  # noqa: BLE001 - a thread must hand its failure to the main thread, not print a traceback
            self.error = exc
            self.end_reason = "capture failed"
        finally:
            self.frames.close()

    def _loop(self) -> str:
        start = time.perf_counter()
        while not self._stop_event.is_set():
            if self.max_frames and self._index >= self.max_frames:
                return "max frames"
            if self.realtime and self.source.fps:
                delay = start + self._index / self.source.fps - time.perf_counter()
                if delay > 0 and self._stop_event.wait(delay):
                    break
            t0 = time.perf_counter()
            image = self.source.read()
            t1 = time.perf_counter()
            if image is None:
                if not self.source.live:
                    return self._end_of_file()
                if not self._reconnect():
                    return "stopped" if self._stop_event.is_set() else "source lost"
                continue
            if not self._put(image, t1, (t1 - t0) * 1e3):
                break
        return "stopped"

    def _end_of_file(self) -> str:
        """ "end of stream", or "truncated stream" (said aloud) when the file ends well
        before the frame count its header announces."""
        announced = self.source.announced
        if announced and self._index < announced - max(2, announced // 100):
            _log.warning(f"{self.source.uri}: the file ends after {self._index} of the {announced} frames "
                         "it announces (truncated or damaged?)")
            return "truncated stream"
        return "end of stream"

    def _put(self, image: np.ndarray, captured: float, capture_ms: float) -> bool:
        ok = self.frames.put(Frame(image, self._index, captured, capture_ms))
        self._index += 1
        return ok

    def _reconnect(self) -> bool:
        """Reopen a live source that stopped delivering; True once frames come again."""
        uri = self.source.uri
        if self.reconnect_timeout <= 0:
            _log.warning(f"{uri}: stopped delivering frames")
            return False
        _log.warning(f"{uri}: stopped delivering frames; trying to reconnect for {self.reconnect_timeout:g} s")
        deadline = time.perf_counter() + self.reconnect_timeout
        while not self._stop_event.is_set() and time.perf_counter() < deadline:
            self.source.close()
            try:
                self.source.open()
            except SourceError:
                self._stop_event.wait(self.retry_interval)
                continue
            image = self.source.read()
            if image is not None:
                self.reconnects += 1
                _log.warning(f"{uri}: reconnected")
                return self._put(image, time.perf_counter(), 0.0)
            self._stop_event.wait(self.retry_interval)
        if not self._stop_event.is_set():
            _log.warning(f"{uri}: no frames for {self.reconnect_timeout:g} s; giving up")
        return False

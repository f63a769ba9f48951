"""Where a demo's rendered pictures go: a window, a recording, a web stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .outputs import VideoRecorder, Window
from .stats import live_header


@dataclass
class Sinks:
    """Where rendered pictures go; a picture is drawn only while one of them takes it."""

    window: Optional[Window] = None
    recorder: Optional[VideoRecorder] = None
    server: Optional[object] = None  # a stream.StreamServer
    live: Optional[dict] = None  # the served stats' fixed part

    @property
    def wanted(self) -> bool:
        watched = self.server is not None and self.server.watched
        return self.window is not None or self.recorder is not None or watched

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
        if self.server is not None:
            self.server.close()  # nothing listens once the demo has ended


def open_sinks(segmenter, source, options) -> Sinks:
    """The window, recording and web stream the options ask for (closing what opened on a failure)."""
    from .stream import StreamServer  # http.server and its threads only when serving

    server = StreamServer(options.serve) if options.serve else None
    try:
        window = Window() if options.show else None
    except BaseException:
        if server is not None:
            server.close()
        raise
    recorder = VideoRecorder(options.output, source.fps) if options.output else None
    live = live_header(segmenter, source) if server is not None else None
    return Sinks(window, recorder, server, live)

"""`demo --serve [HOST:]PORT`: the rendered view as an MJPEG stream and live stats over HTTP.

A headless box (a Jetson, a CPU box without a screen) is watched from a browser: `/` is a
self-contained page, `/stream.mjpg` the view (multipart JPEG, which every browser shows in an
<img>), `/frame.jpg` the latest picture, `/stats.json` the HUD's figures.

The pipeline never waits for a viewer: the main thread hands each rendered picture to
`LatestFrame.offer` (a reference, no copy) and goes on; one encoder thread turns the newest
offered picture into a JPEG only while somebody watches, and each viewer's thread sends the
newest JPEG when its socket takes it. A slow viewer therefore skips frames, a stalled one
holds one JPEG until its send times out, and memory stays flat whatever the viewers do.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError

from .serve_address import ServeAddress
from .stream_page import PAGE

BOUNDARY = "edgedeeplabframe"
JPEG_QUALITY = 80
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SEND_TIMEOUT_S = 10.0  # a viewer whose socket takes nothing for this long is dropped


class LatestFrame:
    """The newest rendered picture and its JPEG, shared by the main thread and the viewers."""

    def __init__(self, quality: int = JPEG_QUALITY):
        self.quality = quality
        self._cond = threading.Condition()
        self._picture = None  # offered, not yet encoded
        self._jpeg: Optional[bytes] = None
        self._seq = 0
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
            self._picture = picture
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
            ok, buffer = cv2.imencode(".jpg", picture, params)
            if ok:
                with self._cond:
                    self._jpeg, self._seq = buffer.tobytes(), self._seq + 1
                    self.encoded += 1
                    self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float) -> Optional[Tuple[int, bytes]]:
        """(seq, JPEG) newer than `after`; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > after, timeout)
            if self._closed or self._seq <= after:
                return None
            return self._seq, self._jpeg

    @property
    def closed(self) -> bool:
        return self._closed


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SEND_TIMEOUT_S  # socket timeout: a stalled viewer's send fails instead of hanging
    server_version = "edge-deeplab"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        try:
            super().finish()
        except OSError:  # the viewer went away mid-write
            pass

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass  # one line per request would drown the demo's own log

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        route = ROUTES.get(url.path)
        if route is None:
            return self._plain(404, "not found")
        if not self.server.authorised(parse_qs(url.query).get("token", [""])[0]):
            return self._plain(403, "a valid ?token= is needed (printed when the demo started)")
        if not self.server.host_allowed(self.headers.get("Host", "")):
            return self._plain(403, "this address serves localhost only; start the demo with --serve HOST:PORT")
        try:
            route(self)
        except (OSError, ValueError):  # the viewer disconnected or stalled past the timeout
            pass

    def _plain(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def page(self) -> None:
        self._plain(200, PAGE, "text/html; charset=utf-8")

    def stats(self) -> None:
        self._plain(200, json.dumps(self.server.frames.stats), "application/json")

    def frame(self) -> None:
        got = self._watch(lambda frames: frames.next_jpeg(0, timeout=5.0))
        if got is None:
            return self._plain(503, "no frame yet")
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(got[1])))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(got[1])

    def stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self._watch(self._send_frames)

    def _send_frames(self, frames: LatestFrame) -> None:
        seq = 0
        while not frames.closed:
            got = frames.next_jpeg(seq, timeout=0.5)
            if got is None:
                continue
            seq, jpeg = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            self.wfile.write(head.encode() + jpeg + b"\r\n")
            self.wfile.flush()

    def _watch(self, body: Callable[[LatestFrame], object]):
        """Run `body` as a viewer: frames are encoded only while at least one watches."""
        frames = self.server.frames
        frames.join()
        try:
            return body(frames)
        finally:
            frames.leave()


ROUTES = {
    "/": _Handler.page,
    "/index.html": _Handler.page,
    "/stream.mjpg": _Handler.stream,
    "/frame.jpg": _Handler.frame,
    "/stats.json": _Handler.stats,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: ServeAddress, frames: LatestFrame):
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.token = address.token
        self.frames = frames
        self._connections = set()
        self._lock = threading.Lock()
        super().__init__((address.host, address.port), _Handler)

    def authorised(self, given: str) -> bool:
        return self.token is None or hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, host_header: str) -> bool:
        """Without a token, only requests addressed to a loopback name: a web page the user
        visits cannot then read the stream through DNS rebinding (a name of its own that it
        points at 127.0.0.1), as Jupyter guards its loopback server."""
        if self.token is not None:
            return True
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return host.strip("[]") in LOOPBACK_NAMES

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def drop_connections(self) -> None:
        """Unblock every viewer's thread (a stalled send included) so the demo ends now."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


class StreamServer:
    """Serves the demo's view and stats while the demo runs; `close()` frees the port."""

    def __init__(self, address: ServeAddress, log: Callable[[str], None] = print):
        self.frames = LatestFrame()
        try:
            self._server = _Server(address, self.frames)
        except OSError as exc:
            raise InvalidInputError(
                f"--serve {address.host}:{address.port}: cannot listen there ({exc.strerror or exc})"
            ) from None
        self.address = address
        self.port = self._server.server_address[1]
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="serve", daemon=True),
            threading.Thread(target=self.frames.encode_forever, name="jpeg", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log(f"serving the demo at {self.url}")

    @property
    def url(self) -> str:
        return self.address.url(self.port)

    @property
    def watched(self) -> bool:
        return self.frames.watched

    def offer(self, picture) -> None:
        self.frames.offer(picture)

    def publish(self, stats: dict) -> None:
        self.frames.stats = stats  # one reference swap: a reader sees the old or the new dict

    def close(self) -> None:
        self.frames.close()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5.0)

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

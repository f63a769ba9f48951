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
import io
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from edge_deeplab.errors import InvalidInputError
from edge_deeplab.limits import MAX_CONNECTIONS, MAX_REQUEST_HEAD_BYTES, REQUEST_HEAD_SECONDS
from edge_deeplab.logs import on_terminal

from .latest_frame import LatestFrame
from .serve_address import ServeAddress, announce, is_loopback
from .stream_page import CONTENT_SECURITY_POLICY, PAGE

BOUNDARY = "edgedeeplabframe"
SEND_TIMEOUT_S = 10.0  # a viewer whose socket takes nothing for this long is dropped
FRAME_WAIT_S = 5.0  # /frame.jpg waits this long for a picture newer than the request
BUSY_REPLY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
              b"Retry-After: 5\r\nConnection: close\r\n\r\nbusy\n")
# Sent with every reply: no MIME sniffing of the JPEGs, the page runs only its own inline
# script and style (by hash) and talks only to this server, no Referer leaks the ?token=.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SEND_TIMEOUT_S  # socket timeout: a stalled viewer's send fails instead of hanging
    server_version = "edge-deeplab"  # and no Python version after it (`version_string`)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def handle(self) -> None:
        """Read the whole request head against one deadline, then serve it (one request per
        connection: every route is a GET without a body)."""
        head = self._read_head()
        if head is None:
            return
        self.rfile.close()  # the socket's reader is not needed: the head is all there is
        self.rfile = io.BytesIO(head)
        self.handle_one_request()

    def _read_head(self) -> Optional[bytes]:
        """The request line and headers, or None when they did not arrive whole within
        REQUEST_HEAD_SECONDS (a client trickling a byte at a time gets no longer) or ran
        past MAX_REQUEST_HEAD_BYTES."""
        deadline = time.monotonic() + REQUEST_HEAD_SECONDS
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            left = deadline - time.monotonic()
            if left <= 0 or len(head) > MAX_REQUEST_HEAD_BYTES:
                return None
            self.connection.settimeout(left)
            try:
                chunk = self.connection.recv(4096)
            except OSError:  # timed out or reset
                return None
            if not chunk:
                return None
            head += chunk
        self.connection.settimeout(self.timeout)
        return head

    def version_string(self) -> str:
        return self.server_version  # the base class adds "Python/3.x": no versions to fingerprint

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

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
        if not self.server.authorised(parse_qs(url.query).get("token", [""])[0]):  # before any work
            return self._plain(403, "a valid ?token= is needed (printed when the demo started)")
        route = ROUTES.get(url.path)
        if route is None:
            return self._plain(404, "not found")
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
        jpeg = self._watch(lambda frames: frames.fresh_jpeg(timeout=FRAME_WAIT_S))
        if jpeg is None:
            return self._plain(503, "no new frame (the demo is not producing any)")
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(jpeg)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(jpeg)

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
    # Connections waiting to be accepted: with socketserver's 5 a burst fills the queue and
    # the kernel drops SYNs (clients retry after 1, 3, 7 s), a viewer among them included.
    request_queue_size = 128

    def __init__(self, address: ServeAddress, frames: LatestFrame):
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.token = address.token
        self.frames = frames
        self._connections = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS.value)
        super().__init__((address.host, address.port), _Handler)

    def process_request(self, request, client_address) -> None:
        """A thread for the connection while fewer than MAX_CONNECTIONS are served; past that
        "503 busy" at once from the accepting thread, and no thread is started."""
        if not self._slots.acquire(blocking=False):
            try:
                request.setblocking(False)  # never wait on a flooding client's window
                request.send(BUSY_REPLY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: give the slot back
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def authorised(self, given: str) -> bool:
        return self.token is None or hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, host_header: str) -> bool:
        """Without a token, only requests addressed to a loopback name: a web page the user
        visits cannot then read the stream through DNS rebinding (a name of its own that it
        points at 127.0.0.1), as Jupyter guards its loopback server."""
        if self.token is not None:
            return True
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return is_loopback(host.strip("[]"))

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

    def __init__(self, address: ServeAddress):
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
        # The token only where the log (stderr, see edge_deeplab.logs) is a terminal; a
        # warning so that -q shows it too: without it nobody finds the demo.
        logging.getLogger(__name__).warning(announce(address, self.port, tty=on_terminal()))

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

"""Read `demo --serve`'s MJPEG stream from Python: a script's (or a benchmark's) viewer.

`iter_jpegs(url)` yields each JPEG as bytes, undecoded, so a viewer costs its reader almost
nothing (cv2.VideoCapture on the URL works too, but decodes every frame).
"""

from __future__ import annotations

import re
import urllib.request
from typing import Iterator

_LENGTH = re.compile(rb"Content-Length:\s*(\d+)", re.IGNORECASE)


def iter_jpegs(url: str, timeout: float = 10.0) -> Iterator[bytes]:
    """The JPEGs of a multipart/x-mixed-replace stream, until the server ends it."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reply.readline()
                if not line:
                    return
                head = head + line if head or line.strip() else head
            found = _LENGTH.search(head)
            if found is None:
                raise ValueError(f"{url}: a part without Content-Length: {head[:200]!r}")
            size = int(found.group(1))
            yield reply.read(size)
            reply.readline()  # the CRLF after the part

"""A headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`).

The command-line `--screenshot` / `--dump-dom` act once the page's load event fires, which
for a page with a live MJPEG stream is right after its first frame; a test that needs "two
screenshots a second apart" or "the stats updated" drives one page over time instead. The
pipe carries NUL-separated JSON messages (fd 3 in, fd 4 out), so no websocket is needed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

# The browser the page tests drive, where this machine has one (else those tests skip).
CHROMIUM = next(
    (
        p
        for p in (
            "/usr/bin/chromium",
            shutil.which("chromium") or "",
            shutil.which("chromium-browser") or "",
        )
        if p and Path(p).is_file()
    ),
    None,
)


def _above_nine(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Chromium:
    def __init__(self, binary: str, profile, window=(800, 600), stderr=subprocess.DEVNULL):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # The child's ends are moved above fd 9 first: `3<&4 4>&3` would swap them onto each other
        # (bash, not dash, takes fds above 9 in a redirection).
        to_chrome_r, from_chrome_w = (_above_nine(fd) for fd in (to_chrome_r, from_chrome_w))
        command = (
            f"exec '{binary}' --headless --no-sandbox --disable-gpu --no-first-run "
            "--disable-background-networking --disable-component-update --disable-sync "
            f"--remote-debugging-pipe --user-data-dir='{profile}' --window-size={window[0]},{window[1]} "
            f"3<&{to_chrome_r} 4>&{from_chrome_w}"
        )
        self.process = subprocess.Popen(
            ["bash", "-c", command], pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=stderr,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._id, self.session = b"", 0, None

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        """Send one command and return its result (events on the way are skipped)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(f"chromium did not answer {method} within {timeout} s")

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe (crashed?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5.0)
        except (OSError, RuntimeError, TimeoutError):
            pass
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

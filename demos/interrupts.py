"""Ctrl-C and SIGTERM end a demo like the end of its stream: the recording is kept.

SIGINT already raises KeyboardInterrupt in the main thread; SIGTERM (what `kill`, systemd
and container runtimes send) is turned into `Terminated`, a KeyboardInterrupt, while the
render loop runs, so both reach the same clean ending and the exit status tells them apart.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

EXIT_STATUS = {"interrupted": 130, "terminated": 143}  # 128 + SIGINT / SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM received by the demo's main thread."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def signals_as_interrupts():
    """Within the block, SIGTERM raises Terminated (signal handlers need the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

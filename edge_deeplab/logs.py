"""One log for every command: the `edge_deeplab` logger, and progress for long work.

Each module logs through `logging.getLogger(__name__)` (every name is under `edge_deeplab`);
what a command answers (tables, JSON, summaries) it prints to stdout instead. The CLI calls
`setup_logging` with its -q / -v, which gives the `edge_deeplab` logger its one handler, on
stderr. Without it (a library user who set up no logging) Python's default holds: warnings
and errors only.

Long work (evaluation, conversions, report variants) shows its progress through
`ProgressBar`, or `ProgressLog.count` where code takes a `say(message)` callable: a tqdm bar
when stderr is a terminal, and anywhere else (a log file, CI, a pipe) a plain log line at
each quarter and at least every 30 s, never a carriage return; work done within its first
seconds shows nothing. Nothing is drawn or written as progress when the logger does not
show INFO (-q).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

ROOT = "edge_deeplab"
PLAIN = "%(message)s"
NAMED = "%(levelname)s %(name)s: %(message)s"  # -v: which module said it
LINE_INTERVAL_S = 30.0  # the longest a log file waits for a progress line
LINE_DELAY_S = 5.0  # no progress lines for work done sooner (it would only add noise)
BAR_DELAY_S = 0.5  # nor a bar flashing for work done at once

T = TypeVar("T")


def setup_logging(verbosity: int = 0) -> logging.Logger:
    """Configure the `edge_deeplab` logger for a command; returns it.

    Args:
        verbosity: below 0 (-q) warnings and errors only, no progress; 0 progress and
            notes as plain lines; above 0 (-v) debug messages too, each with its level and
            logger name.

    The one handler writes to whatever `sys.stderr` is when a message is logged (so a
    redirected or captured stderr gets it). The logger does not propagate: a root handler
    that another library installs does not print every line twice. Calling it again
    replaces the handler it installed before.
    """
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(NAMED if verbosity > 0 else PLAIN))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    logger.propagate = False
    return logger


class _StderrHandler(logging.Handler):
    """Lines on the current `sys.stderr`, written above any progress bar that is drawn there."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            stream = sys.stderr
            tqdm = sys.modules.get("tqdm")  # bars are drawn only once it is imported
            if tqdm is not None and on_terminal(stream):  # tqdm clears its bars, writes, redraws them
                tqdm.tqdm.write(text, file=stream)
            else:
                stream.write(text + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own rule: a failed line must not stop the work
            self.handleError(record)


def on_terminal(stream=None) -> bool:
    """Whether `stream` (default: stderr) is a terminal; False for a closed or odd stream."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def shows_progress(logger: Optional[logging.Logger] = None) -> bool:
    """Whether progress is wanted at all: the logger shows INFO (not -q, not a library default)."""
    return (logger or logging.getLogger(ROOT)).isEnabledFor(logging.INFO)


class ProgressBar:
    """Progress through `total` items of long work; a context manager.

    On a terminal: a tqdm bar on stderr (removed when done; log lines go above it). Anywhere
    else: a log line "what: done/total [unit]" each `every` items (default: each quarter),
    when `interval_s` has passed since the last line, and at the end, once the work has run
    for LINE_DELAY_S. Nothing when the logger does not show INFO.

    Args:
        what: what is being done ("evaluating").
        total: how many items; None or 0 when unknown (no lines are counted then, a bar
            still shows the rate).
        unit: the items' name ("images").
        every: a log line every this many items.
        logger: where the lines go (default: `edge_deeplab`).
        lines: False to write no progress lines off a terminal (where the work logs its
            own line per item already).
        enabled: False to show nothing at all (the caller reports the work itself).
        interval_s: the longest wait between two lines.
    """

    def __init__(self, what: str, total: Optional[int], *, unit: str = "it", every: Optional[int] = None,
                 logger: Optional[logging.Logger] = None, lines: bool = True,
                 interval_s: float = LINE_INTERVAL_S, enabled: bool = True):
        self.what, self.total, self.unit, self.done = what, total, unit, 0
        self.logger = logger or logging.getLogger(ROOT)
        shown = enabled and shows_progress(self.logger)
        self._bar = self._tqdm() if shown and on_terminal() else None
        self._lines = shown and lines and self._bar is None
        self._every = every or max(1, math.ceil((total or 0) / 4))
        self._next_line = self._every
        self._interval_s = interval_s
        self._started = self._last_line = time.monotonic()

    def _tqdm(self):
        from tqdm import tqdm

        return tqdm(total=self.total or None, desc=self.what, unit=self.unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True, delay=BAR_DELAY_S)

    def update(self, n: int = 1) -> None:
        """`n` more items done."""
        self.set(self.done + n)

    def set(self, done: int) -> None:
        """`done` items done in all (a `tick(done)` callback); the bar closes at `total`."""
        step, self.done = done - self.done, done
        finished = bool(self.total) and done >= self.total
        if self._bar is not None:
            self._bar.update(step)
        elif self._lines and self._line_due(done, finished):
            unit = "" if self.unit == "it" else f" {self.unit}"
            self.logger.info(f"{self.what}: {done}/{self.total or '?'}{unit}")
            self._last_line = time.monotonic()
            while self._next_line <= done:
                self._next_line += self._every
        if finished:
            self.close()

    def _line_due(self, done: int, finished: bool) -> bool:
        now = time.monotonic()
        if now - self._started < LINE_DELAY_S:
            return False
        counted = bool(self.total) and done >= self._next_line
        return finished or counted or now - self._last_line >= self._interval_s

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], what: str, total: Optional[int] = None, **options) -> Iterator[T]:
    """Each of `items`, with a `ProgressBar` (its `options`) advanced after each."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with ProgressBar(what, total, **options) as bar:
        for item in items:
            yield item
            bar.update()


class ProgressLog:
    """A `say(message)` callable for long work, with counted steps.

    `log("loading model")` is an INFO line; `tick = log.count("calibrating", 200)` returns a
    `tick(done)` callback that drives a `ProgressBar` (made at the first tick). Disabled, it
    says nothing (an API caller's `progress=False`).

    Args:
        enabled: False to say nothing at all.
        logger: where the lines go (default: `edge_deeplab`).
    """

    def __init__(self, enabled: bool = True, logger: Optional[logging.Logger] = None):
        self.enabled = enabled
        self.logger = logger or logging.getLogger(ROOT)

    def __call__(self, message: str) -> None:
        if self.enabled:
            self.logger.info(message)

    def count(self, what: str, total: int, every: Optional[int] = None) -> Callable[[int], None]:
        """A callback `tick(done)`: a bar on a terminal, else a line every `every` items (default a quarter)."""
        bar: Optional[ProgressBar] = None

        def tick(done: int) -> None:
            nonlocal bar
            if not self.enabled:
                return
            if bar is None:
                bar = ProgressBar(what.strip(), total, every=every, logger=self.logger)
            bar.set(done)

        return tick

"""The demo pipeline: capture thread -> inference thread -> render on the main thread.

Each stage runs while the others do: the camera is read while the model runs on the
previous frame, and the previous result is drawn while the model runs on the next. With
a live source every hand-over keeps only the newest item, so a slow stage makes the
pipeline skip frames rather than fall behind (latency stays near one inference); with a
file every frame goes through, in order.

`run_pipeline` returns the run's statistics (keys listed in its docstring).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np

from edge_deeplab.errors import EdgeDeeplabError, InvalidInputError, SourceError
from edge_deeplab.options import finite_float, option

from .capture import END, CaptureThread, Frame, Mailbox
from .interrupts import Terminated, signals_as_interrupts
from .outputs import save_snapshot
from .render import DEFAULT_ALPHA, DEFAULT_VIEW, VIEWS, Renderer, check_view, draw_hud
from .serve_address import ServeAddress
from .sinks import Sinks, open_sinks
from .smoothing import FlickerMeter, ProbabilitySmoother, check_smoothing
from .sources import Source
from .stats import Tally, build_stats, live_stats, record

_log = logging.getLogger(__name__)  # what the demo says while it runs (keys, a lost camera)


@dataclass(frozen=True, eq=False)
class DemoOptions:
    """How to run the demo; checks itself when made. Each `option` field is also the demo's
    CLI flag, its default and help declared here once (`cli.option_flags`).

    `smooth` needs the Segmenter to carry the smoother (`smoothing_filters(options)` as its
    score_filters): the Segmenter's post-processing owns it, the pipeline only reports it.
    `background` (BGR uint8, for the "replace" view), `serve` (where to serve the view and
    stats over HTTP) and `show` are made by the CLI from --background IMG, --serve/--token and
    --no-show.
    """

    view: str = option(DEFAULT_VIEW, "what to show (key v cycles)", choices=VIEWS)
    alpha: float = option(DEFAULT_ALPHA, "overlay mask weight 0..1 (keys +/-)")
    target: Optional[str] = option(
        None, "class kept sharp by the blur/replace views, e.g. person (default: all but class 0)",
        flag="--class", metavar="NAME")
    background: Optional[np.ndarray] = None
    smooth: Optional[float] = option(
        None, "temporal smoothing: EMA weight of the newest frame in (0, 1] (default: off)",
        parse=finite_float, metavar="A")
    show: bool = False  # the API runs headless unless asked; the CLI shows a window unless --no-show
    max_frames: int = option(0, "stop after N displayed frames; 0: no limit")
    output: Optional[str] = option(None, "record the rendered frames to a video", metavar="OUT.mp4")
    realtime: bool = option(False, "pace a video file or folder at its frame rate")
    reconnect_timeout: float = option(
        10.0, "seconds to retry a camera that stops delivering frames", metavar="S")
    hud: bool = option(True, "hide the FPS / timings overlay", flag="--no-hud", inverted=True)
    legend: bool = True
    snapshot_dir: str = option(".", "where key s writes snapshots")
    serve: Optional[ServeAddress] = None

    def __post_init__(self) -> None:
        check_view(self.view, self.alpha)
        check_smoothing(self.smooth)
        if self.max_frames < 0:
            raise InvalidInputError(f"max_frames (--max-frames) must be >= 0, got {self.max_frames}")
        if self.reconnect_timeout < 0:
            raise InvalidInputError(
                f"reconnect_timeout (--reconnect-timeout) must be >= 0, got {self.reconnect_timeout}"
            )


def smoothing_filters(options: DemoOptions) -> Tuple[ProbabilitySmoother, ...]:
    """The Segmenter score filters the options' smoothing needs (none when it is off)."""
    return (ProbabilitySmoother(options.smooth),) if options.smooth else ()


@dataclass
class Result:
    """One frame's segmentation, on its way to the renderer."""

    frame: Frame
    labels: np.ndarray
    timings: Dict[str, float]


class InferenceThread(threading.Thread):
    """Segments frames from `frames` into `results`, smoothing and measuring flicker."""

    def __init__(
        self,
        segmenter,
        frames: Mailbox,
        *,
        drop: bool,
    ):
        super().__init__(name="inference", daemon=True)
        self.segmenter = segmenter
        self.frames = frames
        self.results = Mailbox("latest" if drop else "queue", capacity=2)
        # The smoother is one of the Segmenter's score filters (it resets itself on a size
        # change or a scene cut); found here only to report its resets.
        self.smoother = next((f for f in segmenter.score_filters if isinstance(f, ProbabilitySmoother)), None)
        self.flicker = FlickerMeter()
        self.resolution_changes = 0
        self.error: Optional[BaseException] = None
        self._shape = None

    def stop(self) -> None:
        self.results.discard()

    def run(self) -> None:
        try:
            while True:
                frame = self.frames.get()
                if frame is END or not self.results.put(self._segment(frame)):
                    break
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = exc
        finally:
            self.frames.discard()  # unblock the capture thread if we stopped early
            self.results.close()

    def _segment(self, frame: Frame) -> Result:
        image = frame.image
        if self._shape is not None and image.shape != self._shape:
            self.resolution_changes += 1
            _log.info(f"resolution changed to {image.shape[1]}x{image.shape[0]}")
        self._shape = image.shape
        result = self.segmenter.predict(image, order="BGR")  # smoothing is in its postprocess
        self.flicker.update(result.labels)
        return Result(frame, result.labels, dict(result.timings))


def run_pipeline(segmenter, source: Source, options: DemoOptions) -> dict:
    """Run the demo on an opened `source` until it ends, `max_frames`, or the user quits.

    Returns:
        stats: frames, fps, model_fps, latency_ms (capture-to-display p50 and p90),
        stages (name -> {p50, p90} ms: capture is the time inside the source's read, which
        for a live camera includes waiting for its next frame; preprocess/infer/postprocess
        come from the Segmenter, smoothing counted in postprocess; render is drawing the
        view, legend and HUD, skipped (None) when there is neither window nor recording),
        flicker, dropped, class_pixels (name -> share),
        end (why it stopped), plus source, view, smoothing, reconnects, power.
    """
    _check_smoothing_fits(segmenter, options)
    meta = segmenter.metadata
    renderer = Renderer(
        meta.labels,
        meta.palette,
        view=options.view,
        alpha=options.alpha,
        target=options.target,
        background=options.background,
        show_legend=options.legend,
    )
    capture = CaptureThread(
        source,
        realtime=options.realtime,
        reconnect_timeout=options.reconnect_timeout,
        max_frames=0 if source.live else options.max_frames,
    )
    worker = InferenceThread(segmenter, capture.frames, drop=capture.drop)
    sinks = open_sinks(segmenter, source, options)
    recorder = sinks.recorder
    tally = Tally()
    quit_key, interrupted = False, None
    try:
        capture.start()
        worker.start()
        with signals_as_interrupts():
            quit_key = _main_loop(worker, renderer, sinks, options, tally)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: keep what was recorded so far
        interrupted = "terminated" if isinstance(exc, Terminated) else "interrupted"
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise
    finally:
        capture.stop()
        worker.stop()
        capture.join(timeout=5.0)
        worker.join(timeout=30.0)
        sinks.close()
    written = _finish_recording(recorder, capture, worker)
    end = interrupted or ("quit" if quit_key else _end_reason(capture, tally, options))
    return build_stats(segmenter, source, options, capture, worker, tally, end, written)


def run_demo(segmenter, source: Union[str, Source], options: DemoOptions) -> dict:
    """The demo's Python API: run `segmenter` on `source` (a Source, or its URI: a camera
    index, csi://, rtsp://, a video file, "synthetic", ...) until it ends; returns
    `run_pipeline`'s statistics. The source is opened here and released however the run ends.

    The Segmenter must carry the smoother when `options.smooth` is on (`smoothing_filters`).
    """
    from .sources import parse_source

    source = parse_source(source) if isinstance(source, str) else source
    with source:
        return run_pipeline(segmenter, source, options)


def _check_smoothing_fits(segmenter, options: DemoOptions) -> None:
    """--smooth against the model and the Segmenter (its range is DemoOptions' own check)."""
    if not options.smooth:
        return
    if segmenter.metadata.head != "logits":
        raise InvalidInputError(
            f"--smooth needs a model that outputs class scores; {segmenter.runtime.path} outputs a class map"
        )
    if not any(isinstance(f, ProbabilitySmoother) for f in segmenter.score_filters):
        raise InvalidInputError(
            "smoothing is on but the Segmenter has no ProbabilitySmoother: build it with "
            "score_filters=smoothing_filters(options)"
        )


def _main_loop(worker, renderer, sinks: Sinks, options, tally) -> bool:
    """Render results until the stream ends; True when the user quit with q/Esc."""
    window, recorder, server = sinks.window, sinks.recorder, sinks.server
    fps = None
    paused = None
    while True:
        if paused is not None:
            key = window.show(paused, 30)
            if key == ord(" "):
                paused = None
            elif key in (ord("q"), 27):
                return True
            continue
        item = worker.results.get(timeout=0.1)
        if item is None:
            continue
        if item is END:
            return False
        stages = dict(item.timings, capture=item.frame.capture_ms)
        picture = None
        if sinks.wanted:  # headless, unrecorded, unwatched: nobody sees it
            t0 = time.perf_counter()
            picture = renderer.render(item.frame.image, item.labels)
            if options.hud:
                draw_hud(picture, fps, stages, f"{renderer.view}  alpha {renderer.alpha:.2f}")
            stages["render"] = (time.perf_counter() - t0) * 1e3
        if recorder is not None:
            recorder.write(picture)
        if server is not None and picture is not None:
            server.offer(picture)
        key = window.show(picture) if window is not None else -1
        now = time.perf_counter()
        fps = record(tally, item, stages, now, fps)
        if server is not None:
            server.publish(live_stats(sinks.live, tally, item, stages, fps, renderer, worker))
        if key in (ord("q"), 27):
            return True
        paused = _handle_key(key, picture, renderer, options, tally)
        if options.max_frames and tally.frames >= options.max_frames:
            return False


def _handle_key(key: int, picture, renderer: Renderer, options: DemoOptions, tally: Tally):
    """Apply a key press; returns the picture to hold when paused, else None."""
    if key == ord("v"):
        _log.info(f"view: {renderer.next_view()}")
    elif key in (ord("+"), ord("=")):
        renderer.change_alpha(+0.1)
    elif key == ord("-"):
        renderer.change_alpha(-0.1)
    elif key == ord("s"):
        tally.snapshots += 1
        _log.info(f"snapshot: {save_snapshot(options.snapshot_dir, picture, tally.snapshots)}")
    elif key == ord(" "):
        return picture
    return None


def _finish_recording(recorder, capture: CaptureThread, worker: InferenceThread):
    """The finished recording's path (or None); a capture or inference failure still
    finalises what was recorded before it (no hidden partial file), then is raised."""
    failed = worker.error is not None or capture.error is not None
    written = recorder.finish() if recorder is not None else None
    if failed and written is not None:
        _log.warning(f"recording up to the failure kept: {written}")
    _raise_thread_errors(capture, worker)
    return written


def _raise_thread_errors(capture: CaptureThread, worker: InferenceThread) -> None:
    if worker.error is not None:
        raise worker.error
    if capture.error is not None:
        if isinstance(capture.error, EdgeDeeplabError):
            raise capture.error
        raise SourceError(
            f"{capture.source.uri}: capture failed: {capture.error}"
        ) from capture.error


def _end_reason(capture: CaptureThread, tally: Tally, options: DemoOptions) -> str:
    if options.max_frames and tally.frames >= options.max_frames:
        return "max frames"
    if capture.end_reason == "source lost":
        _log.warning(f"{capture.source.uri}: camera lost; stopped after {tally.frames} frames")
    return capture.end_reason or "stopped"

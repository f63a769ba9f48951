"""Drawing the demo's views, legend and HUD onto BGR frames.

The views: "overlay" (mask blended over the frame, adjustable alpha), "mask" (the colour
mask only), "side" (frame | mask), "blur" (everything but the chosen class blurred) and
"replace" (everything but the chosen class replaced by a background image).

Frames are BGR (OpenCV's order); colours come from `edge_deeplab.visualize` with the
palette turned to BGR, so a class has the same colour here as in `predict` and the report.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from edge_deeplab import deps
from edge_deeplab.errors import InvalidInputError
from edge_deeplab.visualize import legend, palette_array

VIEWS = ("overlay", "mask", "side", "blur", "replace")
DEFAULT_VIEW, DEFAULT_ALPHA = "overlay", 0.5  # the Renderer's and the demo's (DemoOptions)
STAGES = ("capture", "preprocess", "infer", "postprocess", "render")
_FONT_SCALE = 0.45
_WHITE = (255, 255, 255)


def class_index(labels: Sequence[str], name: Optional[str]) -> Optional[int]:
    """Index of class `name` (case-insensitive), None for None; InvalidInputError if unknown."""
    if name is None:
        return None
    lowered = [label.lower() for label in labels]
    if name.lower() not in lowered:
        raise InvalidInputError(
            f"--class {name!r} is not one of the model's classes: {', '.join(labels)}"
        )
    return lowered.index(name.lower())


def check_view(view: str, alpha: float) -> None:
    """The rule for a view and its overlay weight, shared by Renderer and DemoOptions."""
    if view not in VIEWS:
        raise InvalidInputError(f"view (--view) must be one of {', '.join(VIEWS)}; got {view!r}")
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInputError(f"alpha (--alpha) must be in 0..1, got {alpha}")


class Renderer:
    """Turns (frame, class map) into the picture shown and recorded.

    Args:
        labels: class names, index order.
        palette: RGB colour per class.
        view: one of VIEWS.
        alpha: overlay mask weight, 0..1.
        target: the class kept sharp by "blur"/"replace" (None: every class but class 0).
        background: BGR uint8 image for "replace" (None: a flat grey).
        show_legend: draw the per-class legend (classes present in the frame).
    """

    def __init__(
        self,
        labels: Sequence[str],
        palette: Sequence[Sequence[int]],
        *,
        view: str = DEFAULT_VIEW,
        alpha: float = DEFAULT_ALPHA,
        target: Optional[str] = None,
        background: Optional[np.ndarray] = None,
        show_legend: bool = True,
    ):
        check_view(view, alpha)
        self.labels = tuple(labels)
        self.palette_bgr = tuple(tuple(int(v) for v in color[::-1]) for color in palette)
        self.view = view
        self.alpha = float(alpha)
        self.target = class_index(self.labels, target)
        self.background = background
        self.show_legend = show_legend
        self._background_cache: Dict[tuple, np.ndarray] = {}
        # visualize's own colour table, applied with cv2.LUT: the same colours as
        # visualize.colorize at a fraction of the cost of numpy fancy indexing per frame.
        self._lut = palette_array(self.palette_bgr).reshape(256, 1, 3)

    def next_view(self) -> str:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        return self.view

    def change_alpha(self, delta: float) -> float:
        self.alpha = float(min(1.0, max(0.0, round(self.alpha + delta, 2))))
        return self.alpha

    def render(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """BGR uint8 (H, W, 3) frame + uint8 (H, W) class map -> BGR uint8 picture.

        The picture is (H, W, 3), or (H, 2W, 3) in the "side" view.
        """
        if self.view == "overlay":
            cv2 = deps.cv2()
            # visualize.overlay's blend, (1 - alpha) * frame + alpha * colours, in uint8 SIMD
            # (cv2.addWeighted) rather than float32 numpy: 768x432 costs ~1 ms, not ~10.
            out = cv2.addWeighted(frame, 1.0 - self.alpha, self.colorize(labels), self.alpha, 0.0)
        elif self.view == "mask":
            out = self.colorize(labels)
        elif self.view == "side":
            out = np.hstack([frame, self.colorize(labels)])
        else:
            out = self._composite(frame, labels)
        if self.show_legend:
            self._draw_legend(out, labels)
        return out

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """uint8 (H, W) class map -> BGR uint8 (H, W, 3), as visualize.colorize colours it."""
        cv2 = deps.cv2()
        return cv2.LUT(cv2.merge([labels, labels, labels]), self._lut)

    def foreground(self, labels: np.ndarray) -> np.ndarray:
        """float32 (H, W, 1) weight of the kept class, feathered so edges do not stair-step."""
        cv2 = deps.cv2()
        keep = (labels == self.target) if self.target is not None else (labels != 0)
        soft = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), sigmaX=2.0)
        return soft[:, :, None]

    def _composite(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        cv2 = deps.cv2()
        if self.view == "blur":
            # Blur a quarter-size copy: the same look as a wide blur at full size, ~16x cheaper.
            h, w = frame.shape[:2]
            small = cv2.resize(
                frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA
            )
            small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, w / 240.0))
            back = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            back = self._background_for(frame.shape)
        weight = self.foreground(labels)[:, :, 0]
        return cv2.blendLinear(frame, back, weight, 1.0 - weight)

    def _background_for(self, shape) -> np.ndarray:
        key = tuple(shape)
        if key not in self._background_cache:
            if self.background is None:
                image = np.full(shape, 96, np.uint8)
            else:
                cv2 = deps.cv2()
                image = cv2.resize(
                    self.background, (shape[1], shape[0]), interpolation=cv2.INTER_AREA
                )
            self._background_cache = {key: image}  # one size at a time: sizes rarely change
        return self._background_cache[key]

    def _draw_legend(self, image: np.ndarray, labels: np.ndarray, rows: int = 8) -> None:
        cv2 = deps.cv2()
        # Shares from every 4th pixel each way: the legend needs two digits, not exactness.
        entries = legend(labels[::4, ::4], self.labels, self.palette_bgr)[:rows]
        x = max(0, image.shape[1] - 160)
        _darken(image, x - 4, 4, 162, 6 + 18 * len(entries))
        for i, (name, color, share) in enumerate(entries):
            y = 8 + i * 18
            cv2.rectangle(image, (x, y), (x + 12, y + 12), color, -1)
            cv2.rectangle(image, (x, y), (x + 12, y + 12), _WHITE, 1)
            _text(image, f"{name} {share * 100:.0f}%", (x + 18, y + 11))


def draw_hud(
    image: np.ndarray, fps: Optional[float], stages: Dict[str, float], extra: str = ""
) -> None:
    """Draw FPS and per-stage milliseconds in the top-left corner (in place)."""
    lines = [f"FPS {fps:.1f}" if fps else "FPS --"]
    lines.append(
        " ".join(f"{name[:5]} {stages[name]:.1f}" for name in STAGES if name in stages) + " ms"
    )
    if extra:
        lines.append(extra)
    height = 8 + 18 * len(lines)
    width = min(image.shape[1], 12 + 7 * max(len(line) for line in lines))
    _darken(image, 0, 0, width, height)
    for i, line in enumerate(lines):
        _text(image, line, (6, 18 + 18 * i))


def _darken(image: np.ndarray, x: int, y: int, width: int, height: int) -> None:
    """Dim a box (in place) so white text on it reads over any frame."""
    patch = image[max(0, y) : y + height, max(0, x) : x + width]
    patch //= 3


def _text(image: np.ndarray, text: str, origin) -> None:
    cv2 = deps.cv2()
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, _WHITE, 1, cv2.LINE_AA)

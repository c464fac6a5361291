"""A plotext chart (textual-plotext's widget) that draws in a thread of its own, throttled.

textual-plotext draws the whole figure inside `render`, on the event loop: 8 to 20 ms for a
candlestick chart of 50x13 to 166x50 cells, and as much again for turning plotext's ANSI text
back into styles. Here the figure is built in one worker thread shared by every chart, and
plotext's cell matrix becomes Textual strips directly, without the ANSI round trip. While a
thread builds, the event loop gets the GIL back within the interpreter's switch interval, which
the first build in the thread lowers from Python's 5 ms to `SWITCH_INTERVAL_S`: a build delays
the panels beside it by that, not by the build's length.

A chart is given its data as an immutable `figure` (`show`); equal data draws nothing. It is
rebuilt at most once a frame, after the frame that shows the rest of the change, one build at
a time, and waits `COST_FACTOR` times its last
build's time before the next, so charts take at most about a quarter of a CPU however fast
the data changes. The first build at a size (a tab shown, a terminal resized) runs on the
event loop, so the chart is drawn in the same frame as the panel around it, and does not
count for the throttle; later changes are drawn in the thread.

Limits: this reads plotext's matrix (`monitor.matrix`), which is why plotext is pinned exactly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from plotext._utility import colors_to_ansi  # type: ignore[import-untyped]
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

log = logging.getLogger(__name__)

FRAME_S = 1 / 60
COST_FACTOR = 3.0
"""A chart waits this many times its last build's time before it builds again."""
SWITCH_INTERVAL_S = 0.001
"""The GIL switch interval while charts build in their thread: the longest the event loop waits
for the GIL each time it wants it back (after a `select`, say) while a build holds it
(docs/performance.md, finding 16)."""

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ginie-chart")
"""The one thread that builds charts (one at a time, whichever chart asks)."""
_STYLES: dict[tuple[Any, Any, Any], Style] = {}
"""Rich styles by plotext's (foreground, style, background), filled in the chart thread."""


class ChartPlot(PlotextPlot):
    """A chart of an immutable figure. Subclasses implement `draw`, which runs in the chart
    thread and may touch nothing but the figure and `plt`."""

    DEFAULT_CSS = """
    ChartPlot { width: 1fr; height: 1fr; }
    """

    builds: ClassVar[int] = 0
    """Builds done by every chart (tests and the benchmark count them)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.figure: Any = None
        """The data shown (or being drawn), as given to `show`."""
        self._strips: list[Strip] = []
        self._drawn: tuple[Any, tuple[int, int]] | None = None
        """The figure and size the strips were built from."""
        self._building = False
        self._next_at = 0.0
        self._timer_set = False
        self.last_drawn_at = 0.0
        """`time.monotonic()` when strips were last put on screen (0 before)."""

    @property
    def settled(self) -> bool:
        """True when what is on screen is the current figure at the current size."""
        return not self._building and self._drawn == (self.figure, tuple(self.size))

    def show(self, figure: Any) -> None:
        """Draw `figure` (the same data as before draws nothing)."""
        if figure != self.figure:
            self.figure = figure
            self._schedule()

    def draw(self, plt: Plot, figure: Any, width: int, height: int) -> None:
        """Draw `figure` with plotext calls on `plt` (in the chart thread)."""
        raise NotImplementedError

    def on_resize(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if self._building or self._timer_set or not self.is_mounted or self.settled:
            return
        size = (self.size.width, self.size.height)
        if not self.size.area:
            return
        if self._drawn is None or self._drawn[1] != size:
            strips = self._build_strips(self.figure, size, self._theme())
            self._show_strips(strips, self.figure, size)
            return
        wait = self._next_at - time.monotonic()
        if wait > 0:
            self._timer_set = True
            self.set_timer(wait, self._timer_fired)
        else:
            self._building = True
            self.call_after_refresh(self._start_build)

    def _start_build(self) -> None:
        """Start the thread's build once the frame with the rest of the screen is drawn, so
        that frame does not share the CPU with the build."""
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        size = (self.size.width, self.size.height)
        self.run_worker(self._build(size), group="chart-build")

    def _timer_fired(self) -> None:
        self._timer_set = False
        self._schedule()

    def _theme(self) -> str:
        return self._get_plotext_theme_name(self.app.theme)

    async def _build(self, size: tuple[int, int]) -> None:
        figure, theme = self.figure, self._theme()
        started = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
            strips = await loop.run_in_executor(_EXECUTOR, self._build_strips, figure, size, theme)
        finally:
            self._building = False
        finished = time.monotonic()
        self._next_at = started + max(FRAME_S, COST_FACTOR * (finished - started))
        self._show_strips(strips, figure, size)

    def _show_strips(self, strips: list[Strip], figure: Any, size: tuple[int, int]) -> None:
        ChartPlot.builds += 1
        self._strips, self._drawn = strips, (figure, size)
        self.last_drawn_at = time.monotonic()
        self.refresh()
        self._schedule()

    def _build_strips(self, figure: Any, size: tuple[int, int], theme: str) -> list[Strip]:
        width, height = size
        plt = self._plot
        plt.clear_figure()
        plt.plotsize(width, height)
        plt._set_size(width, height)
        plt.theme(theme)
        try:
            if figure is not None and width > 0 and height > 0:
                self.draw(plt, figure, width, height)
            internals: Any = plt  # plotext's figure, built without its ANSI text
            internals._set_sizes()
            internals._build_matrix()
        except Exception as exc:  # the chart thread's boundary: a figure plotext cannot draw
            log.warning("%s could not draw its figure: %r", type(self).__name__, exc)
            return [Strip([Segment(f"cannot draw this chart: {exc!r}", Style(dim=True))])]
        return matrix_strips(internals.monitor.matrix)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self._strips):
            return self._strips[y].crop_extend(0, width, self.rich_style)
        return Strip.blank(width, self.rich_style)


def matrix_strips(matrix: Any) -> list[Strip]:
    """plotext's cell matrix (rows bottom to top) as Textual strips, top to bottom: one
    segment per run of cells that share their colours."""
    strips: list[Strip] = []
    for row in range(matrix.rows - 1, -1, -1):
        markers, fore = matrix.marker[row], matrix.fullground[row]
        styles, back = matrix.style[row], matrix.background[row]
        segments: list[Segment] = []
        start = 0
        for col in range(1, matrix.cols + 1):
            if col < matrix.cols and (fore[col], styles[col], back[col]) == (
                fore[start],
                styles[start],
                back[start],
            ):
                continue
            key = (fore[start], styles[start], back[start])
            segments.append(Segment("".join(markers[start:col]), _style(key)))
            start = col
        strips.append(Strip(segments, matrix.cols))
    return strips


def _style(key: tuple[Any, Any, Any]) -> Style:
    style = _STYLES.get(key)
    if style is None:
        text = Text.from_ansi(colors_to_ansi(*key) + " ")
        span_style = text.spans[0].style if text.spans else Style()
        style = span_style if isinstance(span_style, Style) else Style.parse(span_style)
        _STYLES[key] = style
    return style

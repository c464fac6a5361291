"""The P&L tab's charts: equity over time, and realized P&L per UTC day as bars.

Both are plotext charts drawn off the event loop (`ChartPlot`); their data comes from
`ginie_tui.charts` (`equity_points`, `daily_realized`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from textual_plotext.plot import Plot

from ginie_tui.charts import DAY_MS, MINUTE_MS
from ginie_tui.widgets.plot import ChartPlot

LINE = (86, 156, 214)
GAIN = (38, 166, 91)
LOSS = (234, 57, 67)


@dataclass(frozen=True, slots=True)
class EquityFigure:
    """Equity at each time, oldest first; the last point is the equity now."""

    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class DailyFigure:
    """Realized P&L per day, oldest first, as (MM-DD, P&L)."""

    days: tuple[tuple[str, float], ...]


class EquityChart(ChartPlot):
    """Equity over time (UTC), one point per closed chain and one for now."""

    def draw(self, plt: Plot, figure: EquityFigure, width: int, height: int) -> None:
        plt.title("Equity")
        points = figure.points
        if not points:
            return
        xs = [t for t, _ in points]
        ys = [e for _, e in points]
        plt.plot(xs, ys, color=LINE, marker="braille")
        plt.scatter(xs[-1:], ys[-1:], color=LINE, marker="●")
        low, high = min(ys), max(ys)
        pad = (high - low) * 0.1 or abs(high) * 0.001 or 1.0
        plt.ylim(low - pad, high + pad)
        first, last = xs[0], xs[-1]
        count = max(2, width // 14)
        span = last - first
        form = "%H:%M" if span < DAY_MS else "%m-%d"
        ticks = [first + span * i // (count - 1) for i in range(count)] if span else [first]
        labels = [datetime.fromtimestamp(t / 1000, UTC).strftime(form) for t in ticks]
        plt.xticks([float(t) for t in ticks], labels)
        pad = max(span // 50, MINUTE_MS)
        plt.xlim(first - pad, last + pad)


class DailyPnlChart(ChartPlot):
    """Realized P&L of each of the last days, gains up in green, losses down in red."""

    def draw(self, plt: Plot, figure: DailyFigure, width: int, height: int) -> None:
        plt.title("Realized per day")
        days = figure.days
        if not days:
            return
        xs = list(range(len(days)))
        for colour, keep in ((GAIN, lambda v: v >= 0), (LOSS, lambda v: v < 0)):
            picked = [(x, v) for x, (_, v) in zip(xs, days, strict=True) if keep(v)]
            if picked:
                plt.bar([x for x, _ in picked], [v for _, v in picked], color=colour, width=0.6)
        plt.hline(0)
        step = max(1, math.ceil(len(days) * 6 / max(width - 10, 6)))
        plt.xticks([float(x) for x in xs[::step]], [label for label, _ in days][::step])
        plt.xlim(-0.6, len(days) - 0.4)

"""The candlestick chart of one symbol: OHLC candles, its open chains' lines and fills.

Candles are drawn by plotext (`candlestick`), as many of the newest as fit two columns each;
each open chain adds its entry, stop-loss and take-profits as labelled horizontal lines, and
its fills are marked where they happened (up for a buy, down for a sell). The price axis spans
the candles and every line; the time axis is in UTC. Drawing happens off the event loop and
throttled (`ChartPlot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from textual_plotext.plot import Plot

from ginie_protocol.events import Kline
from ginie_tui.charts import INTERVALS, MINUTE_MS, Fill, Level
from ginie_tui.widgets.plot import ChartPlot

UP = (38, 166, 91)
DOWN = (234, 57, 67)
LEVEL_COLOURS = {"entry": (86, 156, 214), "stop": (244, 135, 40), "target": (78, 201, 176)}
FILL_COLOUR = (229, 192, 123)
Y_AXIS_COLS = 12
"""Columns the price axis takes, left of the candles."""


@dataclass(frozen=True, slots=True)
class CandleFigure:
    """What the chart shows: candles of one interval, oldest first, with chain lines and fills."""

    interval: str
    candles: tuple[Kline, ...]
    levels: tuple[Level, ...] = ()
    fills: tuple[Fill, ...] = ()


class CandleChart(ChartPlot):
    """Candles, chain lines and fills of the symbol the market panel shows."""

    can_focus = True

    def draw(self, plt: Plot, figure: CandleFigure, width: int, height: int) -> None:
        fit = max(4, (width - Y_AXIS_COLS) // 2)
        candles = figure.candles[-fit:]
        if not candles:
            plt.title("no candles yet")
            return
        xs: list[Any] = list(range(len(candles)))  # plotext takes numbers as dates too
        plt.candlestick(
            xs,
            {
                "Open": [c.open for c in candles],
                "Close": [c.close for c in candles],
                "High": [c.high for c in candles],
                "Low": [c.low for c in candles],
            },
            colors=[UP, DOWN],
        )
        right = len(candles) - 0.5
        for level in figure.levels:
            colour = LEVEL_COLOURS[level.kind]
            plt.hline(level.price, colour)
            plt.text(level.label, right, level.price, color=colour, alignment="right")
        span = INTERVALS[figure.interval] * MINUTE_MS
        for fill in figure.fills:
            x = (fill.time - candles[0].open_time) / span - 0.5
            if -0.5 <= x <= right:
                marker = "▲" if fill.side == "BUY" else "▼"
                plt.scatter([x], [fill.price], marker=marker, color=FILL_COLOUR)
        low, high = price_range(candles, figure.levels, figure.fills)
        plt.ylim(low, high)
        plt.xlim(-0.5, right)
        ticks = time_ticks(candles, max(2, (width - Y_AXIS_COLS) // 12))
        plt.xticks([float(x) for x, _ in ticks], [label for _, label in ticks])


def price_range(
    candles: Sequence[Kline], levels: Sequence[Level], fills: Sequence[Fill]
) -> tuple[float, float]:
    """The price axis: every candle, line and fill, with a little room above and below."""
    prices = [c.low for c in candles] + [c.high for c in candles]
    prices += [level.price for level in levels] + [f.price for f in fills]
    low, high = min(prices), max(prices)
    pad = (high - low) * 0.05 or abs(high) * 0.001 or 1.0
    return low - pad, high + pad


def time_ticks(candles: Sequence[Kline], count: int) -> list[tuple[int, str]]:
    """About `count` evenly spaced candles, as (index, HH:MM in UTC)."""
    step = max(1, round(len(candles) / count))
    return [
        (i, datetime.fromtimestamp(candles[i].open_time / 1000, UTC).strftime("%H:%M"))
        for i in range(0, len(candles), step)
    ]

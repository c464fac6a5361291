"""Recorded screens of the charts (SVGs in snapshots/): the candlestick chart with an open chain
and the depth ladder on the Market tab, the equity curve, daily P&L and performance bars on the
P&L tab, at 80x24 and 120x36, from the seeded chart dataset and a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from ginie_tui.app import ConsoleSettings, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.widgets.plot import ChartPlot
from tests.harness import wait_for
from tests.tui.chart_data import ChartFeed, chart_store
from tests.tui.dataset import T0

SIZES = [(80, 24), (120, 36)]


async def charts_drawn(pilot: Pilot[Any]) -> None:
    """Wait until every chart on screen shows its current figure (they draw in a thread)."""
    shown = [c for c in pilot.app.query(ChartPlot) if c.is_on_screen]
    await wait_for(lambda: all(c.figure is not None and c.settled for c in shown), timeout=20)
    await pilot.pause()


def chart_app() -> Any:
    return make_app(
        ChartFeed(),
        store=chart_store(),
        clock=ManualClock(T0),
        settings=ConsoleSettings(server="http://127.0.0.1:8765"),
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_market_chart(snap_compare: Any, size: tuple[int, int]) -> None:
    """1m candles with the open chain's entry, stop-loss and two take-profits and its two fills;
    the ten-level book as a ladder."""
    assert snap_compare(chart_app(), press=["5"], terminal_size=size, run_before=charts_drawn)


def test_market_chart_15m(snap_compare: Any) -> None:
    """i twice: the same minutes as 15m candles."""
    assert snap_compare(
        chart_app(), press=["5", "i", "i"], terminal_size=(120, 36), run_before=charts_drawn
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x36"])
def test_pnl_charts(snap_compare: Any, size: tuple[int, int]) -> None:
    """The equity curve over a week of closed chains, realized P&L per day, performance bars."""
    assert snap_compare(chart_app(), press=["4"], terminal_size=size, run_before=charts_drawn)

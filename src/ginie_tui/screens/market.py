"""Market: mark price, the candlestick chart and the depth ladder of one symbol at a time."""

from __future__ import annotations

from textual.binding import Binding

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.chart import CandleChart
from ginie_tui.widgets.market import MarketPanel


class MarketPane(GroupPane):
    DEFAULT_CSS = """
    MarketPane > Grid { grid-size: 1; grid-rows: 1fr; }
    """
    BINDINGS = [
        Binding("right_square_bracket", "symbol(1)", "Next symbol"),
        Binding("left_square_bracket", "symbol(-1)", "Prev symbol"),
        Binding("i", "interval", "Interval"),
    ]

    def panels(self) -> list[Panel]:
        return [MarketPanel(self.store, self.clock)]

    def on_show(self) -> None:
        """Focus the chart when the tab is shown, so the tab's keys work at once."""
        self.query_one(CandleChart).focus()

    def action_symbol(self, step: int) -> None:
        self.query_one(MarketPanel).cycle(step)

    def action_interval(self) -> None:
        self.query_one(MarketPanel).cycle_interval()

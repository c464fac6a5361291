"""P&L: the dashboard with its cards and charts, performance as bars, trade sources."""

from __future__ import annotations

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.performance import PerformancePanel
from ginie_tui.widgets.pnl import PnlPanel
from ginie_tui.widgets.stats import StatsPanel


class PnlPane(GroupPane):
    DEFAULT_CSS = """
    PnlPane > Grid { grid-rows: 3fr 2fr; }
    """

    def panels(self) -> list[Panel]:
        return [
            PnlPanel(self.store, self.clock, classes="wide"),
            PerformancePanel(self.store, self.clock),
            StatsPanel(self.store, self.clock),
        ]

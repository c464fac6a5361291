"""P&L: the dashboard with its summary cards, performance, trade sources."""

from __future__ import annotations

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.performance import PerformancePanel
from ginie_tui.widgets.pnl import PnlPanel
from ginie_tui.widgets.stats import StatsPanel


class PnlPane(GroupPane):
    DEFAULT_CSS = """
    PnlPane > Grid { grid-rows: 14 1fr; }
    """

    def panels(self) -> list[Panel]:
        return [
            PnlPanel(self.store, self.clock, classes="wide"),
            PerformancePanel(self.store, self.clock),
            StatsPanel(self.store, self.clock),
        ]

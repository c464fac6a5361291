"""Trading: order chains, lifecycle events, positions, orders and trades."""

from __future__ import annotations

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.chains import ChainsPanel
from ginie_tui.widgets.lifecycle import LifecyclePanel
from ginie_tui.widgets.orders import OrdersPanel
from ginie_tui.widgets.positions import PositionsPanel
from ginie_tui.widgets.trades import TradesPanel


class TradingPane(GroupPane):
    DEFAULT_CSS = """
    TradingPane > Grid { grid-rows: 1fr 1fr 1fr; }
    """

    def panels(self) -> list[Panel]:
        return [
            ChainsPanel(self.store, self.clock, classes="wide"),
            PositionsPanel(self.store, self.clock),
            LifecyclePanel(self.store, self.clock),
            OrdersPanel(self.store, self.clock),
            TradesPanel(self.store, self.clock),
        ]

"""Safety: the circuit breaker, mode safety and mode allocation."""

from __future__ import annotations

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.breaker import BreakerPanel
from ginie_tui.widgets.mode_allocation import ModeAllocationPanel
from ginie_tui.widgets.mode_safety import ModeSafetyPanel


class SafetyPane(GroupPane):
    DEFAULT_CSS = """
    SafetyPane > Grid { grid-rows: 1fr 1fr; }
    """

    def panels(self) -> list[Panel]:
        return [
            BreakerPanel(self.store, self.clock, classes="wide"),
            ModeSafetyPanel(self.store, self.clock),
            ModeAllocationPanel(self.store, self.clock),
        ]

"""Autopilot: Ginie status and controls, diagnostics, signals, rules."""

from __future__ import annotations

from ginie_tui.screens.group import GroupPane
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.diagnostics import DiagnosticsPanel
from ginie_tui.widgets.ginie import GiniePanel
from ginie_tui.widgets.rules import RulesPanel
from ginie_tui.widgets.signals import SignalsPanel


class AutopilotPane(GroupPane):
    DEFAULT_CSS = """
    AutopilotPane > Grid { grid-rows: 1fr 1fr; }
    """

    def panels(self) -> list[Panel]:
        return [
            GiniePanel(self.store, self.clock),
            SignalsPanel(self.store, self.clock),
            DiagnosticsPanel(self.store, self.clock),
            RulesPanel(self.store, self.clock),
        ]

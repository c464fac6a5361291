"""System: API health and system status, connection details, strategies, news, the alerts log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ginie_tui.alerts import Alert
from ginie_tui.clock import Clock
from ginie_tui.screens.group import GroupPane
from ginie_tui.store import Store
from ginie_tui.widgets.alerts import AlertsPanel
from ginie_tui.widgets.base import Panel
from ginie_tui.widgets.connection_details import ConnectionPanel
from ginie_tui.widgets.news import NewsPanel
from ginie_tui.widgets.strategies import StrategiesPanel
from ginie_tui.widgets.system import SystemPanel


class SystemPane(GroupPane):
    DEFAULT_CSS = """
    SystemPane > Grid { grid-rows: 1fr 1fr 1fr; }
    """

    def __init__(
        self,
        title: str,
        store: Store,
        clock: Clock,
        *,
        id: str,
        server: str,
        poll_interval_s: float,
        strategies_path: Path | None,
        news_url: str | None,
        alerts: Sequence[Alert],
    ) -> None:
        super().__init__(title, store, clock, id=id)
        self.server = server
        self.poll_interval_s = poll_interval_s
        self.strategies_path = strategies_path
        self.news_url = news_url
        self.alerts = alerts

    def panels(self) -> list[Panel]:
        return [
            SystemPanel(self.store, self.clock),
            ConnectionPanel(
                self.store, self.clock, server=self.server, poll_interval_s=self.poll_interval_s
            ),
            StrategiesPanel(self.store, self.clock, path=self.strategies_path),
            NewsPanel(self.store, self.clock, url=self.news_url),
            AlertsPanel(self.store, self.clock, alerts=self.alerts, classes="wide"),
        ]

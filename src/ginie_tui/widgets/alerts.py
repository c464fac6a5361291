"""The alerts log: the recent alerts (fills, closed chains, breaker, modes, liquidation distance,
connection), newest first, as they were notified. Rendered from the app's `Alerter`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult

from ginie_tui.alerts import LOG_SIZE, Alert
from ginie_tui.widgets.base import Panel, Ranked, fmt_time
from ginie_tui.widgets.rowlog import RowLog

SEVERITY_STYLE = {"information": "green", "warning": "yellow", "error": "bold red"}


class AlertsPanel(Panel):
    """Shows `alerts` (the alerter's recent ones, oldest first), one row each."""

    TITLE = "Alerts"
    COLUMNS = (
        ("time", "Time", 8),
        ("kind", "Kind", 11),
        ("title", "Alert", 23),
        ("message", "Detail", 57),
    )

    def __init__(self, *args: Any, alerts: Sequence[Alert], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alerts = alerts

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=LOG_SIZE)

    def refresh_all(self) -> None:
        self.query_one(RowLog).replace_all((str(a.id), self._cells(a)) for a in self.alerts)
        count = len(self.alerts)
        self.border_title = f"{self.TITLE} ({count})" if count else self.TITLE

    @staticmethod
    def _cells(a: Alert) -> list[Any]:
        style = SEVERITY_STYLE[a.severity]
        return [
            Ranked(fmt_time(a.at_ms), a.id),
            a.kind.value,
            f"[{style}]{escape(a.title)}[/]",
            escape(a.message),
        ]

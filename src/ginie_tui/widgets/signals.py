"""Signals: every trade idea with its status; pending ones open the approve/reject modal.

The status shown is only ever the one the server sent in a SIGNAL_UPDATE: approving from the
console sends signal.approve and waits for that event, it never guesses."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ginie_protocol.events import Signal, Topic
from ginie_tui.store import Change
from ginie_tui.widgets.base import ItemsPanel, Ranked, fmt_price, fmt_time
from ginie_tui.widgets.rowlog import RowLog

STATUS_STYLE = {
    "pending": "bold yellow",
    "approved": "green",
    "executed": "bold green",
    "rejected": "red",
    "expired": "dim",
}


class SignalsPanel(ItemsPanel):
    TITLE = "Signals"
    TOPIC = Topic.SIGNAL_UPDATE
    COLUMNS = (
        ("time", "Time", 8),
        ("symbol", "Symbol", 8),
        ("dir", "Dir", 5),
        ("status", "Status", 8),
        ("conf", "Conf", 4),
        ("entry", "Entry", 9),
        ("mode", "Mode", 8),
        ("strategy", "Strategy", 11),
    )

    class PendingRequested(Message):
        """The user asked to review pending signals."""

    def make_table(self) -> RowLog:
        return RowLog(self.COLUMNS, max_rows=self.MAX_ROWS, id="signals-table")

    def refresh_all(self) -> None:
        super().refresh_all()
        self._count_pending()

    def apply_change(self, change: Change) -> None:
        super().apply_change(change)
        self._count_pending()

    def pending(self) -> list[Signal]:
        return [s for s in self.store.items(Topic.SIGNAL_UPDATE) if s.status == "pending"]

    def _count_pending(self) -> None:
        count = len(self.pending())
        self.border_title = f"{self.TITLE}: {count} pending (s to review)" if count else self.TITLE

    def on_row_log_selected(self, event: RowLog.Selected) -> None:
        event.stop()
        self.post_message(self.PendingRequested())

    def cells(self, s: Signal) -> list[Any]:
        style = STATUS_STYLE[s.status]
        return [
            Ranked(fmt_time(s.created_at), (s.created_at, s.signal_id)),
            s.symbol,
            s.direction,
            f"[{style}]{s.status}[/]",
            f"{s.confidence:.2f}",
            fmt_price(s.entry_price),
            s.mode,
            s.strategy,
        ]

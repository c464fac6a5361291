"""Signals: every trade idea with its status; pending ones open the approve/reject modal.

The status shown is only ever the one the server sent in a SIGNAL_UPDATE: approving from the
console sends signal.approve and waits for that event, it never guesses."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.message import Message

from ginie_protocol.events import Signal
from ginie_tui.store import Change
from ginie_tui.widgets.base import KeyedTable, Panel, Ranked, fmt_price, fmt_time

STATUS_STYLE = {
    "pending": "bold yellow",
    "approved": "green",
    "executed": "bold green",
    "rejected": "red",
    "expired": "dim",
}


class SignalsPanel(Panel):
    TITLE = "Signals"
    TOPICS = frozenset({"SIGNAL_UPDATE"})
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

    def compose(self) -> ComposeResult:
        yield KeyedTable(self.COLUMNS, max_rows=300, id="signals-table")

    def refresh_all(self) -> None:
        signals = self.store.items("SIGNAL_UPDATE")
        self.query_one(KeyedTable).replace_all((s.signal_id, self._cells(s)) for s in signals)
        self._count_pending()

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get("SIGNAL_UPDATE", key) for key in change.keys)
        self.query_one(KeyedTable).upsert_many(
            (signal.signal_id, self._cells(signal)) for signal in held if signal is not None
        )
        self._count_pending()

    def pending(self) -> list[Signal]:
        return [s for s in self.store.items("SIGNAL_UPDATE") if s.status == "pending"]

    def _count_pending(self) -> None:
        count = len(self.pending())
        self.border_title = f"{self.TITLE}: {count} pending (s to review)" if count else self.TITLE

    def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.PendingRequested())

    @staticmethod
    def _cells(s: Signal) -> list[Any]:
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

"""Lifecycle events: each step of each chain, newest first, appended as they happen."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import LifecycleEvent
from ginie_tui.store import Change
from ginie_tui.widgets.base import Panel, Ranked, fmt_time
from ginie_tui.widgets.rowlog import RowLog

SHOWN = 300
"""Rows on screen; the store keeps up to 10,000 events."""


class LifecyclePanel(Panel):
    TITLE = "Lifecycle events"
    TOPICS = frozenset({"LIFECYCLE_EVENT"})
    COLUMNS = (
        ("time", "Time", 8),
        ("step", "Step", 12),
        ("message", "Message", 30),
        ("symbol", "Symbol", 8),
        ("chain", "Chain", 10),
    )

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=SHOWN)

    def refresh_all(self) -> None:
        events = self.store.items("LIFECYCLE_EVENT")[-SHOWN:]
        self.query_one(RowLog).replace_all((str(e.id), self._cells(e)) for e in events)

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get("LIFECYCLE_EVENT", key) for key in change.keys)
        self.query_one(RowLog).upsert_many(
            (str(event.id), self._cells(event)) for event in held if event is not None
        )

    @staticmethod
    def _cells(event: LifecycleEvent) -> list[Any]:
        return [
            Ranked(fmt_time(event.time), (event.time, event.id)),
            event.step,
            event.message,
            event.symbol,
            event.chain_id,
        ]

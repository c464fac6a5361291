"""Mode allocation: the capital each trading mode may use, and how much it uses."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import ModeAllocation
from ginie_tui.store import Change
from ginie_tui.widgets.base import KeyedTable, Panel, Ranked, fmt_num
from ginie_tui.widgets.breaker import gauge
from ginie_tui.widgets.mode_safety import MODE_ORDER


class ModeAllocationPanel(Panel):
    TITLE = "Mode allocation"
    TOPICS = frozenset({"MODE_ALLOCATION_UPDATE"})
    COLUMNS = (
        ("mode", "Mode", 8),
        ("pct", "Share", 5),
        ("alloc", "Allocated", 10),
        ("used", "Used", 10),
        ("bar", "", 10),
        ("free", "Available", 10),
        ("open", "Open", 4),
    )

    def compose(self) -> ComposeResult:
        yield KeyedTable(self.COLUMNS, max_rows=10, newest_first=False)

    def refresh_all(self) -> None:
        modes = self.store.items("MODE_ALLOCATION_UPDATE")
        self.query_one(KeyedTable).replace_all((m.mode, self._cells(m)) for m in modes)

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get(change.topic, key) for key in change.keys)
        self.query_one(KeyedTable).upsert_many(
            (mode.mode, self._cells(mode)) for mode in held if mode is not None
        )

    @staticmethod
    def _cells(m: ModeAllocation) -> list[Any]:
        return [
            Ranked(m.mode, MODE_ORDER.get(m.mode, 9)),
            f"{m.allocated_pct:g}%",
            fmt_num(m.allocated_usd),
            fmt_num(m.used_usd),
            gauge(m.used_usd, m.allocated_usd, 10),
            fmt_num(m.available_usd),
            str(m.open_positions),
        ]

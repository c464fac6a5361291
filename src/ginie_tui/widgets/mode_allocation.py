"""Mode allocation: the capital each trading mode may use, and how much it uses."""

from __future__ import annotations

from typing import Any

from ginie_protocol.events import ModeAllocation, Topic
from ginie_tui.widgets.base import ItemsPanel, Ranked, fmt_num
from ginie_tui.widgets.breaker import gauge
from ginie_tui.widgets.mode_safety import MODE_ORDER
from ginie_tui.widgets.rowlog import RowLog


class ModeAllocationPanel(ItemsPanel):
    TITLE = "Mode allocation"
    TOPIC = Topic.MODE_ALLOCATION_UPDATE
    COLUMNS = (
        ("mode", "Mode", 8),
        ("pct", "Share", 5),
        ("alloc", "Allocated", 10),
        ("used", "Used", 10),
        ("bar", "", 10),
        ("free", "Available", 10),
        ("open", "Open", 4),
    )

    def make_table(self) -> RowLog:
        return RowLog(self.COLUMNS, max_rows=10, newest_first=False)

    def cells(self, m: ModeAllocation) -> list[Any]:
        return [
            Ranked(m.mode, MODE_ORDER.get(m.mode, 9)),
            f"{m.allocated_pct:g}%",
            fmt_num(m.allocated_usd),
            fmt_num(m.used_usd),
            gauge(m.used_usd, m.allocated_usd, 10),
            fmt_num(m.available_usd),
            str(m.open_positions),
        ]

"""Mode safety: whether each trading mode (scalp, swing, position) may trade, and why not."""

from __future__ import annotations

from typing import Any

from ginie_protocol.events import ModeSafety, Topic
from ginie_tui.widgets.base import ItemsPanel, Ranked, fmt_in, fmt_num
from ginie_tui.widgets.rowlog import RowLog

MODE_ORDER = {"scalp": 0, "swing": 1, "position": 2}
STATUS_STYLE = {"active": "green", "paused": "yellow", "blocked": "bold red"}


class ModeSafetyPanel(ItemsPanel):
    TITLE = "Mode safety"
    TOPIC = Topic.MODE_SAFETY_UPDATE
    COLUMNS = (
        ("mode", "Mode", 8),
        ("status", "Status", 7),
        ("losses", "Losses", 6),
        ("loss", "Loss today", 14),
        ("until", "Paused", 9),
        ("reason", "Reason", 24),
    )

    def make_table(self) -> RowLog:
        return RowLog(self.COLUMNS, max_rows=10, newest_first=False)

    def cells(self, m: ModeSafety) -> list[Any]:
        return [
            Ranked(m.mode, MODE_ORDER.get(m.mode, 9)),
            f"[{STATUS_STYLE[m.status]}]{m.status}[/]",
            f"{m.consecutive_losses}/{m.max_consecutive_losses}",
            f"{fmt_num(m.loss_today)}/{m.max_loss_today:g}",
            fmt_in(m.paused_until, self.clock.now_ms()) if m.paused_until else "-",
            m.reason or "",
        ]

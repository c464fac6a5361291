"""Trade history: fills, newest first, with fee and realized P&L."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import Trade
from ginie_tui.store import Change
from ginie_tui.widgets.base import (
    Panel,
    Ranked,
    fmt_num,
    fmt_price,
    fmt_signed,
    fmt_time,
)
from ginie_tui.widgets.rowlog import RowLog


class TradesPanel(Panel):
    TITLE = "Trades"
    TOPICS = frozenset({"TRADE_UPDATE"})
    COLUMNS = (
        ("time", "Time", 8),
        ("symbol", "Symbol", 8),
        ("side", "Side", 4),
        ("qty", "Qty", 6),
        ("price", "Price", 9),
        ("pnl", "P&L", 7),
        ("fee", "Fee", 5),
    )

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=300)

    def refresh_all(self) -> None:
        trades = self.store.items("TRADE_UPDATE")
        self.query_one(RowLog).replace_all((t.trade_id, self._cells(t)) for t in trades)

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get("TRADE_UPDATE", key) for key in change.keys)
        self.query_one(RowLog).upsert_many(
            (trade.trade_id, self._cells(trade)) for trade in held if trade is not None
        )

    @staticmethod
    def _cells(t: Trade) -> list[Any]:
        return [
            Ranked(fmt_time(t.time), (t.time, t.trade_id)),
            t.symbol,
            t.side,
            f"{t.quantity:g}",
            fmt_price(t.price),
            fmt_signed(t.realized_pnl),
            fmt_num(t.fee),
        ]

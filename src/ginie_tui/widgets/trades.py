"""Trade history: fills, newest first, with fee and realized P&L."""

from __future__ import annotations

from typing import Any

from ginie_protocol.events import Topic, Trade
from ginie_tui.widgets.base import (
    ItemsPanel,
    Ranked,
    fmt_num,
    fmt_price,
    fmt_signed,
    fmt_time,
)


class TradesPanel(ItemsPanel):
    TITLE = "Trades"
    TOPIC = Topic.TRADE_UPDATE
    COLUMNS = (
        ("time", "Time", 8),
        ("symbol", "Symbol", 8),
        ("side", "Side", 4),
        ("qty", "Qty", 6),
        ("price", "Price", 9),
        ("pnl", "P&L", 7),
        ("fee", "Fee", 5),
    )

    def cells(self, t: Trade) -> list[Any]:
        return [
            Ranked(fmt_time(t.time), (t.time, t.trade_id)),
            t.symbol,
            t.side,
            f"{t.quantity:g}",
            fmt_price(t.price),
            fmt_signed(t.realized_pnl),
            fmt_num(t.fee),
        ]

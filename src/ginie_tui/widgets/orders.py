"""Orders history: every order the exchange reported, newest update first."""

from __future__ import annotations

from typing import Any

from ginie_protocol.events import Order, Topic
from ginie_tui.widgets.base import ItemsPanel, Ranked, fmt_price, fmt_time


class OrdersPanel(ItemsPanel):
    TITLE = "Orders"
    TOPIC = Topic.ORDER_UPDATE
    COLUMNS = (
        ("time", "Updated", 8),
        ("symbol", "Symbol", 8),
        ("side", "Side", 4),
        ("status", "Status", 8),
        ("type", "Type", 11),
        ("qty", "Qty", 9),
        ("price", "Price", 9),
        ("id", "Order", 8),
    )

    def cells(self, o: Order) -> list[Any]:
        price = o.avg_price or o.price or o.stop_price
        return [
            Ranked(fmt_time(o.updated_at), (o.updated_at, o.order_id)),
            o.symbol,
            o.side,
            o.status,
            o.type,
            f"{o.filled_qty:g}/{o.quantity:g}",
            fmt_price(price),
            o.order_id,
        ]

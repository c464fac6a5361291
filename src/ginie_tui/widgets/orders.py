"""Orders history: every order the exchange reported, newest update first."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import Order
from ginie_tui.store import Change
from ginie_tui.widgets.base import Panel, Ranked, fmt_price, fmt_time
from ginie_tui.widgets.rowlog import RowLog


class OrdersPanel(Panel):
    TITLE = "Orders"
    TOPICS = frozenset({"ORDER_UPDATE"})
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

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=300)

    def refresh_all(self) -> None:
        orders = self.store.items("ORDER_UPDATE")
        self.query_one(RowLog).replace_all((o.order_id, self._cells(o)) for o in orders)

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get("ORDER_UPDATE", key) for key in change.keys)
        self.query_one(RowLog).upsert_many(
            (order.order_id, self._cells(order)) for order in held if order is not None
        )

    @staticmethod
    def _cells(o: Order) -> list[Any]:
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

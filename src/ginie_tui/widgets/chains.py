"""Trade lifecycle: order chains (entry, take-profits, stop-loss) and how many orders are open."""

from __future__ import annotations

from collections import Counter
from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import Chain, Topic
from ginie_tui.store import Change
from ginie_tui.widgets.base import Panel, Ranked, fmt_price, fmt_signed, fmt_time
from ginie_tui.widgets.rowlog import RowLog

OPEN_ORDER = frozenset({"NEW", "PARTIALLY_FILLED"})


class ChainsPanel(Panel):
    """One row per chain, newest first; ORDER_UPDATE refreshes the chain's open-order count."""

    DEFAULT_CSS = """
    ChainsPanel { min-height: 8; }
    """
    TITLE = "Order chains"
    TOPICS = frozenset({Topic.CHAIN_UPDATE, Topic.ORDER_UPDATE})
    COLUMNS = (
        ("opened", "Opened", 8),
        ("symbol", "Symbol", 8),
        ("dir", "Dir", 5),
        ("status", "Status", 8),
        ("qty", "Qty", 9),
        ("entry", "Entry", 9),
        ("sl", "Stop", 9),
        ("tp", "Target", 9),
        ("pnl", "P&L", 7),
        ("orders", "Ord", 3),
        ("mode", "Mode", 8),
    )

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=200)

    def refresh_all(self) -> None:
        counts = self._open_orders()
        self.query_one(RowLog).replace_all(
            (c.chain_id, self._cells(c, counts[c.chain_id]))
            for c in self.store.items(Topic.CHAIN_UPDATE)
        )

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        if change.topic == Topic.CHAIN_UPDATE:
            chain_ids = list(change.keys)
        else:
            orders = (self.store.get(Topic.ORDER_UPDATE, key) for key in change.keys)
            chain_ids = list(dict.fromkeys(o.chain_id for o in orders if o and o.chain_id))
        chains = (self.store.get(Topic.CHAIN_UPDATE, chain_id) for chain_id in chain_ids)
        counts = self._open_orders()
        self.query_one(RowLog).upsert_many(
            (c.chain_id, self._cells(c, counts[c.chain_id])) for c in chains if c is not None
        )

    def export_items(self) -> list[Chain]:
        return self.store.items(Topic.CHAIN_UPDATE)

    def _open_orders(self) -> Counter[str | None]:
        """Open orders per chain."""
        orders = self.store.items(Topic.ORDER_UPDATE)
        return Counter(o.chain_id for o in orders if o.status in OPEN_ORDER)

    @staticmethod
    def _cells(chain: Chain, open_orders: int) -> list[Any]:
        status = chain.status + (f" ({chain.close_reason})" if chain.close_reason else "")
        return [
            Ranked(fmt_time(chain.opened_at), chain.opened_at),
            chain.symbol,
            chain.direction,
            status,
            f"{chain.remaining_qty:g}/{chain.quantity:g}",
            fmt_price(chain.entry_price),
            fmt_price(chain.stop_loss_price),
            fmt_price(chain.take_profit_prices[0]) if chain.take_profit_prices else "-",
            fmt_signed(chain.realized_pnl),
            str(open_orders),
            chain.mode,
        ]

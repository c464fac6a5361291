"""Open positions, with the mark price kept current from the market stream."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from ginie_protocol.events import Position, Topic
from ginie_tui.store import Change
from ginie_tui.widgets.base import Panel, Ranked, fmt_num, fmt_price, fmt_signed
from ginie_tui.widgets.rowlog import RowLog


class PositionsPanel(Panel):
    """One row per open position; a flat position leaves the table. The mark price shown is
    the newer of the position's and the market stream's, and the P&L follows it: a mark price
    change updates the rows of its symbols."""

    TITLE = "Positions"
    TOPICS = frozenset({Topic.POSITION_UPDATE, Topic.FUTURES_MARK_PRICE_UPDATE})
    COLUMNS = (
        ("symbol", "Symbol", 8),
        ("side", "Side", 5),
        ("size", "Size", 6),
        ("mark", "Mark", 9),
        ("upnl", "uP&L", 8),
        ("entry", "Entry", 9),
        ("lev", "Lev", 3),
        ("liq", "Liq.", 10),
        ("margin", "Margin", 9),
    )

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=100, newest_first=False)

    def refresh_all(self) -> None:
        rows = [
            (p.symbol, self._cells(p)) for p in self.store.items(Topic.POSITION_UPDATE) if p.size
        ]
        self.query_one(RowLog).replace_all(rows)

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        table = self.query_one(RowLog)
        rows: list[tuple[str, list[Any]]] = []
        for symbol in change.keys:
            position = self.store.get(Topic.POSITION_UPDATE, symbol)
            if position is not None and position.size:
                rows.append((symbol, self._cells(position)))
            elif change.topic == Topic.POSITION_UPDATE:
                table.remove_key(symbol)
        table.upsert_many(rows)

    def export_items(self) -> list[Position]:
        return [p for p in self.store.items(Topic.POSITION_UPDATE) if p.size]

    def _cells(self, p: Position) -> list[Any]:
        mark, upnl = p.mark_price, p.unrealized_pnl
        market = self.store.mark_price(p.symbol)
        if market is not None and market.time > p.updated_at:
            mark = market.mark_price
            upnl = (mark - p.entry_price) * p.size
        return [
            Ranked(p.symbol, p.symbol),
            "LONG" if p.size > 0 else "SHORT",
            f"{abs(p.size):g}",
            fmt_price(mark),
            fmt_signed(upnl),
            fmt_price(p.entry_price),
            f"{p.leverage}x",
            fmt_price(p.liquidation_price),
            fmt_num(p.margin),
        ]

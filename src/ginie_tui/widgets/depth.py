"""The order book as a ladder: asks above bids, best prices by the spread, sizes as bars.

Each side shows as many levels as the height allows (the exchange's book may hold more); the
bars share one scale, the largest size shown. The ladder repaints only when the book of its
symbol is a new one, so books of other symbols cost it nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from ginie_protocol.events import OrderBook
from ginie_tui.widgets.bars import bar
from ginie_tui.widgets.base import fmt_price

PRICE_COLS = 11
SIZE_COLS = 8


class DepthLadder(Widget):
    """Asks (red) over bids (green) with the spread between them."""

    DEFAULT_CSS = """
    DepthLadder { width: 30; height: 1fr; padding: 0 0 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.book: OrderBook | None = None
        """The book shown."""

    def show(self, book: OrderBook | None) -> None:
        """Show `book` (the one already shown repaints nothing)."""
        if book is not self.book:
            self.book = book
            self.refresh()

    def render(self) -> Text:
        width, height = self.size
        bar_cols = max(0, width - PRICE_COLS - SIZE_COLS - 2)
        lines = Text(no_wrap=True, overflow="crop")
        lines.append(f"{'Price':>{PRICE_COLS}} {'Size':>{SIZE_COLS}}\n", style="bold")
        book = self.book
        if book is None or not (book.bids or book.asks):
            lines.append("no order book yet", style="dim")
            return lines
        depth = max(1, (height - 2) // 2)
        asks = sorted(book.asks)[:depth]
        bids = sorted(book.bids, reverse=True)[:depth]
        scale = max(q for _, q in asks + bids)
        for price, size in reversed(asks):
            self._row(lines, price, size, scale, bar_cols, "red")
        if asks and bids:
            spread = f"spread {asks[0][0] - bids[0][0]:,.{price_digits(bids[0][0])}f}"
            lines.append(f"{spread:>{PRICE_COLS + SIZE_COLS + 1}}\n", "dim")
        for price, size in bids:
            self._row(lines, price, size, scale, bar_cols, "green")
        return lines

    @staticmethod
    def _row(lines: Text, price: float, size: float, scale: float, cols: int, colour: str) -> None:
        lines.append(f"{fmt_price(price):>{PRICE_COLS}}", colour)
        lines.append(f" {size:>{SIZE_COLS}g} ")
        lines.append(bar(size, scale, cols) + "\n", colour)


def price_digits(price: float) -> int:
    """The decimals `fmt_price` shows for `price` (the spread is shown with as many)."""
    return 2 if abs(price) >= 100 else 4 if abs(price) >= 1 else 6

"""Market: mark price and funding, a sparkline of candle closes, and the order book.

Market events arrive in bursts; the app collapses a burst into one refresh, and this panel
renders only the symbol it is showing. Its heading has a fixed height, so a tick repaints it
without laying out the screen (a layout pass costs a whole frame). When it shows a symbol it
says so (`SymbolShown`), and the app asks the feed to bring that symbol's recent candles into
the store."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Sparkline, Static

from ginie_protocol import MARKET_TOPICS
from ginie_tui.widgets.base import KeyedTable, Panel, Ranked, fmt_in, fmt_price, fmt_time

BOOK_LEVELS = 5


class MarketPanel(Panel):
    DEFAULT_CSS = """
    MarketPanel #market-head { height: 3; text-wrap: nowrap; text-overflow: ellipsis; }
    MarketPanel #market-spark { height: 4; margin: 0 0 1 0; }
    MarketPanel #market-book { height: 1fr; }
    MarketPanel #market-book KeyedTable { width: 1fr; height: 100%; }
    """
    TITLE = "Market"
    TOPICS = frozenset(MARKET_TOPICS)

    symbol: reactive[str] = reactive("", init=False)
    """The symbol shown; empty until market data arrives, then the first symbol."""

    class SymbolShown(Message):
        """The panel now shows `symbol` (its history is wanted in the store)."""

        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol

    def compose(self) -> ComposeResult:
        yield Static(id="market-head")
        yield Sparkline([], id="market-spark")
        with Horizontal(id="market-book"):
            yield KeyedTable((("bid", "Bid", 12), ("bqty", "Qty", 9)), BOOK_LEVELS, id="bids")
            yield KeyedTable(
                (("ask", "Ask", 12), ("aqty", "Qty", 9)), BOOK_LEVELS, False, id="asks"
            )

    def cycle(self, step: int) -> None:
        """Show the next (`step` 1) or previous (-1) symbol with market data."""
        symbols = self.store.market_symbols()
        if symbols:
            at = symbols.index(self.symbol) if self.symbol in symbols else -step
            self.symbol = symbols[(at + step) % len(symbols)]

    def watch_symbol(self, symbol: str) -> None:
        self.post_message(self.SymbolShown(symbol))
        if self.ready:
            self.refresh_all()

    def refresh_market(self) -> None:
        self.refresh_all()

    def refresh_all(self) -> None:
        symbols = self.store.market_symbols()
        if not self.symbol and symbols:
            self.symbol = symbols[0]
            return
        head = self.query_one("#market-head", Static)
        mark = self.store.mark_price(self.symbol) if self.symbol else None
        candles = self.store.klines(self.symbol) if self.symbol else []
        if mark is None and not candles:
            head.update("[dim]no market data yet[/]", layout=False)
        else:
            now = self.clock.now_ms()
            line = f"[b]{self.symbol}[/]  ({len(symbols)} watched, keys \\[ and ] change)"
            if mark is not None:
                line += (
                    f"\nMark [b]{fmt_price(mark.mark_price)}[/]  index "
                    f"{fmt_price(mark.index_price)}  funding {mark.funding_rate:+.4%} "
                    f"next {fmt_in(mark.next_funding_time, now)}  at {fmt_time(mark.time)}"
                )
            if candles:
                last = candles[-1]
                line += (
                    f"\n{len(candles)} x {last.interval}  O {fmt_price(last.open)} "
                    f"H {fmt_price(last.high)} L {fmt_price(last.low)} "
                    f"C {fmt_price(last.close)}"
                )
            head.update(line, layout=False)
        self.query_one("#market-spark", Sparkline).data = [k.close for k in candles]
        book = self.store.order_book(self.symbol) if self.symbol else None
        bids = book.bids[:BOOK_LEVELS] if book else []
        asks = book.asks[:BOOK_LEVELS] if book else []
        self.query_one("#bids", KeyedTable).replace_all(
            (str(i), [Ranked(f"[green]{fmt_price(p)}[/]", p), f"{q:g}"])
            for i, (p, q) in enumerate(bids)
        )
        self.query_one("#asks", KeyedTable).replace_all(
            (str(i), [Ranked(f"[red]{fmt_price(p)}[/]", p), f"{q:g}"])
            for i, (p, q) in enumerate(asks)
        )

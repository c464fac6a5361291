"""Market: mark price and funding, the candlestick chart with the open chains, the depth ladder.

Market events arrive in bursts; the app merges a burst into one change per topic, naming its
symbols, and this panel renders only the symbol it is showing: the chart and the ladder are
given new data only when that symbol's candles, book or chains changed, so ticks of other
symbols draw nothing. Its heading has a fixed height, so a tick repaints it without laying out
the screen (a layout pass costs a whole frame). When it shows a symbol it says so
(`SymbolShown`), and the app asks the feed to bring that symbol's recent candles into the
store. Chains and trades are user topics: their changes reach the panel as changes too and
redraw the chart's lines."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from ginie_protocol import MARKET_TOPICS, Topic
from ginie_protocol.events import Kline
from ginie_tui.charts import (
    INTERVALS,
    Fill,
    Level,
    aggregate,
    chain_fills,
    chain_levels,
    open_chains,
)
from ginie_tui.clock import Clock
from ginie_tui.store import Change, Store
from ginie_tui.widgets.base import Panel, fmt_in, fmt_price, fmt_time
from ginie_tui.widgets.chart import CandleChart, CandleFigure
from ginie_tui.widgets.depth import DepthLadder

CHAIN_TOPICS = frozenset({Topic.CHAIN_UPDATE, Topic.TRADE_UPDATE})


class MarketPanel(Panel):
    DEFAULT_CSS = """
    MarketPanel #market-head { height: 3; text-wrap: nowrap; text-overflow: ellipsis; }
    MarketPanel #market-body { height: 1fr; }
    """
    TITLE = "Market"
    TOPICS = frozenset(MARKET_TOPICS) | CHAIN_TOPICS

    symbol: reactive[str] = reactive("", init=False)
    """The symbol shown; empty until market data arrives, then the first symbol."""
    interval: reactive[str] = reactive("1m", init=False)
    """The chart's candle interval: 1m, or 5m or 15m built from the 1m candles."""

    class SymbolShown(Message):
        """The panel now shows `symbol` (its history is wanted in the store)."""

        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol

    def __init__(self, store: Store, clock: Clock, **kwargs: Any) -> None:
        super().__init__(store, clock, **kwargs)
        self._klines: list[Kline] = []
        self._overlay: tuple[tuple[Level, ...], tuple[Fill, ...], int] = ((), (), 0)
        """The open chains' lines and fills, and how many chains, for the symbol shown."""
        self._head = ""

    def compose(self) -> ComposeResult:
        yield Static(id="market-head")
        with Horizontal(id="market-body"):
            yield CandleChart(id="market-chart")
            yield DepthLadder(id="market-depth")

    def cycle(self, step: int) -> None:
        """Show the next (`step` 1) or previous (-1) symbol with market data."""
        symbols = self.store.market_symbols()
        if symbols:
            at = symbols.index(self.symbol) if self.symbol in symbols else -step
            self.symbol = symbols[(at + step) % len(symbols)]

    def cycle_interval(self) -> None:
        """Switch the chart to the next interval (1m, 5m, 15m, then 1m again)."""
        names = list(INTERVALS)
        self.interval = names[(names.index(self.interval) + 1) % len(names)]

    def watch_symbol(self, symbol: str) -> None:
        self.post_message(self.SymbolShown(symbol))
        if self.ready:
            self.refresh_all()

    def watch_interval(self) -> None:
        if self.ready:
            self._klines = []
            self.refresh_all()

    def apply_change(self, change: Change) -> None:
        """Chains and trades redraw the chain lines; market data of other symbols is skipped."""
        if not self.symbol:
            self.refresh_all()
            return
        if change.topic in CHAIN_TOPICS:
            self._read_overlay()
            self._klines = []
        elif self.symbol not in change.keys:
            return
        self._render_market()

    def refresh_all(self) -> None:
        symbols = self.store.market_symbols()
        if not self.symbol and symbols:
            self.symbol = symbols[0]
            return
        self._read_overlay()
        self._klines = []
        self._render_market()

    def _read_overlay(self) -> None:
        chains = open_chains(self.store.items(Topic.CHAIN_UPDATE), self.symbol)
        fills = chain_fills(self.store.items(Topic.TRADE_UPDATE), chains)
        self._overlay = (tuple(chain_levels(chains)), tuple(fills), len(chains))

    def _render_market(self) -> None:
        klines = self.store.klines(self.symbol) if self.symbol else []
        self._show_head(klines)
        book = self.store.order_book(self.symbol) if self.symbol else None
        self.query_one(DepthLadder).show(book)
        if len(klines) != len(self._klines) or any(
            a is not b for a, b in zip(klines, self._klines, strict=True)
        ):
            self._klines = klines
            levels, fills, _ = self._overlay
            candles = aggregate(klines, INTERVALS[self.interval])
            self.query_one(CandleChart).show(
                CandleFigure(self.interval, tuple(candles), levels, fills)
            )

    def _show_head(self, klines: list[Kline]) -> None:
        mark = self.store.mark_price(self.symbol) if self.symbol else None
        if mark is None and not klines:
            line = "[dim]no market data yet[/]"
        else:
            symbols = self.store.market_symbols()
            chains = self._overlay[2]
            line = (
                f"[b]{self.symbol}[/] {self.interval}  {chains} open chain"
                f"{'' if chains == 1 else 's'}  ({len(symbols)} watched; keys \\[ ] symbol, "
                "i interval)"
            )
            if mark is not None:
                now = self.clock.now_ms()
                line += (
                    f"\nMark [b]{fmt_price(mark.mark_price)}[/]  index "
                    f"{fmt_price(mark.index_price)}  funding {mark.funding_rate:+.4%} "
                    f"next {fmt_in(mark.next_funding_time, now)}  at {fmt_time(mark.time)}"
                )
            if klines:
                last = aggregate(klines[-INTERVALS[self.interval] :], INTERVALS[self.interval])
                candle = last[-1]
                line += (
                    f"\n{self.interval} O {fmt_price(candle.open)} H {fmt_price(candle.high)} "
                    f"L {fmt_price(candle.low)} C {fmt_price(candle.close)}"
                )
        if line != self._head:
            self._head = line
            self.query_one("#market-head", Static).update(line, layout=False)

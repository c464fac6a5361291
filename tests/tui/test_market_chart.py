"""The Market tab live: a kline moves the last candle, a new chain adds its lines, ticks of other
symbols redraw nothing, a burst of klines is drawn at most once a frame, `i` switches the
interval, and the ladder follows the symbol's book. Driven through the app as the feed would."""

from __future__ import annotations

import time
from typing import Any

from ginie_protocol import make_event
from ginie_protocol.events import Kline, MarkPrice, OrderBook
from ginie_tui.app import GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.widgets.chart import CandleChart
from ginie_tui.widgets.depth import DepthLadder
from ginie_tui.widgets.market import MarketPanel
from ginie_tui.widgets.plot import FRAME_S, ChartPlot
from tests.harness import wait_for
from tests.tui.chart_data import EPOCH, ChartFeed, chart_store, klines, open_chain, user_models
from tests.tui.dataset import T0

SIZE = (120, 36)
NEXT_SEQ = len(user_models()) + 1


def app_with(feed: ChartFeed) -> GinieApp:
    return make_app(feed, store=chart_store(), clock=ManualClock(T0))


async def market_shown(app: GinieApp, pilot: Any, feed: ChartFeed) -> CandleChart:
    await wait_for(lambda: feed.listener is not None)
    await pilot.press("5")
    chart = app.query_one(CandleChart)
    await wait_for(lambda: chart.figure is not None and chart.settled, timeout=10)
    return chart


def forming(close: float, volume: float, symbol: str = "BTCUSDT") -> Kline:
    last = klines()[-1]
    return last.model_copy(
        update={
            "symbol": symbol,
            "close": close,
            "high": max(last.high, close),
            "low": min(last.low, close),
            "volume": volume,
        }
    )


async def test_a_kline_moves_the_last_candle() -> None:
    feed = ChartFeed()
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        chart = await market_shown(app, pilot, feed)
        before = chart.figure.candles
        feed.deliver(make_event(forming(before[-1].close + 150, 999.0), ts=T0))
        await wait_for(lambda: chart.figure.candles[-1].close == before[-1].close + 150)
        await wait_for(lambda: chart.settled, timeout=10)
        assert chart.figure.candles[:-1] == before[:-1]
        assert chart.figure.candles[-1].high == before[-1].close + 150


async def test_a_new_chain_adds_its_lines() -> None:
    feed = ChartFeed()
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        chart = await market_shown(app, pilot, feed)
        assert [lv.label for lv in chart.figure.levels] == ["LONG entry", "SL", "TP1", "TP2"]
        second = open_chain(65_100.0).model_copy(
            update={"chain_id": "ch-8", "direction": "SHORT", "opened_at": T0}
        )
        feed.deliver(make_event(second, ts=T0, seq=NEXT_SEQ, epoch=EPOCH))
        await wait_for(lambda: len(chart.figure.levels) == 8)
        await wait_for(lambda: chart.settled, timeout=10)
        labels = [lv.label for lv in chart.figure.levels]
        assert labels[:4] == ["ch-7 LONG entry", "ch-7 SL", "ch-7 TP1", "ch-7 TP2"]
        assert labels[4:] == ["ch-8 SHORT entry", "ch-8 SL", "ch-8 TP1", "ch-8 TP2"]
        assert "2 open chains" in str(app.query_one("#market-head").render())


async def test_ticks_of_other_symbols_redraw_nothing() -> None:
    feed = ChartFeed()
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        chart = await market_shown(app, pilot, feed)
        ladder = app.query_one(DepthLadder)
        figure, builds = chart.figure, ChartPlot.builds
        head = str(app.query_one("#market-head").render())
        for n in range(50):
            feed.deliver(make_event(forming(3_400.0 + n, 10.0 + n, "ETHUSDT"), ts=T0))
            mark = MarkPrice(
                symbol="ETHUSDT",
                mark_price=3_400.0 + n,
                index_price=3_400.0,
                funding_rate=0.0,
                next_funding_time=T0,
                time=T0 + n,
            )
            feed.deliver(make_event(mark, ts=T0))
            books = OrderBook(symbol="ETHUSDT", bids=[(3_399.0, 1.0)], asks=[], time=T0 + n)
            feed.deliver(make_event(books, ts=T0))
        # a book of the symbol shown, after them: once the ladder shows it, the panel has
        # handled every tick before it (a book draws no candle)
        sentinel = OrderBook(symbol="BTCUSDT", bids=[(65_000.0, 2.0)], asks=[], time=T0 + 99)
        feed.deliver(make_event(sentinel, ts=T0))
        await wait_for(lambda: ladder.book == sentinel)
        await wait_for(lambda: chart.settled, timeout=10)
        assert len(app.store.klines("ETHUSDT")) == 1
        assert chart.figure is figure
        assert ChartPlot.builds == builds, "no chart was drawn for another symbol's data"
        # the heading changed only when the book of its own symbol came, and only in the
        # number of symbols watched
        assert str(app.query_one("#market-head").render()) == head.replace(
            "(1 watched", "(2 watched"
        )
        assert app.query_one(MarketPanel).symbol == "BTCUSDT"


async def test_a_burst_of_klines_is_drawn_at_most_once_a_frame() -> None:
    feed = ChartFeed()
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        chart = await market_shown(app, pilot, feed)
        builds, started = ChartPlot.builds, time.monotonic()
        last = chart.figure.candles[-1].close
        for n in range(1, 201):
            feed.deliver(make_event(forming(last + n, 100.0 + n), ts=T0))
            if n % 20 == 0:
                await pilot.pause()
        await wait_for(lambda: chart.figure.candles[-1].close == last + 200)
        await wait_for(lambda: chart.settled, timeout=10)
        elapsed = time.monotonic() - started
        drawn = ChartPlot.builds - builds
        assert 1 <= drawn <= elapsed / FRAME_S + 1, f"{drawn} builds in {elapsed:.3f} s"
        assert drawn < 200


async def test_i_switches_the_interval_and_the_ladder_follows_the_book() -> None:
    feed = ChartFeed()
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        chart = await market_shown(app, pilot, feed)
        spans = {}
        for name in ("5m", "15m", "1m"):
            await pilot.press("i")
            await wait_for(lambda name=name: chart.figure.interval == name)
            candles = chart.figure.candles
            spans[name] = candles[1].open_time - candles[0].open_time
        assert spans == {"5m": 300_000, "15m": 900_000, "1m": 60_000}
        ladder = app.query_one(DepthLadder)
        book = OrderBook(symbol="BTCUSDT", bids=[(65_000.0, 2.0)], asks=[(65_001.0, 1.0)], time=T0)
        feed.deliver(make_event(book, ts=T0))
        await wait_for(lambda: ladder.book == book)
        text = str(ladder.render())
        assert "65,001.00" in text and "65,000.00" in text and "spread 1.00" in text

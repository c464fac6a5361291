"""A seeded dataset for the console's charts: two hours of BTCUSDT candles, an open chain with
its fills, a ten-level book, and a week of closed chains with their P&L."""

from __future__ import annotations

import random
from typing import Any

from ginie_protocol import make_event
from ginie_protocol.events import (
    Chain,
    Kline,
    MarkPrice,
    OrderBook,
    Performance,
    PerformanceRow,
    Pnl,
    Trade,
    WireModel,
)
from ginie_tui.store import Store
from tests.tui.dataset import T0
from tests.tui.fakes import RecordedFeed

MINUTE = 60_000
DAY = 86_400_000
SYMBOL = "BTCUSDT"
CANDLES = 120
EPOCH = "ep-charts"


def klines(seed: int = 14) -> list[Kline]:
    """120 one-minute candles of a seeded random walk; the last one is still forming."""
    rng = random.Random(seed)
    price = 65_000.0
    start = T0 - T0 % MINUTE - (CANDLES - 1) * MINUTE
    candles = []
    for i in range(CANDLES):
        open_ = price
        price = round(price + rng.gauss(0, 28), 1)
        high = round(max(open_, price) + abs(rng.gauss(0, 12)), 1)
        low = round(min(open_, price) - abs(rng.gauss(0, 12)), 1)
        candles.append(
            Kline(
                symbol=SYMBOL,
                open_time=start + i * MINUTE,
                close_time=start + (i + 1) * MINUTE - 1,
                open=open_,
                high=high,
                low=low,
                close=price,
                volume=round(5 + rng.random() * 20, 3),
                closed=i < CANDLES - 1,
            )
        )
    return candles


def open_chain(last: float) -> Chain:
    """A LONG chain opened 14 minutes ago near `last`, its first take-profit filled."""
    entry = round(last - 60, 1)
    return Chain(
        chain_id="ch-7",
        symbol=SYMBOL,
        direction="LONG",
        mode="swing",
        source="autopilot",
        strategy="ema_cross",
        status="partially_closed",
        entry_client_order_id="g-ch-7-E",
        take_profit_client_order_ids=["g-ch-7-TP1", "g-ch-7-TP2"],
        stop_loss_client_order_id="g-ch-7-SL",
        quantity=0.02,
        remaining_qty=0.01,
        entry_price=entry,
        take_profit_prices=[entry + 90, entry + 180],
        stop_loss_price=entry - 110,
        opened_at=T0 - 14 * MINUTE,
    )


def chain_trades(chain: Chain) -> list[Trade]:
    assert chain.entry_price is not None
    fills = [
        ("E", "BUY", chain.entry_price, T0 - 14 * MINUTE, 0.0),
        ("TP1", "SELL", chain.take_profit_prices[0], T0 - 6 * MINUTE, 0.9),
    ]
    return [
        Trade(
            trade_id=f"t-7-{tag}",
            order_id=f"o-7-{tag}",
            client_order_id=f"g-ch-7-{tag}",
            chain_id=chain.chain_id,
            symbol=SYMBOL,
            side=side,  # type: ignore[arg-type]
            price=price,
            quantity=0.01,
            fee=0.3,
            realized_pnl=pnl,
            time=at,
        )
        for tag, side, price, at, pnl in fills
    ]


def closed_history(seed: int = 7) -> tuple[list[Chain], list[Trade], list[float]]:
    """Thirty chains closed over the last week, a trade each, and the equity after each."""
    rng = random.Random(seed)
    equity = 10_000.0
    chains, trades, curve = [], [], []
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
    for n in range(30):
        closed_at = T0 - 6 * DAY + n * (6 * DAY // 30) + rng.randrange(3_600_000)
        pnl = round(rng.gauss(12, 40), 2)
        symbol = symbols[n % len(symbols)]
        chains.append(
            Chain(
                chain_id=f"old-{n}",
                symbol=symbol,
                direction="LONG" if n % 2 else "SHORT",
                mode="scalp",
                source="autopilot",
                strategy=("ema_cross", "rsi_revert", "breakout")[n % 3],
                status="closed",
                entry_client_order_id=f"g-old-{n}-E",
                quantity=0.01,
                remaining_qty=0.0,
                entry_price=100.0,
                realized_pnl=pnl,
                opened_at=closed_at - 1_800_000,
                closed_at=closed_at,
            )
        )
        trades.append(
            Trade(
                trade_id=f"t-old-{n}",
                order_id=f"o-old-{n}",
                client_order_id=f"g-old-{n}-X",
                chain_id=f"old-{n}",
                symbol=symbol,
                side="SELL",
                price=100.0,
                quantity=0.01,
                fee=0.2,
                realized_pnl=pnl + 0.2,
                time=closed_at,
            )
        )
        equity = round(equity + pnl, 2)
        curve.append(equity)
    return chains, trades, curve


def performance(chains: list[Chain]) -> Performance:
    def rows(key_of: Any) -> list[PerformanceRow]:
        groups: dict[str, list[float]] = {}
        for chain in chains:
            groups.setdefault(key_of(chain), []).append(chain.realized_pnl)
        return [
            PerformanceRow(
                key=key,
                trades=len(p),
                wins=sum(v > 0 for v in p),
                losses=sum(v <= 0 for v in p),
                win_rate=round(sum(v > 0 for v in p) / len(p), 4),
                pnl=round(sum(p), 2),
                avg_pnl=round(sum(p) / len(p), 2),
            )
            for key, p in sorted(groups.items())
        ]

    return Performance(by_symbol=rows(lambda c: c.symbol), by_strategy=rows(lambda c: c.strategy))


def user_models() -> list[WireModel]:
    candles = klines()
    chain = open_chain(candles[-1].close)
    chains, trades, curve = closed_history()
    realized = round(sum(c.realized_pnl for c in chains), 2)
    today = [t for t in trades if t.time // DAY == T0 // DAY]
    pnl = Pnl(
        realized_today=round(sum(t.realized_pnl - t.fee for t in today), 2),
        realized_total=realized,
        unrealized=4.2,
        fees_total=6.0,
        equity=round(curve[-1] + 4.2, 2),
        wins=sum(c.realized_pnl > 0 for c in chains),
        losses=sum(c.realized_pnl <= 0 for c in chains),
        win_rate=round(sum(c.realized_pnl > 0 for c in chains) / len(chains), 4),
        equity_curve=curve,
    )
    return [*chains, *trades, chain, *chain_trades(chain), pnl, performance(chains)]


def market_models() -> list[WireModel]:
    candles = klines()
    last = candles[-1].close
    book = OrderBook(
        symbol=SYMBOL,
        bids=[(round(last - 0.5 - 2.5 * i, 1), round(0.3 + 0.45 * i, 3)) for i in range(10)],
        asks=[(round(last + 0.5 + 2.5 * i, 1), round(0.2 + 0.6 * (i % 4), 3)) for i in range(10)],
        time=T0 - 500,
    )
    mark = MarkPrice(
        symbol=SYMBOL,
        mark_price=last + 0.4,
        index_price=last + 0.1,
        funding_rate=0.0001,
        next_funding_time=T0 + 3_600_000,
        time=T0 - 500,
    )
    return [*candles, book, mark]


def chart_store() -> Store:
    """The dataset applied as live events, at T0."""
    store = Store()
    for seq, model in enumerate(user_models(), start=1):
        store.apply_event(make_event(model, ts=T0, seq=seq, epoch=EPOCH), T0, "live")
    for model in market_models():
        store.apply_event(make_event(model, ts=T0), T0, "live")
    return store


class ChartFeed(RecordedFeed):
    """A LIVE recorded feed whose store already holds every candle: a symbol shown fetches
    nothing (the recorded dataset's `/api/market` answer belongs to another dataset)."""

    def show_market(self, symbol: str) -> None:
        self.markets_shown.append(symbol)

"""What the console's charts draw, derived from the store's models: pure, no Textual.

- `aggregate`: 5- and 15-minute candles (as `Kline`s) built from 1-minute klines.
- `chain_levels` and `chain_fills`: the lines (entry, stop-loss, take-profits) and the fills of
  a symbol's open chains.
- `equity_points` and `daily_realized`: the equity curve over time and realized P&L per UTC day.

Limits: candles are bucketed on UTC boundaries of their interval (as exchanges do), so the first
bucket of a history that starts mid-interval is built from the minutes there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ginie_protocol.events import Chain, Kline, Pnl, Trade

MINUTE_MS = 60_000
DAY_MS = 86_400_000
INTERVALS: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15}
"""The chart's intervals and their length in minutes."""
OPEN_STATUSES = frozenset({"pending", "open", "partially_closed"})
"""Chain statuses drawn on the chart."""


@dataclass(frozen=True, slots=True)
class Level:
    """A price line of an open chain."""

    price: float
    label: str
    kind: Literal["entry", "stop", "target"]


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill of an open chain, placed on the chart at its time and price."""

    time: int
    price: float
    side: Literal["BUY", "SELL"]


def aggregate(klines: Sequence[Kline], minutes: int) -> list[Kline]:
    """Candles of `minutes` built from 1-minute `klines` (oldest first): open of the first
    minute, close of the last, highest high, lowest low, summed volume. A candle is closed once
    the last minute of its interval has closed. One minute gives `klines` back as they are."""
    if minutes == 1:
        return list(klines)
    span = minutes * MINUTE_MS
    candles: list[Kline] = []
    for k in klines:
        start = k.open_time - k.open_time % span
        closed = k.closed and k.open_time + MINUTE_MS >= start + span
        held = candles[-1] if candles else None
        if held is not None and held.open_time == start:
            candles[-1] = held.model_copy(
                update={
                    "high": max(held.high, k.high),
                    "low": min(held.low, k.low),
                    "close": k.close,
                    "volume": held.volume + k.volume,
                    "closed": closed,
                }
            )
        else:
            candles.append(
                k.model_copy(
                    update={
                        "interval": f"{minutes}m",
                        "open_time": start,
                        "close_time": start + span - 1,
                        "closed": closed,
                    }
                )
            )
    return candles


def open_chains(chains: Iterable[Chain], symbol: str) -> list[Chain]:
    """The chains of `symbol` still open (pending, open or partially closed), oldest first."""
    held = [c for c in chains if c.symbol == symbol and c.status in OPEN_STATUSES]
    return sorted(held, key=lambda c: (c.opened_at, c.chain_id))


def chain_levels(chains: Sequence[Chain]) -> list[Level]:
    """Entry, stop-loss and take-profit lines of `chains`; labels name the chain when there
    are several."""
    levels: list[Level] = []
    for chain in chains:
        prefix = f"{chain.chain_id} " if len(chains) > 1 else ""
        if chain.entry_price is not None:
            levels.append(Level(chain.entry_price, f"{prefix}{chain.direction} entry", "entry"))
        if chain.stop_loss_price is not None:
            levels.append(Level(chain.stop_loss_price, f"{prefix}SL", "stop"))
        for n, price in enumerate(chain.take_profit_prices, start=1):
            levels.append(Level(price, f"{prefix}TP{n}", "target"))
    return levels


def chain_fills(trades: Iterable[Trade], chains: Sequence[Chain]) -> list[Fill]:
    """The fills of `chains`, oldest first."""
    ids = {c.chain_id for c in chains}
    fills = [Fill(t.time, t.price, t.side) for t in trades if t.chain_id in ids]
    return sorted(fills, key=lambda f: f.time)


def equity_points(pnl: Pnl, chains: Iterable[Chain], now_ms: int) -> list[tuple[int, float]]:
    """The equity curve as (time, equity), oldest first, ending with the equity now.

    The server records a point on the curve as each chain closes, so the curve's points are
    paired, newest first, with the close times of the closed chains held; points older than
    every chain held are left out."""
    closes = sorted(c.closed_at for c in chains if c.status == "closed" and c.closed_at is not None)
    curve = pnl.equity_curve
    paired = min(len(curve), len(closes))
    points = list(zip(closes[len(closes) - paired :], curve[len(curve) - paired :], strict=True))
    if not points or points[-1][0] < now_ms:
        points.append((now_ms, pnl.equity))
    return points


def daily_realized(
    trades: Iterable[Trade], pnl: Pnl | None, now_ms: int, days: int = 7
) -> list[tuple[str, float]]:
    """Realized P&L (net of fees) per UTC day for the last `days` days, oldest first, as
    (MM-DD, P&L). Past days are summed from the trades held; today is the server's
    `realized_today` when there is one."""
    today = now_ms // DAY_MS
    totals = dict.fromkeys(range(today - days + 1, today + 1), 0.0)
    for trade in trades:
        day = trade.time // DAY_MS
        if day in totals:
            totals[day] += trade.realized_pnl - trade.fee
    if pnl is not None:
        totals[today] = pnl.realized_today
    return [(day_label(day * DAY_MS), round(value, 8)) for day, value in totals.items()]


def day_label(ms: int) -> str:
    """MM-DD of `ms` in UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d")

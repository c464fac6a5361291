"""A seeded random market: prices, 1-minute candles, mark price and a small order book.

Each symbol follows a geometric random walk whose drift switches between regimes now and
then, so trends and reversals both occur. The simulation moves in steps of `STEP_MS` of
market time; `step()` moves every symbol once. Market time is the simulation's own: the
paper exchange maps server time to market time through its speed factor.

Limits: there is no trading volume impact (the book is regenerated around the price), and
funding is shown but never charged.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from ginie_protocol.events import Kline, MarkPrice, OrderBook

STEP_MS = 5_000
"""Market time between two price moves."""

CANDLE_MS = 60_000
HISTORY_CANDLES = 1_000
"""Closed candles kept per symbol."""

WARMUP_CANDLES = 900
"""Closed candles generated before the start, so indicators work from the first scan."""

FUNDING_INTERVAL_MS = 8 * 3_600_000
_YEAR_MS = 365 * 24 * 3_600_000
_REGIME_MS = 20 * CANDLE_MS
"""Mean length of a drift regime; its drift moves the price about 0.6 sigma over that time."""
_REGIME_SQRT_YEARS = math.sqrt(_REGIME_MS / _YEAR_MS)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What a symbol trades like: a start price, its annual volatility and its increments."""

    price: float
    annual_vol: float
    qty_step: float
    price_tick: float


SYMBOL_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec(97_000.0, 0.80, 0.001, 0.1),
    "ETHUSDT": SymbolSpec(3_600.0, 0.95, 0.001, 0.01),
    "SOLUSDT": SymbolSpec(240.0, 1.20, 0.01, 0.01),
    "BNBUSDT": SymbolSpec(650.0, 0.85, 0.01, 0.01),
    "XRPUSDT": SymbolSpec(2.30, 1.10, 0.1, 0.0001),
}


def round_to(value: float, step: float) -> float:
    """`value` rounded to the nearest multiple of `step`, without float dust."""
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(round(value / step) * step, decimals)


def floor_to(value: float, step: float) -> float:
    """`value` rounded down to a multiple of `step` (quantities never round up)."""
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(math.floor(value / step + 1e-9) * step, decimals)


@dataclass(slots=True)
class _Candle:
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    def to_kline(self, symbol: str, closed: bool, tick: float) -> Kline:
        return Kline(
            symbol=symbol,
            open_time=self.open_time,
            close_time=self.open_time + CANDLE_MS - 1,
            open=round_to(self.open, tick),
            high=round_to(self.high, tick),
            low=round_to(self.low, tick),
            close=round_to(self.close, tick),
            volume=round(self.volume, 3),
            closed=closed,
        )


@dataclass(slots=True)
class _SymbolState:
    spec: SymbolSpec
    price: float
    drift: float
    candle: _Candle
    history: deque[Kline] = field(default_factory=lambda: deque(maxlen=HISTORY_CANDLES))


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of market time: the new price of each symbol and the candles that closed."""

    time: int
    prices: dict[str, float]
    closed: list[Kline]


class MarketSim:
    """Seeded prices and candles for a fixed set of symbols; deterministic for one seed.

    `start_ms` is the market time the simulation starts at (aligned down to a step);
    `start_prices` continues from known prices (after a restart) instead of the specs'.
    """

    def __init__(
        self,
        seed: int,
        start_ms: int,
        start_prices: dict[str, float] | None = None,
        specs: dict[str, SymbolSpec] | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self._book_rng = random.Random(seed ^ 0x5EED)
        self.specs = dict(specs or SYMBOL_SPECS)
        self.symbols: tuple[str, ...] = tuple(self.specs)
        start = start_ms - start_ms % STEP_MS
        self.now_ms = start - WARMUP_CANDLES * CANDLE_MS
        self._states: dict[str, _SymbolState] = {}
        for symbol, spec in self.specs.items():
            self._states[symbol] = _SymbolState(
                spec=spec,
                price=spec.price,
                drift=0.0,
                candle=self._new_candle(self.now_ms, spec.price),
            )
        while self.now_ms < start:
            self.step()
        if start_prices:
            self._rescale(start_prices)

    @staticmethod
    def _new_candle(now_ms: int, price: float) -> _Candle:
        return _Candle(now_ms - now_ms % CANDLE_MS, price, price, price, price, 0.0)

    def _rescale(self, prices: dict[str, float]) -> None:
        """Shift each known symbol's whole history so that it ends at the given price."""
        for symbol, target in prices.items():
            state = self._states.get(symbol)
            if state is None or target <= 0:
                continue
            k = target / state.price
            tick = state.spec.price_tick
            state.history = deque(
                (
                    kl.model_copy(
                        update={
                            "open": round_to(kl.open * k, tick),
                            "high": round_to(kl.high * k, tick),
                            "low": round_to(kl.low * k, tick),
                            "close": round_to(kl.close * k, tick),
                        }
                    )
                    for kl in state.history
                ),
                maxlen=HISTORY_CANDLES,
            )
            c = state.candle
            c.open, c.high, c.low, c.close = c.open * k, c.high * k, c.low * k, c.close * k
            state.price = target

    def step(self) -> StepResult:
        """Move every symbol by one step of market time."""
        self.now_ms += STEP_MS
        dt = STEP_MS / _YEAR_MS
        closed: list[Kline] = []
        prices: dict[str, float] = {}
        for symbol, st in self._states.items():
            if self._rng.random() < STEP_MS / _REGIME_MS:
                st.drift = self._rng.gauss(0.0, 0.6) * st.spec.annual_vol / _REGIME_SQRT_YEARS
            sigma = st.spec.annual_vol
            shock = self._rng.gauss(0.0, 1.0)
            st.price *= math.exp(
                (st.drift - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * shock
            )
            candle_start = self.now_ms - self.now_ms % CANDLE_MS
            if candle_start != st.candle.open_time:
                kline = st.candle.to_kline(symbol, True, st.spec.price_tick)
                st.history.append(kline)
                closed.append(kline)
                st.candle = _Candle(
                    candle_start,
                    st.candle.close,
                    st.candle.close,
                    st.candle.close,
                    st.candle.close,
                    0.0,
                )
            c = st.candle
            c.close = st.price
            c.high = max(c.high, st.price)
            c.low = min(c.low, st.price)
            c.volume += abs(shock) * 1000.0 / st.spec.price * self._rng.uniform(0.5, 1.5)
            prices[symbol] = round_to(st.price, st.spec.price_tick)
        return StepResult(self.now_ms, prices, closed)

    def price(self, symbol: str) -> float:
        """The current price of `symbol`, on its tick."""
        st = self._states[symbol]
        return round_to(st.price, st.spec.price_tick)

    def klines(self, symbol: str) -> list[Kline]:
        """Closed candles, oldest first, then the forming one."""
        st = self._states[symbol]
        return [*st.history, self.forming(symbol)]

    def closed_klines(self, symbol: str) -> list[Kline]:
        """Closed candles only, oldest first."""
        return list(self._states[symbol].history)

    def forming(self, symbol: str) -> Kline:
        """The candle that is still forming."""
        st = self._states[symbol]
        return st.candle.to_kline(symbol, False, st.spec.price_tick)

    def mark(self, symbol: str, time_ms: int) -> MarkPrice:
        """Mark price and funding of `symbol`; `time_ms` is the server time to stamp it with."""
        price = self.price(symbol)
        next_funding = self.now_ms - self.now_ms % FUNDING_INTERVAL_MS + FUNDING_INTERVAL_MS
        hour = self.now_ms // 3_600_000
        funding = 0.0001 + 0.00005 * math.sin(hour + len(symbol))
        return MarkPrice(
            symbol=symbol,
            mark_price=price,
            index_price=round_to(price * 0.9999, self.specs[symbol].price_tick),
            funding_rate=round(funding, 6),
            next_funding_time=next_funding,
            time=time_ms,
        )

    def best_bid_ask(self, symbol: str) -> tuple[float, float]:
        """The best bid and ask around the price: one tick, or half a basis point, each side."""
        price = self.price(symbol)
        tick = self.specs[symbol].price_tick
        half = max(tick, price * 0.00005)
        return round_to(price - half, tick), round_to(price + half, tick)

    def book(self, symbol: str, time_ms: int, depth: int = 5) -> OrderBook:
        """A small order book around the price; sizes come from the seeded generator."""
        bid, ask = self.best_bid_ask(symbol)
        spec = self.specs[symbol]
        gap = max(spec.price_tick, self.price(symbol) * 0.0001)
        unit = 20_000.0 / self.price(symbol)
        bids = [
            (
                round_to(bid - i * gap, spec.price_tick),
                round_to(unit * self._book_rng.uniform(0.2, 2.0), spec.qty_step),
            )
            for i in range(depth)
        ]
        asks = [
            (
                round_to(ask + i * gap, spec.price_tick),
                round_to(unit * self._book_rng.uniform(0.2, 2.0), spec.qty_step),
            )
            for i in range(depth)
        ]
        return OrderBook(symbol=symbol, bids=bids, asks=asks, time=time_ms)

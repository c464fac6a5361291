"""A seeded random-walk mark-price source: the smallest market feed a started server has.

Every `1 / speed` seconds it publishes one `FUTURES_MARK_PRICE_UPDATE` per symbol. The walk
depends only on the seed, so two tickers with the same seed publish the same prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random

from ginie_protocol.events import MarkPrice
from ginie_server.clock import Clock
from ginie_server.sources import (
    CommandHandler,
    MarketData,
    MarketSnapshotProvider,
    Publisher,
    SnapshotProvider,
)

START_PRICES: dict[str, float] = {
    "BTCUSDT": 97_000.0,
    "ETHUSDT": 3_400.0,
    "SOLUSDT": 240.0,
    "BNBUSDT": 650.0,
    "XRPUSDT": 1.4,
}

FUNDING_PERIOD_MS = 8 * 60 * 60 * 1000
STEP_VOLATILITY = 0.0005
"""Standard deviation of one tick's log return."""


class MarkPriceTicker:
    """A market source: seeded mark prices for a few symbols, no user topics, no commands."""

    def __init__(
        self,
        *,
        seed: int,
        speed: float,
        clock: Clock,
        prices: dict[str, float] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._rng = random.Random(seed)
        self._interval = 1.0 / speed
        self._clock = clock
        self._prices = dict(prices or START_PRICES)
        self._latest: dict[str, MarkPrice] = {}
        self._task: asyncio.Task[None] | None = None
        self.snapshots: dict[str, SnapshotProvider] = {}
        self.commands: dict[str, CommandHandler] = {}
        self.market_snapshot: MarketSnapshotProvider | None = self._snapshot

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._prices)

    def tick(self) -> list[MarkPrice]:
        """Move every price one step and return the new mark prices."""
        now = self._clock.now_ms()
        next_funding = (now // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        marks: list[MarkPrice] = []
        for symbol, price in self._prices.items():
            price *= math.exp(self._rng.gauss(0.0, STEP_VOLATILITY))
            self._prices[symbol] = price
            index = price * (1 + self._rng.gauss(0.0, 0.0001))
            mark = MarkPrice(
                symbol=symbol,
                mark_price=round(price, 6),
                index_price=round(index, 6),
                funding_rate=round(0.0001 + self._rng.gauss(0.0, 0.00005), 8),
                next_funding_time=next_funding,
                time=now,
            )
            self._latest[symbol] = mark
            marks.append(mark)
        return marks

    async def start(self, publisher: Publisher) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(publisher), name="mark-price-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def attach_user(self, user: str) -> None:
        """Market data is public: nothing to set up per user."""

    async def _run(self, publisher: Publisher) -> None:
        while True:
            for mark in self.tick():
                publisher.publish_market(mark)
            await asyncio.sleep(self._interval)

    def _snapshot(self, symbol: str) -> list[MarketData]:
        latest = self._latest.get(symbol)
        return [latest] if latest is not None else []

"""The paper exchange: a seeded simulated USD-M futures venue with one account per user.

Market time runs `speed` times faster than the injected clock: `tick()` moves the market from
where it was to where the clock says it should be, in steps of 5 s of market time, matching
every account's orders at each step, then reports the latest mark price, candle and book of
each symbol. The exchange runs `tick()` itself every `tick_seconds` once started; with
`tick_seconds=None` the owner drives it (deterministic tests). A tick moves at most
`MAX_STEPS_PER_TICK` steps; a loop that fell further behind skips ahead instead of catching up.

The API weight it reports is simulated: each call it serves costs what Binance charges for its
counterpart, counted per minute of server time.

Limits: accounts hold USDT only; funding is shown, never charged; the book has no depth
impact (see `domain.matching` and `domain.market`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ginie_protocol.events import ApiHealth, Balance, Kline, MarkPrice, Order, OrderBook, Position
from ginie_server.clock import Clock
from ginie_server.domain.market import STEP_MS, MarketSim, floor_to
from ginie_server.domain.matching import (
    AccountEvent,
    OrderRejected,
    PaperAccount,
    Quote,
)
from ginie_server.exchange.base import (
    Exchange,
    ExchangeError,
    ExchangeListener,
    OrderRequest,
    SymbolFilters,
)

log = logging.getLogger(__name__)

MAX_STEPS_PER_TICK = 720
HEALTH_EVERY_MS = 5_000
WEIGHT_LIMIT = 2_400
WEIGHT = {"order": 1, "cancel": 1, "leverage": 1, "account": 5}
"""Binance's request weight of each kind of call."""
MIN_NOTIONAL = 5.0
"""The smallest order value in USDT, as on Binance USD-M for most symbols."""
MAX_LEVERAGE = 125
"""The highest leverage `set_leverage` accepts (see `domain.matching`)."""


@dataclass(frozen=True, slots=True)
class PaperAccountState:
    """What an earlier run left in a user's account: the wallet, positions and open orders."""

    wallet: float
    positions: Sequence[Position] = ()
    open_orders: Sequence[Order] = ()


AccountLoader = Callable[[str], PaperAccountState | None]


@dataclass(slots=True)
class _Weight:
    minute: int = 0
    used: int = 0
    reported: int = -1
    reported_at: int = 0
    calls: dict[str, int] = field(default_factory=dict)


class PaperExchange(Exchange):
    """Seeded simulated futures; every user gets an own account of 10,000 USDT."""

    name = "paper"

    def __init__(
        self,
        *,
        seed: int,
        speed: float,
        clock: Clock,
        tick_seconds: float | None = 0.2,
        start_prices: dict[str, float] | None = None,
        load_account: AccountLoader | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._clock = clock
        self._tick_seconds = tick_seconds
        self._load_account = load_account
        now = clock.now_ms()
        self.market = MarketSim(seed, now, start_prices)
        self.symbols = self.market.symbols
        self._anchor_clock = now
        self._anchor_market = self.market.now_ms
        self._accounts: dict[str, PaperAccount] = {}
        self._listener: ExchangeListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._marks: dict[str, MarkPrice] = {}
        self._books: dict[str, OrderBook] = {}
        self._weight = _Weight()

    # ------------------------------------------------------------------ running

    def set_listener(self, listener: ExchangeListener) -> None:
        self._listener = listener

    async def start(self) -> None:
        self._publish_market(self._clock.now_ms())
        self._report_health(self._clock.now_ms(), force=True)
        if self._tick_seconds is not None and self._task is None:
            self._task = asyncio.create_task(self._run(self._tick_seconds), name="paper-exchange")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, interval: float) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("paper exchange tick failed")
            await asyncio.sleep(interval)

    def market_time(self) -> int:
        """The market time the clock asks for now."""
        elapsed = self._clock.now_ms() - self._anchor_clock
        return self._anchor_market + int(elapsed * self.speed)

    def tick(self) -> int:
        """Move the market up to the clock, matching orders at every step; returns the steps."""
        now = self._clock.now_ms()
        target = self.market_time()
        steps = 0
        while self.market.now_ms + STEP_MS <= target:
            if steps == MAX_STEPS_PER_TICK:
                self._anchor_clock, self._anchor_market = now, self.market.now_ms
                break
            result = self.market.step()
            steps += 1
            for symbol in self.symbols:
                quote = self._quote(symbol)
                for user, account in self._accounts.items():
                    self._report(user, account.on_price(symbol, quote, now))
            if self._listener is not None:
                for kline in result.closed:
                    self._listener.on_market(kline)
        if steps:
            self._publish_market(now)
        self._report_health(now)
        return steps

    def _quote(self, symbol: str) -> Quote:
        bid, ask = self.market.best_bid_ask(symbol)
        return Quote(self.market.price(symbol), bid, ask)

    def _publish_market(self, now: int) -> None:
        for symbol in self.symbols:
            self._marks[symbol] = self.market.mark(symbol, now)
            self._books[symbol] = self.market.book(symbol, now)
            if self._listener is not None:
                self._listener.on_market(self._marks[symbol])
                self._listener.on_market(self.market.forming(symbol))
                self._listener.on_market(self._books[symbol])

    def _report(self, user: str, events: list[AccountEvent]) -> None:
        listener = self._listener
        if listener is None:
            return
        for event in events:
            if isinstance(event, Order):
                listener.on_order(user, event)
            elif isinstance(event, Position):
                listener.on_position(user, event)
            elif isinstance(event, Balance):
                listener.on_balance(user, event)
            else:
                listener.on_trade(user, event)

    # ------------------------------------------------------------------ weight

    def _spend(self, kind: str) -> None:
        minute = self._clock.now_ms() // 60_000
        w = self._weight
        if minute != w.minute:
            w.minute, w.used = minute, 0
        w.used += WEIGHT[kind]
        w.calls[kind] = w.calls.get(kind, 0) + 1

    def _report_health(self, now: int, force: bool = False) -> None:
        w = self._weight
        if now // 60_000 != w.minute:
            w.minute, w.used = now // 60_000, 0
        due = now - w.reported_at >= HEALTH_EVERY_MS and w.used != w.reported
        if self._listener is None or not (force or due):
            return
        w.reported, w.reported_at = w.used, now
        self._listener.on_health(
            ApiHealth(
                exchange=self.name,
                status="ok",
                latency_ms=0.0,
                weight_used=w.used,
                weight_limit=WEIGHT_LIMIT,
                updated_at=now,
            )
        )

    # ------------------------------------------------------------------ accounts

    def serves(self, user: str) -> bool:
        return True

    def account(self, user: str) -> PaperAccount:
        """The user's account, opened (or reloaded from an earlier run) on first use."""
        account = self._accounts.get(user)
        if account is None:
            account = PaperAccount()
            state = self._load_account(user) if self._load_account else None
            if state is not None:
                account.restore(state.wallet, list(state.positions), list(state.open_orders))
            self._accounts[user] = account
        return account

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.market.specs:
            raise ExchangeError("unknown_symbol", f"{symbol} is not traded here")

    async def place_order(self, user: str, request: OrderRequest) -> Order:
        self._check_symbol(request.symbol)
        self._spend("order")
        step = self.market.specs[request.symbol].qty_step
        quantity = floor_to(request.quantity, step)
        if quantity <= 0:
            raise ExchangeError("bad_quantity", f"quantity below the step {step}")
        now = self._clock.now_ms()
        try:
            order, events = self.account(user).place(
                symbol=request.symbol,
                side=request.side,
                type=request.type,
                quantity=quantity,
                client_order_id=request.client_order_id,
                quote=self._quote(request.symbol),
                now=now,
                price=request.price,
                stop_price=request.stop_price,
                reduce_only=request.reduce_only,
            )
        except OrderRejected as exc:
            raise ExchangeError(exc.code, exc.message) from None
        self._report(user, events)
        return order

    async def cancel_order(
        self,
        user: str,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        self._spend("cancel")
        try:
            order = self.account(user).cancel(
                self._clock.now_ms(), order_id=order_id, client_order_id=client_order_id
            )
        except OrderRejected as exc:
            raise ExchangeError(exc.code, exc.message) from None
        self._report(user, [order])
        return order

    async def set_leverage(self, user: str, symbol: str, leverage: int) -> None:
        self._check_symbol(symbol)
        self._spend("leverage")
        try:
            self.account(user).set_leverage(symbol, leverage)
        except OrderRejected as exc:
            raise ExchangeError(exc.code, exc.message) from None

    def positions(self, user: str) -> list[Position]:
        self._spend("account")
        return self.account(user).open_positions(self._clock.now_ms())

    def open_orders(self, user: str) -> list[Order]:
        self._spend("account")
        return list(self.account(user).open_orders.values())

    def balances(self, user: str) -> list[Balance]:
        self._spend("account")
        return [self.account(user).balance(self._clock.now_ms())]

    # ------------------------------------------------------------------ market

    def mark_price(self, symbol: str) -> MarkPrice | None:
        return self._marks.get(symbol)

    def klines(self, symbol: str) -> list[Kline]:
        return self.market.klines(symbol) if symbol in self.market.specs else []

    def order_book(self, symbol: str) -> OrderBook | None:
        return self._books.get(symbol)

    def filters(self, symbol: str) -> SymbolFilters | None:
        spec = self.market.specs.get(symbol)
        if spec is None:
            return None
        return SymbolFilters(
            symbol=symbol,
            tick_size=spec.price_tick,
            step_size=spec.qty_step,
            min_qty=spec.qty_step,
            min_notional=MIN_NOTIONAL,
            max_leverage=MAX_LEVERAGE,
        )

"""The trading engine: the schedule and the exchange listener, wiring the engine's parts.

It keeps one `Account` per user and registers an `ExchangeListener` with its `Exchange`
(paper or Binance). How a change travels:

1. An exchange callback, a scan or a command changes the user's book and queues the events it
   caused in the account's outbox; orders a chain wants go to the `Executor`.
2. The executor carries them out against the exchange, one at a time.
3. `Publication` stages each queued item's state row and publishes it; the hub's journal
   commits rows and events in one transaction before any of them is sent. A flush is scheduled
   on the loop whenever something is queued, and run at the end of every pump and command.

`pump()` is one round of the schedule: due actions, new UTC day, signal expiry, breaker and
mode timers, a scan when a new 1-minute candle has closed, mark-price refreshes of positions
and P&L (at most once a second per user). Started with `loop_seconds`, the engine pumps by
itself; with None the owner calls `pump()` (deterministic tests).

Memory stays bounded however long the server runs: per user the book holds every live chain
and pending signal and only the newest finished ones (`KEPT_CHAINS`, `KEPT_SIGNALS`); the
published view is bounded the same way, orders and trades to their newest. Performance, P&L
and trade counts are running totals over the whole history, kept in the internal books.

Limits: a scan looks at the newest closed candle only; minutes a slow loop skipped are not
scanned. Users are loaded at start and opened on first attach.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from functools import partial

from ginie_protocol.events import (
    ApiHealth,
    Health,
    Kline,
)
from ginie_server.clock import Clock
from ginie_server.domain import modes
from ginie_server.domain.signals import ModeProfile, Verdict, evaluate
from ginie_server.engine.book import AccountBook, Marks
from ginie_server.engine.chains import ChainDesk
from ginie_server.engine.commands import CommandContext, CommandHandlers
from ginie_server.engine.execution import Executor
from ginie_server.engine.health import Component, EngineHealth
from ginie_server.engine.listener import ExchangeListener, MarketWatch
from ginie_server.engine.manual import ManualTrading
from ginie_server.engine.outbox import Account, Publication
from ginie_server.engine.persistence import Persistence
from ginie_server.engine.snapshots import market_snapshot, snapshot_providers
from ginie_server.exchange.base import Exchange
from ginie_server.exchange.paper import PaperExchange
from ginie_server.sources import CommandError, MarketSnapshotProvider, Publisher
from ginie_server.storage.trading import TradingStore

log = logging.getLogger(__name__)

MARK_REFRESH_MS = 1_000
HEALTH_EVERY_MS = 1_000
"""Most often a change of request weight alone is published."""
PRICE_SAVE_MS = 5_000


class TradingEngine:
    """The event source of everything a user trades: see the module docstring."""

    def __init__(
        self,
        exchange: Exchange,
        store: TradingStore,
        clock: Clock,
        *,
        loop_seconds: float | None = 0.2,
    ) -> None:
        self.exchange = exchange
        self._clock = clock
        self._loop_seconds = loop_seconds
        self._loop_task: asyncio.Task[None] | None = None
        self._accounts: dict[str, Account] = {}
        self.market = MarketWatch()
        self.marks: Marks = self.market.marks
        """The latest mark price of each symbol."""
        self._scanned_minute = 0
        self._last_scan_at: int | None = None
        self._prices_saved_at = 0
        self.health = EngineHealth(exchange.name, clock.now_ms())
        self._health_sent_at = 0
        self._health_due = False
        self.persistence = Persistence(store)
        self.publication = Publication(self._accounts, self.persistence)
        self.executor = Executor(
            exchange, self._accounts, lambda *refused: self.desk.on_refused(*refused)
        )
        self.desk = ChainDesk(exchange, self.persistence, self.executor, self.marks, clock)
        self.snapshots = snapshot_providers(self._accounts, self._new_book, self.health)
        context = CommandContext(
            account_of=self._command_account,
            settle=self.settle,
            exchange=exchange,
            desk=self.desk,
            executor=self.executor,
            persistence=self.persistence,
            marks=self.marks,
            clock=clock,
        )
        self.commands = {**CommandHandlers(context).table, **ManualTrading(context).table}
        self.listener = ExchangeListener(
            self._accounts,
            self.desk,
            self.publication,
            self.market,
            self._on_health,
            clock,
        )
        self.market_snapshot: MarketSnapshotProvider | None = partial(market_snapshot, exchange)

    # ================================================================== lifecycle

    async def start(self, publisher: Publisher) -> None:
        """Load every user's books, start the exchange, reconcile chains, begin pumping."""
        self.publication.start(publisher)
        self.persistence.start(publisher)
        now = self._clock.now_ms()
        for name in self.persistence.store.users():
            if name not in self._accounts and self.exchange.serves(name):
                book, view = self.persistence.load(name, self.exchange.symbols, now)
                self._add(Account(book, view))
        self.exchange.set_listener(self.listener)
        await self.exchange.start()
        for account in self._accounts.values():
            self.exchange.open_orders(account.name)
            self.desk.reconcile(account, now)
            account.queue(self.health.system)
        await self.settle()
        if self._loop_seconds is not None and self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(self._loop_seconds), name="engine")

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.executor.stop()
        await self.exchange.stop()
        self.publication.flush()
        self._save_prices(self._clock.now_ms(), force=True)

    def attach_user(self, user: str) -> None:
        """Open the user's account on first sight: a new user gets every topic's first state."""
        if user in self._accounts or not self.exchange.serves(user):
            return
        account = self._add(Account(self._new_book(user)))
        book = account.book
        for balance in self.exchange.balances(user):
            account.queue(book.put_balance(balance))
        account.queue(book.autopilot.rules)
        account.queue(book.breaker.view)
        for mode in modes.MODES:
            account.queue(book.safety[mode])
        for allocation in book.allocations():
            account.queue(allocation)
        account.queue(book.status())
        account.pnl_changed()
        account.queue(book.pnl.performance())
        account.queue(book.pnl.stats(0))
        account.queue(self.health.system)
        account.queue(self.health.api)
        self.publication.flush()

    def book(self, user: str) -> AccountBook | None:
        """A user's account book, or None if the engine holds none."""
        account = self._accounts.get(user)
        return None if account is None else account.book

    def unpublished(self, user: str) -> int:
        """How many of the user's changes wait for the next flush (0 right after one)."""
        account = self._accounts.get(user)
        if account is None:
            return 0
        outbox = account.outbox
        return len(outbox.pending) + len(outbox.touched) + outbox.pnl_dirty

    def users(self) -> list[str]:
        """The users whose accounts the engine holds."""
        return list(self._accounts)

    async def settle(self) -> None:
        """Carry out queued orders, then publish everything queued."""
        await self.executor.drain()
        self.publication.flush()

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.pump()
                self._set_component("engine", "ok", "")
            except Exception as exc:
                log.exception("engine round failed")
                self._set_component("engine", "degraded", type(exc).__name__)
                self.publication.flush()
            await asyncio.sleep(interval)

    def _add(self, account: Account) -> Account:
        account.notify = self.publication.schedule
        self._accounts[account.name] = account
        return account

    def _new_book(self, user: str) -> AccountBook:
        return AccountBook.new(user, self.exchange.symbols, self._clock.now_ms())

    def _command_account(self, user: str) -> Account:
        self.attach_user(user)
        account = self._accounts.get(user)
        if account is None:
            raise CommandError(
                "rejected", f"the {self.exchange.name} exchange has no account of {user}"
            )
        return account

    # ================================================================== the schedule

    async def pump(self) -> None:
        """One round of the schedule (see the module docstring)."""
        await self.executor.drain()
        now = self._clock.now_ms()
        for account in list(self._accounts.values()):
            self._timers(account, now)
        if self.market.closed_minute > self._scanned_minute:
            self._scanned_minute = self.market.closed_minute
            await self._scan_all(now)
        for account in self._accounts.values():
            self._refresh_marks(account, now)
        if self._health_due and now - self._health_sent_at >= HEALTH_EVERY_MS:
            self._send_health()
        await self.settle()
        self._save_prices(now)

    def _timers(self, account: Account, now: int) -> None:
        book = account.book
        if book.pnl.roll_day(now):
            account.pnl_changed()
            account.queue(book.pnl.stats(len(book.active_chains())))
            for mode in modes.MODES:
                account.set_safety(modes.roll_day(book.safety[mode]))
        for signal in book.autopilot.expire(now):
            account.queue(signal)
        was_blocked = book.breaker.blocks_entries
        flat = not book.active_chains() and not book.open_positions()
        if book.breaker.tick(now, flat=flat):
            account.queue(book.breaker.view)
            if was_blocked != book.breaker.blocks_entries:
                account.queue(book.status())
        for mode in modes.MODES:
            account.set_safety(modes.tick(book.safety[mode], now))

    async def _scan_all(self, now: int) -> None:
        cache: dict[tuple[str, str], Verdict] = {}
        closed: dict[str, list[Kline]] = {}

        def candles(symbol: str) -> list[Kline]:
            if symbol not in closed:
                closed[symbol] = [k for k in self.exchange.klines(symbol) if k.closed]
            return closed[symbol]

        def judge(symbol: str, history: Sequence[Kline], profile: ModeProfile) -> Verdict:
            key = (symbol, profile.mode)
            if key not in cache:
                cache[key] = evaluate(symbol, history, profile)
            return cache[key]

        interval = now - self._last_scan_at if self._last_scan_at is not None else None
        self._last_scan_at = now
        next_at = now + interval if interval else None
        for account in list(self._accounts.values()):
            pilot = account.book.autopilot
            if not pilot.running:
                continue
            raised = pilot.scan(candles, account.book.gates(), now, next_at, judge)
            for signal in raised:
                account.queue(signal)
            account.queue(account.book.status())
            if pilot.rules.auto_execute:
                for signal in raised:
                    await self.desk.execute(account, signal, "autopilot")

    def _refresh_marks(self, account: Account, now: int) -> None:
        book = account.book
        if now - book.marks_at < MARK_REFRESH_MS:
            return
        book.marks_at = now
        for pos in book.open_positions():
            mark = self.marks.get(pos.symbol)
            if mark is None or mark == pos.mark_price:
                continue
            unrealized = round(pos.size * (mark - pos.entry_price), 8)
            revalued = pos.model_copy(
                update={"mark_price": mark, "unrealized_pnl": unrealized, "updated_at": now}
            )
            book.positions[pos.symbol] = revalued
            account.queue(revalued)
            account.pnl_changed()

    # ================================================================== health and prices

    def _on_health(self, health: ApiHealth) -> None:
        """The exchange's API health. A change of status or error reaches every user at once;
        a new request weight alone at most once every `HEALTH_EVERY_MS` (the next pump)."""
        previous, self.health.api = self.health.api, health
        changed = (health.status, health.last_error) != (previous.status, previous.last_error)
        self._set_component("exchange", health.status, health.last_error or self.exchange.name)
        if changed or health.updated_at - self._health_sent_at >= HEALTH_EVERY_MS:
            self._send_health()
        else:
            self._health_due = True

    def _send_health(self) -> None:
        self._health_due = False
        self._health_sent_at = self.health.api.updated_at
        for account in self._accounts.values():
            account.queue(self.health.api)

    def _set_component(self, name: Component, status: Health, detail: str) -> None:
        """Change one component's health; every user hears of a change."""
        if self.health.set_component(name, status, detail, self._clock.now_ms()):
            for account in self._accounts.values():
                account.queue(self.health.system)

    def _save_prices(self, now: int, force: bool = False) -> None:
        if not isinstance(self.exchange, PaperExchange) or not self.publication.started:
            return
        if not force and now - self._prices_saved_at < PRICE_SAVE_MS:
            return
        self._prices_saved_at = now
        prices = {s: self.exchange.market.price(s) for s in self.exchange.symbols}
        self.persistence.stage_prices(prices, now)

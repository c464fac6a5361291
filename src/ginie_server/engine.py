"""The trading engine: the thin async shell around the pure domain, and an event `Source`.

It listens to an `Exchange` (paper or Binance), keeps one book per user (chains, signals,
autopilot, breaker, mode safety, P&L), and publishes every change through the hub.

How a change travels:

1. An exchange callback, a scan or a command changes the user's state and queues the events
   it caused (`_queue`); orders a chain wants placed or cancelled go to the action queue.
2. `_drain()` carries out queued actions against the exchange, one at a time.
3. `_flush()` writes the user's internal books and each event's item to `trading_state`
   (a lifecycle step to `trade_lifecycle_events`, taking the row id), then publishes it. The
   hub's commit makes the rows and the event durable together. A flush is scheduled on the
   loop whenever something is queued, and run at the end of every pump and command.

Snapshots serve what was last published (`_User.view`), so a snapshot always matches the
`seq` the hub reports with it.

`pump()` is one round of the schedule: due actions, new UTC day, signal expiry, breaker and
mode timers, a scan when a new 1-minute candle has closed, mark-price refreshes of positions
and P&L (at most once a second per user). Started with `loop_seconds`, the engine pumps by
itself; with None the owner calls `pump()` (deterministic tests).

Memory stays bounded however long the server runs: per user it holds every live chain
(pending, open, partially closed) and pending signal, and only the newest `KEPT_CHAINS` finished
chains and `autopilot.KEPT_SIGNALS` decided signals (`domain.retention`); older ones stay in
SQLite only. The `CHAIN_UPDATE` and `SIGNAL_UPDATE` snapshots therefore hold the live items and
that bounded tail of finished ones; orders and trades are cut to `KEPT_ORDERS` / `KEPT_TRADES`
(open orders always kept). Performance, P&L and trade counts are running totals over the whole
history, kept in the user's internal books, never recomputed from chains. Work per flush and
per round touches only live chains and the chains changed since the last flush.

Limits: a scan looks at the newest closed candle only; minutes a slow loop skipped are not
scanned. Per-user state lives in memory; users are loaded at start and on first attach. An
update for a chain that has left memory reads it back from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ginie_protocol.commands import (
    CommandArgs,
    ModePause,
    ModeResume,
    OrderCancel,
    PositionClose,
    SetRules,
    SignalApprove,
    SignalReject,
)
from ginie_protocol.events import (
    DATA_MODEL_OF,
    EVENT_TYPE_OF,
    KEY_FIELD,
    ApiHealth,
    AutopilotRules,
    Balance,
    Chain,
    CircuitBreaker,
    ComponentHealth,
    Decision,
    Kline,
    MarkPrice,
    Mode,
    ModeSafety,
    Order,
    OrderBook,
    Position,
    Signal,
    SystemStatus,
    Trade,
    WireModel,
)
from ginie_server import __version__
from ginie_server.clock import Clock
from ginie_server.domain import lifecycle, modes
from ginie_server.domain.autopilot import (
    KEPT_SIGNALS,
    LIVE_SIGNAL,
    Autopilot,
    Gates,
    RulesError,
    default_rules,
    merge_rules,
    size_position,
)
from ginie_server.domain.breaker import Breaker
from ginie_server.domain.market import SYMBOL_SPECS, round_to
from ginie_server.domain.pnl import PnlBook
from ginie_server.domain.retention import Retained
from ginie_server.domain.signals import ModeProfile, Verdict, evaluate
from ginie_server.exchange.base import Exchange, ExchangeError, OrderRequest
from ginie_server.exchange.paper import AccountLoader, PaperAccountState, PaperExchange
from ginie_server.sources import (
    CommandError,
    CommandHandler,
    MarketData,
    Publisher,
    SnapshotProvider,
)
from ginie_server.storage.trading import TradingStore

log = logging.getLogger(__name__)

KEPT_ORDERS = 300
KEPT_TRADES = 300
KEPT_CHAINS = 200
"""Finished chains kept in memory (and in the snapshot) per user; live ones are all kept."""
MARK_REFRESH_MS = 1_000
PRICE_SAVE_MS = 5_000
MARKET_SNAPSHOT_KLINES = 60
DEFAULT_QTY_STEP = 0.001

USER_TOPICS: tuple[str, ...] = (
    "POSITION_UPDATE",
    "ORDER_UPDATE",
    "TRADE_UPDATE",
    "BALANCE_UPDATE",
    "CHAIN_UPDATE",
    "GINIE_STATUS_UPDATE",
    "SIGNAL_UPDATE",
    "CIRCUIT_BREAKER_UPDATE",
    "MODE_SAFETY_UPDATE",
    "MODE_ALLOCATION_UPDATE",
    "AUTOPILOT_RULES_UPDATE",
    "PNL_UPDATE",
    "PERFORMANCE_UPDATE",
    "STATS_UPDATE",
    "SYSTEM_STATUS_UPDATE",
    "HEALTH_UPDATE",
)
"""Every user topic this engine serves a snapshot of (the hub serves LIFECYCLE_EVENT)."""

_SORT_FIELD = {  # collections served in time order (then by id); others by key
    "ORDER_UPDATE": "created_at",
    "TRADE_UPDATE": "time",
    "SIGNAL_UPDATE": "created_at",
    "CHAIN_UPDATE": "opened_at",
}


@dataclass(frozen=True, slots=True)
class _StepRow:
    """A lifecycle step waiting to be written and published."""

    chain_id: str
    symbol: str
    step: lifecycle.Step
    time: int


@dataclass(slots=True)
class _User:
    """Everything the engine holds for one user."""

    name: str
    autopilot: Autopilot
    breaker: Breaker
    pnl: PnlBook
    chains: Retained[Chain] = field(default_factory=lambda: Retained(KEPT_CHAINS))
    touched: dict[str, Chain] = field(default_factory=dict)
    """Chains changed in memory since the last flush, by id (publish those not yet queued)."""
    safety: dict[str, ModeSafety] = field(default_factory=dict)
    view: dict[str, OrderedDict[str, WireModel]] = field(default_factory=dict)
    pending: list[WireModel | _StepRow] = field(default_factory=list)
    pnl_dirty: bool = False
    next_chain: int = 1
    next_manual: int = 1
    marks_at: int = 0

    def published(self, topic: str, key: str = "") -> WireModel | None:
        return self.view.get(topic, OrderedDict()).get(key)

    def live_chains(self) -> list[Chain]:
        return [c for c in self.chains.live.values() if c.status in ("open", "partially_closed")]

    def active_chains(self) -> list[Chain]:
        return list(self.chains.live.values())

    def put_chain(self, chain: Chain) -> None:
        """Keep a chain's new state (a finished one joins the bounded tail)."""
        if self.chains.get(chain.chain_id) == chain:
            return
        self.chains.put(chain.chain_id, chain, done=chain.status not in lifecycle.ACTIVE)
        self.touched[chain.chain_id] = chain

    def retained(self, topic: str) -> Retained[Chain] | Retained[Signal] | None:
        """The in-memory set a snapshot collection is bounded by, if it is bounded so."""
        if topic == "CHAIN_UPDATE":
            return self.chains
        if topic == "SIGNAL_UPDATE":
            return self.autopilot.signals
        return None

    def current(self, topic: str) -> OrderedDict[str, WireModel]:
        """A collection topic as it stands: what was published, updated by what is queued."""
        items = OrderedDict(self.view.get(topic, OrderedDict()))
        key_field = KEY_FIELD[topic]
        assert key_field is not None
        for item in self.pending:
            if not isinstance(item, _StepRow) and EVENT_TYPE_OF[type(item)] == topic:
                items[str(getattr(item, key_field))] = item
        return items

    def positions(self) -> list[Position]:
        items = self.current("POSITION_UPDATE").values()
        return [p for p in items if isinstance(p, Position) and p.size != 0]

    def open_orders(self) -> list[Order]:
        items = self.current("ORDER_UPDATE").values()
        live = ("NEW", "PARTIALLY_FILLED")
        return [o for o in items if isinstance(o, Order) and o.status in live]


def _natural(key: object) -> tuple[int, str]:
    """Ids like P9 and P10 in numeric order."""
    text = str(key)
    return len(text), text


def _by_name(key: str) -> tuple[int, str]:
    """Topics keyed by name: modes in their own order, anything else alphabetically."""
    return (modes.MODES.index(key), key) if key in modes.MODES else (len(modes.MODES), key)  # type: ignore[arg-type]


def _qty_step(symbol: str) -> float:
    spec = SYMBOL_SPECS.get(symbol)
    return spec.qty_step if spec else DEFAULT_QTY_STEP


class TradingEngine:
    """The event source of everything a user trades: see the module docstring.

    Its `CHAIN_UPDATE` and `SIGNAL_UPDATE` snapshots are bounded: the live chains and pending
    signals, plus the newest `KEPT_CHAINS` finished chains and `KEPT_SIGNALS` decided signals;
    older ones are in SQLite only."""

    def __init__(
        self,
        exchange: Exchange,
        store: TradingStore,
        clock: Clock,
        *,
        loop_seconds: float | None = 0.2,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self._clock = clock
        self._loop_seconds = loop_seconds
        self._publisher: Publisher | None = None
        self._users: dict[str, _User] = {}
        self._actions: list[tuple[str, lifecycle.Action]] = []
        self._drain_lock = asyncio.Lock()
        self._drain_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._marks: dict[str, float] = {}
        self._closed_minute = 0
        self._scanned_minute = 0
        self._last_scan_at: int | None = None
        self._prices_saved_at = 0
        self._started_at = clock.now_ms()
        self._health = ApiHealth(exchange=exchange.name, status="ok", updated_at=self._started_at)
        self._system = self._system_status("ok", "ok", "ok", self._started_at)
        self.snapshots: dict[str, SnapshotProvider] = {
            topic: self._snapshot_provider(topic) for topic in USER_TOPICS
        }
        self.commands: dict[str, CommandHandler] = {
            "signal.approve": self._cmd_signal_approve,
            "signal.reject": self._cmd_signal_reject,
            "ginie.start": self._cmd_ginie_start,
            "ginie.stop": self._cmd_ginie_stop,
            "circuit_breaker.reset": self._cmd_breaker_reset,
            "mode.pause": self._cmd_mode_pause,
            "mode.resume": self._cmd_mode_resume,
            "autopilot.set_rules": self._cmd_set_rules,
            "order.cancel": self._cmd_order_cancel,
            "position.close": self._cmd_position_close,
        }
        self.market_snapshot: Callable[[str], list[MarketData]] | None = self._market_snapshot

    # ================================================================== lifecycle

    async def start(self, publisher: Publisher) -> None:
        """Load every user's books, start the exchange, reconcile chains, begin pumping."""
        self._publisher = publisher
        now = self._clock.now_ms()
        for name in self.store.users():
            if name not in self._users and self.exchange.serves(name):
                self._users[name] = self._load_user(name, now)
        self.exchange.set_listener(self)
        await self.exchange.start()
        for user in self._users.values():
            self.exchange.open_orders(user.name)
            self._reconcile(user, now)
            self._queue(user, self._system)
        await self._drain()
        self._flush()
        if self._loop_seconds is not None and self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(self._loop_seconds), name="engine")

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        drain, self._drain_task = self._drain_task, None
        if drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        await self.exchange.stop()
        self._flush()
        self._save_prices(self._clock.now_ms(), force=True)

    def attach_user(self, user: str) -> None:
        """Open the user's books on first sight: a new user gets every topic's first state."""
        if user in self._users or not self.exchange.serves(user):
            return
        now = self._clock.now_ms()
        u = self._new_user(user, now)
        self._users[user] = u
        for balance in self.exchange.balances(user):
            self._queue(u, balance)
        self._queue(u, u.autopilot.rules)
        self._queue(u, u.breaker.view)
        for mode in modes.MODES:
            self._queue(u, u.safety[mode])
        for allocation in self._allocations(u):
            self._queue(u, allocation)
        self._queue(u, self._status(u))
        u.pnl_dirty = True
        self._queue(u, u.pnl.performance())
        self._queue(u, u.pnl.stats(0))
        self._queue(u, self._system)
        self._queue(u, self._health)
        if self._publisher is not None:
            self._flush()

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.pump()
                self._set_health(engine=("ok", ""))
            except Exception as exc:
                log.exception("engine round failed")
                self._set_health(engine=("degraded", type(exc).__name__))
                self._flush()
            await asyncio.sleep(interval)

    # ================================================================== the schedule

    async def pump(self) -> None:
        """One round of the schedule (see the module docstring)."""
        await self._drain()
        now = self._clock.now_ms()
        for u in list(self._users.values()):
            self._timers(u, now)
        if self._closed_minute > self._scanned_minute:
            self._scanned_minute = self._closed_minute
            await self._scan_all(now)
        for u in self._users.values():
            self._refresh_marks(u, now)
        await self._drain()
        self._flush()
        self._save_prices(now)

    def _timers(self, u: _User, now: int) -> None:
        if u.pnl.roll_day(now):
            u.pnl_dirty = True
            self._queue(u, u.pnl.stats(len(u.active_chains())))
            for mode in modes.MODES:
                self._set_safety(u, modes.roll_day(u.safety[mode]))
        for signal in u.autopilot.expire(now):
            self._queue(u, signal)
        was_blocked = u.breaker.blocks_entries
        if u.breaker.tick(now, flat=not u.active_chains() and not u.positions()):
            self._queue(u, u.breaker.view)
            if was_blocked != u.breaker.blocks_entries:
                self._queue(u, self._status(u))
        for mode in modes.MODES:
            self._set_safety(u, modes.tick(u.safety[mode], now))

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
        for u in list(self._users.values()):
            if not u.autopilot.running:
                continue
            raised = u.autopilot.scan(candles, self._gates(u), now, next_at, judge)
            for signal in raised:
                self._queue(u, signal)
            self._queue(u, self._status(u))
            if u.autopilot.rules.auto_execute:
                for signal in raised:
                    await self._execute(u, signal, "autopilot")

    def _refresh_marks(self, u: _User, now: int) -> None:
        if now - u.marks_at < MARK_REFRESH_MS:
            return
        u.marks_at = now
        for pos in u.positions():
            mark = self._marks.get(pos.symbol)
            if mark is None or mark == pos.mark_price:
                continue
            unrealized = round(pos.size * (mark - pos.entry_price), 8)
            self._queue(
                u,
                pos.model_copy(
                    update={"mark_price": mark, "unrealized_pnl": unrealized, "updated_at": now}
                ),
            )
            u.pnl_dirty = True

    # ================================================================== exchange listener

    def on_order(self, user: str, order: Order) -> None:
        u = self._users.get(user)
        if u is None:
            return
        now = self._clock.now_ms()
        parsed = lifecycle.parse_client_id(order.client_order_id)
        chain = self._find_chain(u, parsed[0]) if parsed else None
        if chain is not None:
            order = order.model_copy(update={"chain_id": chain.chain_id})
        self._queue(u, order)
        if chain is not None:
            self._apply(u, lifecycle.on_order(chain, order, _qty_step(chain.symbol), now), now)

    def on_trade(self, user: str, trade: Trade) -> None:
        u = self._users.get(user)
        if u is None:
            return
        parsed = lifecycle.parse_client_id(trade.client_order_id)
        chain = self._find_chain(u, parsed[0]) if parsed else None
        if chain is not None:
            trade = trade.model_copy(update={"chain_id": chain.chain_id})
            u.put_chain(lifecycle.on_trade(chain, trade))
        self._queue(u, trade)
        u.pnl.on_fill(trade, chain.mode if chain else None, chain.strategy if chain else None)
        u.pnl_dirty = True

    def on_position(self, user: str, position: Position) -> None:
        u = self._users.get(user)
        if u is None:
            return
        self._queue(u, position)
        if position.size == 0:
            now = self._clock.now_ms()
            for chain in u.live_chains():
                if chain.symbol == position.symbol:
                    self._apply(u, lifecycle.on_flat(chain, self._flat_reason(u, chain), now), now)

    @staticmethod
    def _flat_reason(u: _User, chain: Chain) -> str:
        orders = u.current("ORDER_UPDATE").values()
        last = next(
            (o for o in reversed(orders) if isinstance(o, Order) and o.symbol == chain.symbol),
            None,
        )
        return (
            "liquidation" if last is not None and last.reason == "liquidation" else "closed_outside"
        )

    def on_balance(self, user: str, balance: Balance) -> None:
        u = self._users.get(user)
        if u is not None:
            self._queue(u, balance)
            self._queue(u, u.pnl.pnl(self._unrealized(u), self._equity(u)))
            u.pnl_dirty = False

    def on_market(self, data: MarkPrice | Kline | OrderBook) -> None:
        if isinstance(data, MarkPrice):
            self._marks[data.symbol] = data.mark_price
        elif isinstance(data, Kline) and data.closed:
            self._closed_minute = max(self._closed_minute, data.open_time // 60_000 + 1)
        if self._publisher is not None:
            self._publisher.publish_market(data)

    def on_health(self, health: ApiHealth) -> None:
        self._health = health
        for u in self._users.values():
            self._queue(u, health)
        self._set_health(exchange=(health.status, health.last_error or ""))

    # ================================================================== chains and trades

    def _find_chain(self, u: _User, chain_id: str) -> Chain | None:
        """A chain by id: from memory, or read back from the database if it left memory."""
        chain = u.chains.get(chain_id)
        if chain is None:
            stored = self.store.get(u.name, "CHAIN_UPDATE", chain_id)
            if stored is not None:
                chain = Chain.model_validate_json(stored)
                u.chains.put(chain_id, chain, done=chain.status not in lifecycle.ACTIVE)
        return chain

    def _apply(self, u: _User, t: lifecycle.Transition, now: int) -> None:
        before = u.chains.get(t.chain.chain_id)
        u.put_chain(t.chain)
        for step in t.steps:
            u.pending.append(_StepRow(t.chain.chain_id, t.chain.symbol, step, now))
        for action in t.actions:
            self._actions.append((u.name, action))
        if t.actions:
            self._kick()
        if not t.changed:
            self._schedule_flush()
            return
        self._queue(u, t.chain)
        was = before.status if before is not None else "new"
        now_status = t.chain.status
        if now_status == "closed" and was in ("open", "partially_closed"):
            self._on_chain_closed(u, t.chain, now)
        elif now_status in ("open", "failed", "cancelled") and was == "pending":
            self._queue(u, self._allocation(u, t.chain.mode))
            self._queue(u, u.pnl.stats(len(u.active_chains())))
            self._queue(u, self._status(u))

    def _on_chain_closed(self, u: _User, chain: Chain, now: int) -> None:
        u.pnl.on_chain_closed(chain)
        u.pnl.record_equity(self._equity(u))
        u.pnl_dirty = True
        was_blocked = u.breaker.blocks_entries
        if u.breaker.record(chain.realized_pnl, now):
            self._queue(u, u.breaker.view)
        self._set_safety(u, modes.record_result(u.safety[chain.mode], chain.realized_pnl, now))
        self._queue(u, u.pnl.performance())
        self._queue(u, u.pnl.stats(len(u.active_chains())))
        self._queue(u, self._allocation(u, chain.mode))
        if was_blocked != u.breaker.blocks_entries:
            u.autopilot.decide(chain.symbol, "block", u.breaker.view.reason or "breaker", now)
        self._queue(u, self._status(u))

    async def _execute(self, u: _User, signal: Signal, source: str) -> Signal:
        """Open a chain for a signal, or settle it as rejected with the reason."""
        now = self._clock.now_ms()
        rules = u.autopilot.rules
        reason = self._entry_blocker(u, signal.symbol, signal.mode) or self._stale(signal)
        step = _qty_step(signal.symbol)
        if reason is None:
            equity = self._equity(u)
            alloc = self._allocation(u, signal.mode)
            sizing = size_position(
                signal.entry_price,
                signal.stop_loss,
                equity,
                rules.risk_per_trade_pct,
                rules.leverage,
                alloc.available_usd,
                step,
            )
            reason = sizing.reason
        if reason is not None:
            u.autopilot.reject_count(reason)
            u.autopilot.decide(signal.symbol, "reject", f"{signal.signal_id}: {reason}", now)
            settled = u.autopilot.settle(signal, "rejected", reason, now)
            self._queue(u, settled)
            self._queue(u, self._status(u))
            return settled
        chain_id = f"C{u.next_chain}"
        u.next_chain += 1
        plan = lifecycle.Plan(
            symbol=signal.symbol,
            direction=signal.direction,
            mode=signal.mode,
            source="autopilot" if source == "autopilot" else "manual",
            strategy=signal.strategy,
            signal_id=signal.signal_id,
            quantity=sizing.quantity,
            take_profit=signal.take_profit,
            stop_loss=signal.stop_loss,
            reference_price=signal.entry_price,
        )
        settled = u.autopilot.settle(signal, "executed", f"chain {chain_id}", now, chain_id)
        self._queue(u, settled)
        u.pnl.on_chain_opened(plan.source)
        spec = SYMBOL_SPECS.get(signal.symbol)
        tick = spec.price_tick if spec else 1e-8
        prices = [round_to(p, tick) for p in lifecycle.take_profit_prices(plan, step)]
        try:
            await self.exchange.set_leverage(u.name, signal.symbol, rules.leverage)
        except ExchangeError as exc:
            log.warning("leverage for %s not set: %s", signal.symbol, exc.message)
        self._apply(u, lifecycle.open_chain(chain_id, plan, prices, now), now)
        self._queue(u, u.pnl.stats(len(u.active_chains())))
        await self._drain()
        return settled

    def _entry_blocker(self, u: _User, symbol: str, mode: Mode) -> str | None:
        if u.breaker.blocks_entries:
            return "circuit_breaker"
        status = u.safety[mode].status
        if status != "active":
            return f"mode_{status}"
        if symbol in self._busy(u):
            return "symbol_busy"
        if len(u.active_chains()) >= u.autopilot.rules.max_open_positions:
            return "max_open_positions"
        return None

    def _stale(self, signal: Signal) -> str | None:
        """`price_moved` when the price has already reached the signal's stop or its first
        take-profit (midway to the target): the exits would trigger at once."""
        mark = self._marks.get(signal.symbol)
        if mark is None:
            return None
        midway = signal.entry_price + (signal.take_profit - signal.entry_price) / 2
        low, high = sorted((signal.stop_loss, midway))
        return None if low < mark < high else "price_moved"

    def _busy(self, u: _User) -> frozenset[str]:
        symbols = [c.symbol for c in u.active_chains()] + [p.symbol for p in u.positions()]
        return frozenset(symbols)

    def _gates(self, u: _User) -> Gates:
        return Gates(
            breaker_reason=u.breaker.view.reason if u.breaker.blocks_entries else None,
            mode_status={m: s.status for m, s in u.safety.items()},
            busy_symbols=self._busy(u),
            open_positions=len(u.active_chains()),
        )

    def _reconcile(self, u: _User, now: int) -> None:
        """After a restart: end chains whose entry never reached the exchange, and give live
        chains without any open exit their exits again."""
        open_ids = {o.client_order_id for o in u.open_orders()}
        orders = [
            o for o in u.view.get("ORDER_UPDATE", OrderedDict()).values() if isinstance(o, Order)
        ]
        known_ids = {o.client_order_id for o in orders}
        filled_ids = {o.client_order_id for o in orders if o.status == "FILLED"}
        for chain in list(u.chains.live.values()):
            if chain.status == "pending" and chain.entry_client_order_id not in known_ids:
                failed = chain.model_copy(
                    update={"status": "failed", "close_reason": "interrupted", "closed_at": now}
                )
                step = lifecycle.Step("failed", "entry interrupted by a restart")
                self._apply(u, lifecycle.Transition(failed, [step], [], changed=True), now)
            elif chain.status in ("open", "partially_closed"):
                exits = [*chain.take_profit_client_order_ids, chain.stop_loss_client_order_id]
                if not any(cid in open_ids for cid in exits):
                    step = lifecycle.Step("exits_restored", "exits placed again after a restart")
                    actions = lifecycle.restore_exits(chain, _qty_step(chain.symbol), filled_ids)
                    self._apply(u, lifecycle.Transition(chain, [step], actions), now)

    # ================================================================== actions

    def _kick(self) -> None:
        """Make sure queued actions get carried out even if no pump or command is running."""
        if self._drain_lock.locked() or (self._drain_task and not self._drain_task.done()):
            return
        with contextlib.suppress(RuntimeError):
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        async with self._drain_lock:
            while self._actions:
                user, action = self._actions.pop(0)
                u = self._users.get(user)
                if u is not None:
                    await self._act(u, action)

    async def _act(self, u: _User, action: lifecycle.Action) -> None:
        if isinstance(action, lifecycle.CancelOrder):
            if not any(o.client_order_id == action.client_order_id for o in u.open_orders()):
                return
            try:
                await self.exchange.cancel_order(
                    u.name, action.symbol, client_order_id=action.client_order_id
                )
            except ExchangeError as exc:
                log.info("cancel of %s refused: %s", action.client_order_id, exc.message)
            return
        request = OrderRequest(
            symbol=action.symbol,
            side=action.side,
            type=action.type,
            quantity=action.quantity,
            client_order_id=action.client_order_id,
            stop_price=action.stop_price,
            reduce_only=action.reduce_only,
        )
        try:
            await self.exchange.place_order(u.name, request)
        except ExchangeError as exc:
            parsed = lifecycle.parse_client_id(action.client_order_id)
            chain = self._find_chain(u, parsed[0]) if parsed else None
            if chain is None or parsed is None:
                log.warning("order %s refused: %s", action.client_order_id, exc.message)
                return
            now = self._clock.now_ms()
            self._apply(u, lifecycle.on_rejected(chain, parsed[1], exc.code, exc.message, now), now)

    # ================================================================== publishing

    def _queue(self, u: _User, item: WireModel) -> None:
        u.pending.append(item)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_scheduled or self._publisher is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self._flush)
            self._flush_scheduled = True

    def _flush(self) -> None:
        """Write and publish everything queued, user by user, in order."""
        self._flush_scheduled = False
        publisher = self._publisher
        if publisher is None:
            return
        for u in self._users.values():
            touched, u.touched = u.touched, {}
            for chain_id in sorted(touched, key=_natural):
                chain = touched[chain_id]
                if u.published("CHAIN_UPDATE", chain_id) != chain and chain not in u.pending:
                    u.pending.append(chain)
            if u.pnl_dirty:
                u.pending.append(u.pnl.pnl(self._unrealized(u), self._equity(u)))
                u.pnl_dirty = False
            if not u.pending:
                continue
            items, u.pending = u.pending, []
            self.store.put_internal(u.name, self._internal(u))
            for item in items:
                if isinstance(item, _StepRow):
                    s = item.step
                    row = self.store.insert_lifecycle(
                        u.name, item.chain_id, item.symbol, s.step, s.message, s.details, item.time
                    )
                    publisher.publish(u.name, row)
                    continue
                topic = EVENT_TYPE_OF[type(item)]
                key_field = KEY_FIELD[topic]
                key = str(getattr(item, key_field)) if key_field else ""
                items_of_topic = u.view.setdefault(topic, OrderedDict())
                items_of_topic[key] = item
                self.store.put(u.name, topic, key, item, self._finish_rank(u, topic, key, item))
                self._prune(u, topic, items_of_topic)
                publisher.publish(u.name, item)

    @staticmethod
    def _finish_rank(u: _User, topic: str, key: str, item: WireModel) -> int | None:
        """The rank a finished chain or signal is stored with; None for anything else.

        One that already left memory again ranks 0, below every one still kept."""
        if isinstance(item, Chain) and item.status in lifecycle.ACTIVE:
            return None
        if isinstance(item, Signal) and item.status in LIVE_SIGNAL:
            return None
        retained = u.retained(topic)
        if retained is None:
            return None
        return retained.rank(key) or 0

    def _prune(self, u: _User, topic: str, items: OrderedDict[str, WireModel]) -> None:
        """Bound a published collection: chains and signals to what memory retains (the rest
        stays in the database), orders and trades to their newest (the rest is deleted)."""
        retained = u.retained(topic)
        if retained is not None:
            if len(items) > len(retained):
                for key in [k for k in items if k not in retained]:
                    del items[key]
            return
        bound = {"ORDER_UPDATE": KEPT_ORDERS, "TRADE_UPDATE": KEPT_TRADES}.get(topic)
        if bound is None or len(items) <= bound:
            return
        for key, item in list(items.items()):
            if len(items) <= bound:
                break
            if isinstance(item, Order) and item.status in ("NEW", "PARTIALLY_FILLED"):
                continue
            del items[key]
            self.store.delete(u.name, topic, key)

    def _save_prices(self, now: int, force: bool = False) -> None:
        if not isinstance(self.exchange, PaperExchange):
            return
        if not force and now - self._prices_saved_at < PRICE_SAVE_MS:
            return
        self._prices_saved_at = now
        prices = {s: self.exchange.market.price(s) for s in self.exchange.symbols}
        try:
            self.store.save_prices(prices, now)
            self._set_health(database=("ok", ""))
        except sqlite3.Error as exc:
            log.error("prices not saved: %s", exc)
            self._set_health(database=("degraded", str(exc)))

    # ================================================================== derived state

    def _unrealized(self, u: _User) -> float:
        return sum(
            p.size * (self._marks.get(p.symbol, p.mark_price) - p.entry_price)
            for p in u.positions()
        )

    def _equity(self, u: _User) -> float:
        balance = u.published("BALANCE_UPDATE", "USDT")
        wallet = balance.wallet_balance if isinstance(balance, Balance) else 0.0
        for item in u.pending:
            if isinstance(item, Balance) and item.asset == "USDT":
                wallet = item.wallet_balance
        return wallet + self._unrealized(u)

    def _allocation(self, u: _User, mode: Mode) -> WireModel:
        chains = [c for c in u.live_chains() if c.mode == mode]
        leverage = u.autopilot.rules.leverage
        used = sum(c.remaining_qty * (c.entry_price or 0.0) / leverage for c in chains)
        pct = u.autopilot.rules.mode_allocation_pct.get(mode, 0.0)
        return modes.allocation(mode, pct, self._equity(u), used, len(chains))

    def _allocations(self, u: _User) -> list[WireModel]:
        return [self._allocation(u, mode) for mode in modes.MODES]

    def _status(self, u: _User) -> WireModel:
        blocked = u.breaker.view.reason if u.breaker.blocks_entries else None
        return u.autopilot.status(len(u.active_chains()), blocked)

    def _set_safety(self, u: _User, safety: ModeSafety) -> None:
        if u.safety.get(safety.mode) != safety:
            u.safety[safety.mode] = safety
            self._queue(u, safety)

    def _system_status(self, exchange: str, database: str, engine: str, since: int) -> SystemStatus:
        return SystemStatus(
            exchange=ComponentHealth(status=exchange, detail=self.exchange.name, since=since),  # type: ignore[arg-type]
            database=ComponentHealth(status=database, since=since),  # type: ignore[arg-type]
            engine=ComponentHealth(status=engine, since=since),  # type: ignore[arg-type]
            started_at=self._started_at,
            version=__version__,
        )

    def _set_health(self, **parts: tuple[str, str]) -> None:
        """Change the health of some components; every user hears of a change."""
        now = self._clock.now_ms()
        update: dict[str, Any] = {}
        for name, (status, detail) in parts.items():
            current: ComponentHealth = getattr(self._system, name)
            if current.status != status:
                update[name] = ComponentHealth(status=status, detail=detail, since=now)  # type: ignore[arg-type]
        if not update:
            return
        self._system = self._system.model_copy(update=update)
        for u in self._users.values():
            self._queue(u, self._system)

    # ================================================================== users

    def _new_user(self, name: str, now: int) -> _User:
        rules = default_rules(self.exchange.symbols)
        u = _User(
            name=name,
            autopilot=Autopilot(rules, day_key=now // 86_400_000),
            breaker=Breaker.new(
                now,
                rules.max_consecutive_losses,
                rules.max_daily_loss,
                rules.max_hourly_loss,
                rules.cooldown_minutes,
            ),
            pnl=PnlBook.new(now),
            safety={mode: modes.new_safety(mode) for mode in modes.MODES},
        )
        u.autopilot.next_scan_at = None
        return u

    def _internal(self, u: _User) -> dict[str, Any]:
        a = u.autopilot
        b = u.breaker
        return {
            "autopilot": {
                "running": a.running,
                "scans": a.scans,
                "last_scan_at": a.last_scan_at,
                "next_scan_at": a.next_scan_at,
                "signals_today": a.signals_today,
                "day_key": a.day_key,
                "next_signal": a.next_signal,
                "recent": [d.model_dump() for d in a.recent],
                "rejections": a.rejections,
            },
            "breaker": {
                "view": b.view.model_dump(),
                "hour_key": b.hour_key,
                "day_key": b.day_key,
                "hour_net": b.hour_net,
                "day_net": b.day_net,
            },
            "pnl": u.pnl.to_dict(),
            "next_chain": u.next_chain,
            "next_manual": u.next_manual,
        }

    def _load_user(self, name: str, now: int) -> _User:
        """A user's books from the database: live chains and signals, the newest finished
        ones, everything else published, and the internal books."""
        state = self.store.load(name, finished_limit=max(KEPT_CHAINS, KEPT_SIGNALS))
        internal = state.internal
        u = self._new_user(name, now)
        for topic, items in state.topics.items():
            model = DATA_MODEL_OF[topic]
            loaded = [model.model_validate_json(js) for js in items.values()]
            key_field = KEY_FIELD[topic]
            sort_field = _SORT_FIELD.get(topic)
            if sort_field and key_field:
                loaded.sort(key=lambda m: (getattr(m, sort_field), _natural(getattr(m, key_field))))
            u.view[topic] = OrderedDict(
                (str(getattr(m, key_field)) if key_field else "", m) for m in loaded
            )
        rules = u.published("AUTOPILOT_RULES_UPDATE")
        if isinstance(rules, AutopilotRules):
            u.autopilot.rules = rules
        for topic in ("SIGNAL_UPDATE", "CHAIN_UPDATE"):
            retained = u.retained(topic)
            view = u.view.get(topic, OrderedDict())
            ranks = state.ranks.get(topic, {})
            assert retained is not None
            for key in state.topics.get(topic, {}):
                retained.load(key, view[key], ranks.get(key))  # type: ignore[arg-type]
            self._prune(u, topic, view)
        for safety in u.view.get("MODE_SAFETY_UPDATE", OrderedDict()).values():
            if isinstance(safety, ModeSafety):
                u.safety[safety.mode] = safety
        if internal is not None:
            a = internal["autopilot"]
            pilot = u.autopilot
            pilot.running = a["running"]
            pilot.scans = a["scans"]
            pilot.last_scan_at = a["last_scan_at"]
            pilot.next_scan_at = a["next_scan_at"]
            pilot.signals_today = a["signals_today"]
            pilot.day_key = a["day_key"]
            pilot.next_signal = a["next_signal"]
            pilot.recent = [Decision.model_validate(d) for d in a["recent"]]
            pilot.rejections = dict(a["rejections"])
            b = internal["breaker"]
            u.breaker = Breaker(
                CircuitBreaker.model_validate(b["view"]),
                b["hour_key"],
                b["day_key"],
                b["hour_net"],
                b["day_net"],
            )
            u.pnl = PnlBook.from_dict(internal["pnl"])
            u.next_chain = internal["next_chain"]
            u.next_manual = internal["next_manual"]
        return u

    # ================================================================== snapshots

    def _snapshot_provider(self, topic: str) -> SnapshotProvider:
        singleton = KEY_FIELD[topic] is None

        def provide(user: str) -> WireModel | list[Any]:
            u = self._users.get(user)
            if u is None:
                u = self._new_user(user, self._clock.now_ms())
                return self._default_of(u, topic) if singleton else []
            items = u.view.get(topic, OrderedDict())
            if singleton:
                return items.get("") or self._default_of(u, topic)
            if topic in _SORT_FIELD:
                return list(items.values())
            return [items[key] for key in sorted(items, key=_by_name)]

        return provide

    def _default_of(self, u: _User, topic: str) -> WireModel:
        """The first state of a singleton topic for a user who has none published."""
        defaults: dict[str, Callable[[], WireModel]] = {
            "GINIE_STATUS_UPDATE": lambda: self._status(u),
            "CIRCUIT_BREAKER_UPDATE": lambda: u.breaker.view,
            "AUTOPILOT_RULES_UPDATE": lambda: u.autopilot.rules,
            "PNL_UPDATE": lambda: u.pnl.pnl(0.0, 0.0),
            "PERFORMANCE_UPDATE": u.pnl.performance,
            "STATS_UPDATE": lambda: u.pnl.stats(0),
            "SYSTEM_STATUS_UPDATE": lambda: self._system,
            "HEALTH_UPDATE": lambda: self._health,
        }
        return defaults[topic]()

    def _market_snapshot(self, symbol: str) -> list[MarketData]:
        symbol = symbol.upper()
        if symbol not in self.exchange.symbols:
            return []
        data: list[MarketData] = []
        mark = self.exchange.mark_price(symbol)
        if mark is not None:
            data.append(mark)
        data.extend(self.exchange.klines(symbol)[-MARKET_SNAPSHOT_KLINES:])
        book = self.exchange.order_book(symbol)
        if book is not None:
            data.append(book)
        return data

    # ================================================================== commands

    def _user(self, user: str) -> _User:
        self.attach_user(user)
        u = self._users.get(user)
        if u is None:
            raise CommandError(
                "rejected", f"the {self.exchange.name} exchange has no account of {user}"
            )
        return u

    async def _done(self) -> None:
        await self._drain()
        self._flush()

    def _pending_signal(self, u: _User, signal_id: str) -> Signal:
        signal = u.autopilot.signals.get(signal_id)
        if signal is None:
            stored = self.store.get(u.name, "SIGNAL_UPDATE", signal_id)
            if stored is None:
                raise CommandError("not_found", f"no signal {signal_id}")
            signal = Signal.model_validate_json(stored)
        if signal.status != "pending":
            raise CommandError("conflict", f"signal {signal_id} is already {signal.status}")
        return signal

    async def _cmd_signal_approve(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, SignalApprove)
        u = self._user(user)
        signal = self._pending_signal(u, args.signal_id)
        now = self._clock.now_ms()
        approved = u.autopilot.settle(signal, "approved", "approved by user", now)
        self._queue(u, approved)
        settled = await self._execute(u, approved, "manual")
        await self._done()
        if settled.status == "rejected":
            raise CommandError(
                "rejected", f"signal {signal.signal_id} not executed: {settled.reason}"
            )
        return {
            "signal_id": settled.signal_id,
            "status": settled.status,
            "chain_id": settled.chain_id,
        }

    async def _cmd_signal_reject(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, SignalReject)
        u = self._user(user)
        signal = self._pending_signal(u, args.signal_id)
        reason = args.reason or "rejected by user"
        u.autopilot.reject_count("user")
        self._queue(u, u.autopilot.settle(signal, "rejected", reason, self._clock.now_ms()))
        self._queue(u, self._status(u))
        await self._done()
        return {"signal_id": signal.signal_id, "status": "rejected"}

    async def _set_running(self, user: str, running: bool) -> dict[str, Any]:
        u = self._user(user)
        changed = u.autopilot.running != running
        if changed:
            u.autopilot.running = running
            verb = "started" if running else "stopped"
            u.autopilot.decide("*", verb, f"{verb} by user", self._clock.now_ms())
            self._queue(u, self._status(u))
            await self._done()
        return {"running": running, "changed": changed}

    async def _cmd_ginie_start(self, user: str, args: CommandArgs) -> dict[str, Any]:
        return await self._set_running(user, True)

    async def _cmd_ginie_stop(self, user: str, args: CommandArgs) -> dict[str, Any]:
        return await self._set_running(user, False)

    async def _cmd_breaker_reset(self, user: str, args: CommandArgs) -> dict[str, Any]:
        u = self._user(user)
        was = u.breaker.view.state
        u.breaker.reset()
        self._queue(u, u.breaker.view)
        if was != "ok":
            self._queue(u, self._status(u))
        await self._done()
        return {"state": u.breaker.view.state, "was": was}

    async def _cmd_mode_pause(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, ModePause)
        u = self._user(user)
        self._set_safety(u, modes.pause(u.safety[args.mode], self._clock.now_ms(), args.minutes))
        await self._done()
        s = u.safety[args.mode]
        return {"mode": args.mode, "status": s.status, "paused_until": s.paused_until}

    async def _cmd_mode_resume(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, ModeResume)
        u = self._user(user)
        self._set_safety(u, modes.resume(u.safety[args.mode]))
        await self._done()
        return {"mode": args.mode, "status": u.safety[args.mode].status}

    async def _cmd_set_rules(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, SetRules)
        u = self._user(user)
        changes = args.model_dump(exclude_unset=True)
        try:
            rules = merge_rules(u.autopilot.rules, changes, self.exchange.symbols)
        except RulesError as exc:
            raise CommandError("bad_request", str(exc)) from None
        u.autopilot.rules = rules
        self._queue(u, rules)
        if u.breaker.set_limits(
            rules.max_consecutive_losses,
            rules.max_daily_loss,
            rules.max_hourly_loss,
            rules.cooldown_minutes,
        ):
            self._queue(u, u.breaker.view)
        if "mode_allocation_pct" in changes:
            for allocation in self._allocations(u):
                self._queue(u, allocation)
        self._queue(u, self._status(u))
        await self._done()
        return {"rules": rules.model_dump(), "changed": sorted(changes)}

    async def _cmd_order_cancel(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, OrderCancel)
        u = self._user(user)
        order = next(
            (
                o
                for o in u.open_orders()
                if o.order_id == args.order_id or o.client_order_id == args.client_order_id
            ),
            None,
        )
        if order is None:
            raise CommandError("not_found", "no such open order")
        try:
            cancelled = await self.exchange.cancel_order(
                user, order.symbol, order_id=order.order_id
            )
        except ExchangeError as exc:
            raise CommandError("rejected", exc.message) from None
        await self._done()
        return {"order_id": cancelled.order_id, "status": cancelled.status}

    async def _cmd_position_close(self, user: str, args: CommandArgs) -> dict[str, Any]:
        assert isinstance(args, PositionClose)
        u = self._user(user)
        symbol = args.symbol.upper()
        position = next((p for p in u.positions() if p.symbol == symbol), None)
        if position is None:
            raise CommandError("not_found", f"no open position in {symbol}")
        chain = next((c for c in u.live_chains() if c.symbol == symbol), None)
        now = self._clock.now_ms()
        if chain is not None:
            t = lifecycle.request_close(chain, "manual_close")
            self._apply(u, t, now)
            client_order_id = lifecycle.client_id(chain.chain_id, "X")
        else:
            client_order_id = f"m-{u.next_manual}"
            u.next_manual += 1
            self._actions.append(
                (
                    user,
                    lifecycle.PlaceOrder(
                        client_order_id,
                        symbol,
                        "SELL" if position.size > 0 else "BUY",
                        "MARKET",
                        abs(position.size),
                        reduce_only=True,
                    ),
                )
            )
        await self._done()
        return {"symbol": symbol, "client_order_id": client_order_id}


def paper_account_loader(store: TradingStore) -> AccountLoader:
    """Reload a paper account from what the engine last published for its user."""

    def load(user: str) -> PaperAccountState | None:
        topics = store.load(user, finished_limit=0).topics
        balance_json = topics.get("BALANCE_UPDATE", {}).get("USDT")
        if balance_json is None:
            return None
        balance = Balance.model_validate_json(balance_json)
        positions = [
            p
            for p in (
                Position.model_validate_json(js)
                for js in topics.get("POSITION_UPDATE", {}).values()
            )
            if p.size != 0
        ]
        orders = [
            o
            for o in (
                Order.model_validate_json(js) for js in topics.get("ORDER_UPDATE", {}).values()
            )
            if o.status in ("NEW", "PARTIALLY_FILLED")
        ]
        return PaperAccountState(balance.wallet_balance, positions, orders)

    return load


def build_paper_engine(
    conn: sqlite3.Connection,
    clock: Clock,
    *,
    seed: int,
    speed: float,
    loop_seconds: float | None = 0.2,
) -> TradingEngine:
    """The engine on a paper exchange whose market and accounts go on from the database."""
    store = TradingStore(conn)
    paper = PaperExchange(
        seed=seed,
        speed=speed,
        clock=clock,
        tick_seconds=loop_seconds,
        start_prices=store.load_prices() or None,
        load_account=paper_account_loader(store),
    )
    return TradingEngine(paper, store, clock, loop_seconds=loop_seconds)

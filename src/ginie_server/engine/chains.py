"""Chain orchestration: opening chains for signals and carrying each chain through its life.

The pure lifecycle (`domain.lifecycle`) says what a chain becomes and which orders it wants;
`ChainDesk` applies that to a user's account: keeps the chain, queues its steps and events,
hands its orders to the executor, and when a chain opens or closes updates what follows from
it (allocation, stats, P&L, the breaker, the mode's safety, the autopilot's status).
"""

from __future__ import annotations

import logging

from ginie_protocol.events import Chain, Signal, Topic
from ginie_server.clock import Clock
from ginie_server.domain import lifecycle, modes
from ginie_server.domain.autopilot import size_position
from ginie_server.domain.market import round_to
from ginie_server.engine.book import Marks
from ginie_server.engine.execution import Executor
from ginie_server.engine.outbox import Account, StepRow
from ginie_server.engine.persistence import Persistence
from ginie_server.exchange.base import Exchange, ExchangeError

log = logging.getLogger(__name__)

DEFAULT_QTY_STEP = 0.001
DEFAULT_PRICE_TICK = 1e-8
"""Steps for a symbol the exchange has not described (its filters not loaded yet)."""


class ChainDesk:
    """Applies chain transitions to accounts and opens chains for signals."""

    def __init__(
        self,
        exchange: Exchange,
        persistence: Persistence,
        executor: Executor,
        marks: Marks,
        clock: Clock,
    ) -> None:
        self._exchange = exchange
        self._persistence = persistence
        self._executor = executor
        self._marks = marks
        self._clock = clock

    def qty_step(self, symbol: str) -> float:
        """The exchange's quantity step of `symbol` (its filters), or a fine default."""
        filters = self._exchange.filters(symbol)
        return filters.step_size if filters is not None else DEFAULT_QTY_STEP

    def _price_tick(self, symbol: str) -> float:
        filters = self._exchange.filters(symbol)
        return filters.tick_size if filters is not None else DEFAULT_PRICE_TICK

    def find(self, account: Account, chain_id: str) -> Chain | None:
        """A chain by id: from the book, or read back from the database if it left memory."""
        chain = account.book.chains.get(chain_id)
        if chain is None:
            stored = self._persistence.store.get(account.name, Topic.CHAIN_UPDATE, chain_id)
            if stored is not None:
                chain = Chain.model_validate_json(stored)
                account.book.chains.put(chain_id, chain, done=chain.status not in lifecycle.ACTIVE)
        return chain

    def chain_of_order(self, account: Account, client_order_id: str) -> Chain | None:
        """The chain an order belongs to by its client order id, if any."""
        parsed = lifecycle.parse_client_id(client_order_id)
        return self.find(account, parsed[0]) if parsed else None

    def apply(self, account: Account, t: lifecycle.Transition, now: int) -> None:
        """Carry out one transition of a chain."""
        book = account.book
        before = book.chains.get(t.chain.chain_id)
        account.put_chain(t.chain)
        for step in t.steps:
            account.queue(StepRow(t.chain.chain_id, t.chain.symbol, step, now))
        self._executor.submit(account.name, list(t.actions))
        if not t.changed:
            account.notify()
            return
        account.queue(t.chain)
        was = before.status if before is not None else "new"
        status = t.chain.status
        if status == "closed" and was in ("open", "partially_closed"):
            self._on_closed(account, t.chain, now)
        elif status in ("open", "failed", "cancelled") and was == "pending":
            account.queue(book.allocation(t.chain.mode))
            account.queue(book.pnl.stats(len(book.active_chains())))
            account.queue(book.status())

    def _on_closed(self, account: Account, chain: Chain, now: int) -> None:
        book = account.book
        book.pnl.on_chain_closed(chain)
        book.pnl.record_equity(book.equity())
        account.pnl_changed()
        was_blocked = book.breaker.blocks_entries
        if book.breaker.record(chain.realized_pnl, now):
            account.queue(book.breaker.view)
        account.set_safety(modes.record_result(book.safety[chain.mode], chain.realized_pnl, now))
        account.queue(book.pnl.performance())
        account.queue(book.pnl.stats(len(book.active_chains())))
        account.queue(book.allocation(chain.mode))
        if was_blocked != book.breaker.blocks_entries:
            book.autopilot.decide(chain.symbol, "block", book.breaker.view.reason or "breaker", now)
        account.queue(book.status())

    def on_refused(
        self, account: Account, action: lifecycle.PlaceOrder, exc: ExchangeError
    ) -> None:
        """The exchange refused an order a chain wanted placed."""
        parsed = lifecycle.parse_client_id(action.client_order_id)
        chain = self.find(account, parsed[0]) if parsed else None
        if chain is None or parsed is None:
            log.warning("order %s refused: %s", action.client_order_id, exc.message)
            return
        now = self._clock.now_ms()
        self.apply(
            account, lifecycle.on_rejected(chain, parsed[1], exc.code, exc.message, now), now
        )

    async def execute(self, account: Account, signal: Signal, source: str) -> Signal:
        """Open a chain for a signal, or settle it as rejected with the reason."""
        book = account.book
        now = self._clock.now_ms()
        rules = book.autopilot.rules
        reason = book.entry_blocker(signal.symbol, signal.mode) or self._stale(signal)
        step = self.qty_step(signal.symbol)
        if reason is None:
            sizing = size_position(
                signal.entry_price,
                signal.stop_loss,
                book.equity(),
                rules.risk_per_trade_pct,
                rules.leverage,
                book.allocation(signal.mode).available_usd,
                step,
            )
            reason = sizing.reason
        if reason is not None:
            book.autopilot.reject_count(reason)
            book.autopilot.decide(signal.symbol, "reject", f"{signal.signal_id}: {reason}", now)
            settled = book.autopilot.settle(signal, "rejected", reason, now)
            account.queue(settled)
            account.queue(book.status())
            return settled
        chain_id = book.new_chain_id()
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
        settled = book.autopilot.settle(signal, "executed", f"chain {chain_id}", now, chain_id)
        account.queue(settled)
        book.pnl.on_chain_opened(plan.source)
        tick = self._price_tick(signal.symbol)
        prices = [round_to(p, tick) for p in lifecycle.take_profit_prices(plan, step)]
        try:
            await self._exchange.set_leverage(account.name, signal.symbol, rules.leverage)
        except ExchangeError as exc:
            log.warning("leverage for %s not set: %s", signal.symbol, exc.message)
        self.apply(account, lifecycle.open_chain(chain_id, plan, prices, now), now)
        account.queue(book.pnl.stats(len(book.active_chains())))
        await self._executor.drain()
        return settled

    def _stale(self, signal: Signal) -> str | None:
        """`price_moved` when the price has already reached the signal's stop or its first
        take-profit (midway to the target): the exits would trigger at once."""
        mark = self._marks.get(signal.symbol)
        if mark is None:
            return None
        midway = signal.entry_price + (signal.take_profit - signal.entry_price) / 2
        low, high = sorted((signal.stop_loss, midway))
        return None if low < mark < high else "price_moved"

    def reconcile(self, account: Account, now: int) -> None:
        """After a restart: end chains whose entry never reached the exchange, and give live
        chains without any open exit their exits again."""
        book = account.book
        open_ids = {o.client_order_id for o in book.open_orders()}
        orders = list(book.orders.values())
        known_ids = {o.client_order_id for o in orders}
        filled_ids = {o.client_order_id for o in orders if o.status == "FILLED"}
        for chain in list(book.chains.live.values()):
            if chain.status == "pending" and chain.entry_client_order_id not in known_ids:
                failed = chain.model_copy(
                    update={"status": "failed", "close_reason": "interrupted", "closed_at": now}
                )
                step = lifecycle.Step("failed", "entry interrupted by a restart")
                self.apply(account, lifecycle.Transition(failed, [step], [], changed=True), now)
            elif chain.status in ("open", "partially_closed"):
                exits = [*chain.take_profit_client_order_ids, chain.stop_loss_client_order_id]
                if not any(cid in open_ids for cid in exits):
                    step = lifecycle.Step("exits_restored", "exits placed again after a restart")
                    actions = lifecycle.restore_exits(
                        chain, self.qty_step(chain.symbol), filled_ids
                    )
                    self.apply(account, lifecycle.Transition(chain, [step], actions), now)

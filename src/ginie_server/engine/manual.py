"""The trader's own commands: `order.place` (a manual chain) and `account.flatten` (the kill
switch).

`order.place` checks the order against the exchange's filters and the free margin
(`domain.manual.check_order`) and then opens a chain with source `manual` through the same
lifecycle as the autopilot's: entry, take-profit and stop-loss, one-cancels-other.

`account.flatten` stops the autopilot, cancels every open order and closes every position at
market, each step a `LIFECYCLE_EVENT` (under the chain it concerns, or `account` for the
account's own steps), and answers what it did and what it could not.
"""

from __future__ import annotations

from typing import Any

from ginie_protocol.commands import AccountFlatten, OrderPlace
from ginie_protocol.events import Mode
from ginie_server.domain import lifecycle
from ginie_server.domain.manual import Checked, Filters, OrderInvalid, Request, check_order
from ginie_server.engine.book import SETTLEMENT_ASSET, AccountBook
from ginie_server.engine.commands import CommandContext, typed
from ginie_server.engine.execution import order_request
from ginie_server.engine.outbox import Account, StepRow
from ginie_server.exchange.base import ExchangeError
from ginie_server.sources import CommandError, CommandHandler

ACCOUNT_CHAIN = "account"
"""The chain id of the lifecycle steps that concern the whole account."""
MANUAL_MODE: Mode = "scalp"
"""The trading mode a manual chain is filed under (its allocation and safety)."""
Result = dict[str, Any]


class ManualTrading:
    """`order.place` and `account.flatten` (`table`)."""

    def __init__(self, context: CommandContext) -> None:
        self._account_of = context.account_of
        self._settle = context.settle
        self._exchange = context.exchange
        self._desk = context.desk
        self._marks = context.marks
        self._clock = context.clock
        self.table: dict[str, CommandHandler] = {
            "order.place": typed(OrderPlace, self.order_place),
            "account.flatten": typed(AccountFlatten, self.account_flatten),
        }

    # ------------------------------------------------------------------ order.place

    async def order_place(self, user: str, args: OrderPlace) -> Result:
        account = self._account_of(user)
        book = account.book
        symbol = args.symbol.upper()
        checked = self._check(book, symbol, args)
        if symbol in book.busy_symbols():
            raise CommandError("conflict", f"symbol: a chain or position is open on {symbol}")
        chain_id = book.new_chain_id()
        plan = lifecycle.Plan(
            symbol=symbol,
            direction="LONG" if args.side == "BUY" else "SHORT",
            mode=MANUAL_MODE,
            source="manual",
            strategy="manual",
            signal_id=None,
            quantity=checked.quantity,
            take_profit=args.take_profit,
            stop_loss=args.stop_loss,
            reference_price=checked.reference_price,
            entry_type=args.type,
            entry_price=args.price,
        )
        leverage = args.leverage or book.autopilot.rules.leverage
        try:
            await self._exchange.set_leverage(user, symbol, leverage)
        except ExchangeError as exc:
            raise CommandError("rejected", f"leverage: {exc.message}") from None
        now = self._clock.now_ms()
        book.pnl.on_chain_opened("manual")
        prices = [args.take_profit] if args.take_profit is not None else []
        self._desk.apply(account, lifecycle.open_chain(chain_id, plan, prices, now), now)
        account.queue(book.pnl.stats(len(book.active_chains())))
        await self._settle()
        return {
            "chain_id": chain_id,
            "quantity": checked.quantity,
            "notional": checked.notional,
            "margin": checked.margin,
        }

    def _check(self, book: AccountBook, symbol: str, args: OrderPlace) -> Checked:
        found = self._exchange.filters(symbol) if symbol in self._exchange.symbols else None
        if found is None:
            raise CommandError("invalid", f"symbol: unknown symbol {symbol}")
        filters = Filters(
            found.tick_size, found.step_size, found.min_qty, found.min_notional, found.max_leverage
        )
        request = Request(
            symbol=symbol,
            side=args.side,
            type=args.type,
            quantity=args.quantity,
            notional=args.notional,
            price=args.price,
            take_profit=args.take_profit,
            stop_loss=args.stop_loss,
            leverage=args.leverage or book.autopilot.rules.leverage,
        )
        balance = book.balances.get(SETTLEMENT_ASSET)
        available = balance.available_balance if balance is not None else 0.0
        try:
            return check_order(request, filters, self._marks.get(symbol), available)
        except OrderInvalid as exc:
            raise CommandError("invalid", str(exc)) from None

    # ------------------------------------------------------------------ account.flatten

    async def account_flatten(self, user: str, args: AccountFlatten) -> Result:
        account = self._account_of(user)
        book = account.book
        failed: list[dict[str, str]] = []
        self._step(account, "flatten_started", "flatten: stop, cancel every order, close all")
        stopped = False
        if args.stop_autopilot and book.autopilot.running:
            book.autopilot.running = False
            book.autopilot.decide("*", "stopped", "stopped by flatten", self._clock.now_ms())
            account.queue(book.status())
            self._step(account, "autopilot_stopped", "autopilot stopped")
            stopped = True
        cancelled: list[str] = []
        for order in book.open_orders():
            try:
                await self._exchange.cancel_order(user, order.symbol, order_id=order.order_id)
            except ExchangeError as exc:
                failed.append({"step": f"cancel {order.client_order_id}", "error": exc.message})
                self._step(account, "flatten_failed", f"cancel {order.client_order_id}: {exc}")
                continue
            cancelled.append(order.client_order_id)
            if order.chain_id is None:
                self._step(account, "order_cancelled", f"{order.client_order_id} cancelled")
        closed: list[str] = []
        for position in book.open_positions():
            error = await self._close(account, position.symbol, position.size)
            if error is None:
                closed.append(position.symbol)
            else:
                failed.append({"step": f"close {position.symbol}", "error": error})
                self._step(account, "flatten_failed", f"close {position.symbol}: {error}")
        summary = f"flatten done: {len(cancelled)} cancelled, {len(closed)} closed"
        self._step(account, "flatten_done", summary + (f", {len(failed)} failed" if failed else ""))
        await self._settle()
        return {
            "stopped_autopilot": stopped,
            "cancelled": cancelled,
            "closed": closed,
            "failed": failed,
        }

    async def _close(self, account: Account, symbol: str, size: float) -> str | None:
        """Close one position at market (through its chain, if it has one); the error or None."""
        book = account.book
        chain = next((c for c in book.live_chains() if c.symbol == symbol), None)
        if chain is not None:
            now = self._clock.now_ms()
            t = lifecycle.request_close(chain, "flatten")
            self._desk.apply(account, lifecycle.Transition(t.chain, t.steps, [], t.changed), now)
            client_order_id = lifecycle.client_id(chain.chain_id, "X")
        else:
            client_order_id = book.new_manual_id()
            self._step(account, "close_requested", f"close {abs(size)} {symbol} at market")
        close = lifecycle.PlaceOrder(
            client_order_id,
            symbol,
            "SELL" if size > 0 else "BUY",
            "MARKET",
            abs(size),
            reduce_only=True,
        )
        try:
            await self._exchange.place_order(account.name, order_request(close))
        except ExchangeError as exc:
            return exc.message
        return None

    def _step(self, account: Account, step: str, message: str) -> None:
        now = self._clock.now_ms()
        account.queue(StepRow(ACCOUNT_CHAIN, "*", lifecycle.Step(step, message), now))

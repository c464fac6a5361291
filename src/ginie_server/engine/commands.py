"""The command handlers: each takes its own argument model and changes one user's account.

A handler finds the user's account, changes it through the book, the chain desk or the
exchange, and returns the ACK's `result`; `CommandError` becomes an ACK with `ok: false`.
Every handler ends by `settle()`: queued orders are carried out and queued events published,
so the events a command caused are on their way before its ACK.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ginie_protocol.commands import (
    CommandArgs,
    ModePause,
    ModeResume,
    NoArgs,
    OrderCancel,
    PositionClose,
    SetRules,
    SignalApprove,
    SignalReject,
)
from ginie_protocol.events import Signal, Topic
from ginie_server.clock import Clock
from ginie_server.domain import lifecycle, modes
from ginie_server.domain.autopilot import RulesError, merge_rules
from ginie_server.engine.book import Marks
from ginie_server.engine.chains import ChainDesk
from ginie_server.engine.execution import Executor
from ginie_server.engine.outbox import Account
from ginie_server.engine.persistence import Persistence
from ginie_server.exchange.base import Exchange, ExchangeError
from ginie_server.sources import CommandError, CommandHandler

A = TypeVar("A", bound=CommandArgs)
Result = dict[str, Any]


def typed(model: type[A], handler: Callable[[str, A], Awaitable[Result]]) -> CommandHandler:
    """A handler of `model`'s arguments as the hub calls it (with any `CommandArgs`)."""

    async def run(user: str, args: CommandArgs) -> Result:
        if not isinstance(args, model):
            raise CommandError("bad_request", f"expected the arguments of {model.__name__}")
        return await handler(user, args)

    return run


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What command handlers work with: the user's account, the engine's parts, the clock."""

    account_of: Callable[[str], Account]
    """The account of a user, opened on first use (CommandError if the exchange has none)."""
    settle: Callable[[], Awaitable[None]]
    """Carry out queued orders and publish queued events: every handler ends with it."""
    exchange: Exchange
    desk: ChainDesk
    executor: Executor
    persistence: Persistence
    marks: Marks
    clock: Clock


class CommandHandlers:
    """The ten commands of the contract that steer the autopilot and the account (`table`)."""

    def __init__(self, context: CommandContext) -> None:
        self._account_of = context.account_of
        self._settle = context.settle
        self._exchange = context.exchange
        self._desk = context.desk
        self._executor = context.executor
        self._persistence = context.persistence
        self._clock = context.clock
        self.table: dict[str, CommandHandler] = {
            "signal.approve": typed(SignalApprove, self.signal_approve),
            "signal.reject": typed(SignalReject, self.signal_reject),
            "ginie.start": typed(NoArgs, self.ginie_start),
            "ginie.stop": typed(NoArgs, self.ginie_stop),
            "circuit_breaker.reset": typed(NoArgs, self.breaker_reset),
            "mode.pause": typed(ModePause, self.mode_pause),
            "mode.resume": typed(ModeResume, self.mode_resume),
            "autopilot.set_rules": typed(SetRules, self.set_rules),
            "order.cancel": typed(OrderCancel, self.order_cancel),
            "position.close": typed(PositionClose, self.position_close),
        }

    # ------------------------------------------------------------------ signals

    def _pending_signal(self, account: Account, signal_id: str) -> Signal:
        signal = account.book.autopilot.signals.get(signal_id)
        if signal is None:
            stored = self._persistence.store.get(account.name, Topic.SIGNAL_UPDATE, signal_id)
            if stored is None:
                raise CommandError("not_found", f"no signal {signal_id}")
            signal = Signal.model_validate_json(stored)
        if signal.status != "pending":
            raise CommandError("conflict", f"signal {signal_id} is already {signal.status}")
        return signal

    async def signal_approve(self, user: str, args: SignalApprove) -> Result:
        account = self._account_of(user)
        signal = self._pending_signal(account, args.signal_id)
        now = self._clock.now_ms()
        approved = account.book.autopilot.settle(signal, "approved", "approved by user", now)
        account.queue(approved)
        settled = await self._desk.execute(account, approved, "manual")
        await self._settle()
        if settled.status == "rejected":
            raise CommandError(
                "rejected", f"signal {signal.signal_id} not executed: {settled.reason}"
            )
        return {
            "signal_id": settled.signal_id,
            "status": settled.status,
            "chain_id": settled.chain_id,
        }

    async def signal_reject(self, user: str, args: SignalReject) -> Result:
        account = self._account_of(user)
        pilot = account.book.autopilot
        signal = self._pending_signal(account, args.signal_id)
        reason = args.reason or "rejected by user"
        pilot.reject_count("user")
        account.queue(pilot.settle(signal, "rejected", reason, self._clock.now_ms()))
        account.queue(account.book.status())
        await self._settle()
        return {"signal_id": signal.signal_id, "status": "rejected"}

    # ------------------------------------------------------------------ autopilot and safety

    async def _set_running(self, user: str, running: bool) -> Result:
        account = self._account_of(user)
        pilot = account.book.autopilot
        changed = pilot.running != running
        if changed:
            pilot.running = running
            verb = "started" if running else "stopped"
            pilot.decide("*", verb, f"{verb} by user", self._clock.now_ms())
            account.queue(account.book.status())
            await self._settle()
        return {"running": running, "changed": changed}

    async def ginie_start(self, user: str, args: NoArgs) -> Result:
        return await self._set_running(user, True)

    async def ginie_stop(self, user: str, args: NoArgs) -> Result:
        return await self._set_running(user, False)

    async def breaker_reset(self, user: str, args: NoArgs) -> Result:
        account = self._account_of(user)
        breaker = account.book.breaker
        was = breaker.view.state
        breaker.reset()
        account.queue(breaker.view)
        if was != "ok":
            account.queue(account.book.status())
        await self._settle()
        return {"state": breaker.view.state, "was": was}

    async def mode_pause(self, user: str, args: ModePause) -> Result:
        account = self._account_of(user)
        now = self._clock.now_ms()
        account.set_safety(modes.pause(account.book.safety[args.mode], now, args.minutes))
        await self._settle()
        safety = account.book.safety[args.mode]
        return {"mode": args.mode, "status": safety.status, "paused_until": safety.paused_until}

    async def mode_resume(self, user: str, args: ModeResume) -> Result:
        account = self._account_of(user)
        account.set_safety(modes.resume(account.book.safety[args.mode]))
        await self._settle()
        return {"mode": args.mode, "status": account.book.safety[args.mode].status}

    async def set_rules(self, user: str, args: SetRules) -> Result:
        account = self._account_of(user)
        book = account.book
        changes = args.model_dump(exclude_unset=True)
        try:
            rules = merge_rules(book.autopilot.rules, changes, self._exchange.symbols)
        except RulesError as exc:
            raise CommandError("bad_request", str(exc)) from None
        book.autopilot.rules = rules
        account.queue(rules)
        if book.breaker.set_limits(
            rules.max_consecutive_losses,
            rules.max_daily_loss,
            rules.max_hourly_loss,
            rules.cooldown_minutes,
        ):
            account.queue(book.breaker.view)
        if "mode_allocation_pct" in changes:
            for allocation in book.allocations():
                account.queue(allocation)
        account.queue(book.status())
        await self._settle()
        return {"rules": rules.model_dump(), "changed": sorted(changes)}

    # ------------------------------------------------------------------ orders and positions

    async def order_cancel(self, user: str, args: OrderCancel) -> Result:
        account = self._account_of(user)
        order = next(
            (
                o
                for o in account.book.open_orders()
                if o.order_id == args.order_id or o.client_order_id == args.client_order_id
            ),
            None,
        )
        if order is None:
            raise CommandError("not_found", "no such open order")
        try:
            cancelled = await self._exchange.cancel_order(
                user, order.symbol, order_id=order.order_id
            )
        except ExchangeError as exc:
            raise CommandError("rejected", exc.message) from None
        await self._settle()
        return {"order_id": cancelled.order_id, "status": cancelled.status}

    async def position_close(self, user: str, args: PositionClose) -> Result:
        account = self._account_of(user)
        book = account.book
        symbol = args.symbol.upper()
        position = next((p for p in book.open_positions() if p.symbol == symbol), None)
        if position is None:
            raise CommandError("not_found", f"no open position in {symbol}")
        chain = next((c for c in book.live_chains() if c.symbol == symbol), None)
        if chain is not None:
            now = self._clock.now_ms()
            self._desk.apply(account, lifecycle.request_close(chain, "manual_close"), now)
            client_order_id = lifecycle.client_id(chain.chain_id, "X")
        else:
            client_order_id = book.new_manual_id()
            close = lifecycle.PlaceOrder(
                client_order_id,
                symbol,
                "SELL" if position.size > 0 else "BUY",
                "MARKET",
                abs(position.size),
                reduce_only=True,
            )
            self._executor.submit(user, [close])
        await self._settle()
        return {"symbol": symbol, "client_order_id": client_order_id}

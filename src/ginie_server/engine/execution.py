"""Execution: the orders chains want placed or cancelled, carried out one at a time, in order.

Actions queue here (`submit`) from chain transitions and commands, and `drain()` sends them to
the exchange. A drain runs at the end of every pump and command, and on its own task when an
action is queued outside both (`submit` kicks one off). A cancel of an order that is no longer
open is skipped; a refused cancel is logged (the order's own update tells the rest); a refused
placement is handed to `on_refused`, which lets the chain react.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping

from ginie_server.domain import lifecycle
from ginie_server.engine.outbox import Account
from ginie_server.exchange.base import Exchange, ExchangeError, OrderRequest

log = logging.getLogger(__name__)

Refused = Callable[[Account, lifecycle.PlaceOrder, ExchangeError], None]


class Executor:
    """The action queue of every user, drained against the exchange."""

    def __init__(
        self, exchange: Exchange, accounts: Mapping[str, Account], on_refused: Refused
    ) -> None:
        self._exchange = exchange
        self._accounts = accounts
        self._on_refused = on_refused
        self._queue: deque[tuple[str, lifecycle.Action]] = deque()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def submit(self, user: str, actions: list[lifecycle.Action]) -> None:
        """Queue actions of `user` and make sure they get carried out."""
        if not actions:
            return
        self._queue.extend((user, action) for action in actions)
        self._kick()

    async def drain(self) -> None:
        """Carry out every queued action, in order."""
        async with self._lock:
            while self._queue:
                user, action = self._queue.popleft()
                account = self._accounts.get(user)
                if account is not None:
                    await self._act(account, action)

    async def stop(self) -> None:
        """Wait for a drain under way on its own task."""
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _kick(self) -> None:
        if self._lock.locked() or (self._task is not None and not self._task.done()):
            return
        with contextlib.suppress(RuntimeError):
            self._task = asyncio.get_running_loop().create_task(self.drain())

    async def _act(self, account: Account, action: lifecycle.Action) -> None:
        user = account.book.name
        if isinstance(action, lifecycle.CancelOrder):
            if not any(
                o.client_order_id == action.client_order_id for o in account.book.open_orders()
            ):
                return
            try:
                await self._exchange.cancel_order(
                    user, action.symbol, client_order_id=action.client_order_id
                )
            except ExchangeError as exc:
                log.info("cancel of %s refused: %s", action.client_order_id, exc.message)
            return
        try:
            await self._exchange.place_order(user, order_request(action))
        except ExchangeError as exc:
            self._on_refused(account, action, exc)


def order_request(action: lifecycle.PlaceOrder) -> OrderRequest:
    """The exchange's request for an order a chain or a command wants placed."""
    return OrderRequest(
        symbol=action.symbol,
        side=action.side,
        type=action.type,
        quantity=action.quantity,
        client_order_id=action.client_order_id,
        price=action.price,
        stop_price=action.stop_price,
        reduce_only=action.reduce_only,
    )

"""The exchange listener: what the exchange reports, applied to the users' accounts.

Orders, fills, positions and balances go into the user's book and outbox; an order or fill of a
chain (by its client order id) moves the chain on through the chain desk; a position gone flat
closes its chains, with the reason of a forced close (liquidation, auto-deleveraging) where the
last order of the symbol says so. Market data updates the marks and the last closed minute
(`MarketWatch`, which the schedule reads) and goes straight on to the publisher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ginie_protocol.events import (
    ApiHealth,
    Balance,
    Chain,
    Kline,
    MarkPrice,
    Order,
    OrderBook,
    Position,
    Trade,
)
from ginie_server.clock import Clock
from ginie_server.domain import lifecycle
from ginie_server.engine.book import AccountBook, Marks
from ginie_server.engine.chains import ChainDesk
from ginie_server.engine.outbox import Account, Publication

FORCED_CLOSES = frozenset({"liquidation", "auto-deleveraging", "settlement"})
"""Order reasons of a close the exchange forced. Such an order and its fills belong to the live
chain of its symbol, and a chain flattened by one closes with that reason."""


@dataclass(slots=True)
class MarketWatch:
    """What the engine keeps of the market: the marks and the newest closed 1-minute candle."""

    marks: Marks = field(default_factory=dict)
    closed_minute: int = 0
    """The minute (since the epoch) after the newest closed 1-minute candle."""


class ExchangeListener:
    """The listener the engine registers with its exchange."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        desk: ChainDesk,
        publication: Publication,
        market: MarketWatch,
        on_health: Callable[[ApiHealth], None],
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._desk = desk
        self._publication = publication
        self.market = market
        self._on_health = on_health
        self._clock = clock

    def on_order(self, user: str, order: Order) -> None:
        account = self._accounts.get(user)
        if account is None:
            return
        now = self._clock.now_ms()
        chain = self._desk.chain_of_order(account, order.client_order_id)
        owner = chain or self._forced_close_chain(account.book, order)
        if owner is not None:
            order = order.model_copy(update={"chain_id": owner.chain_id})
        account.book.put_order(order)
        account.queue(order)
        if chain is not None:
            transition = lifecycle.on_order(chain, order, self._desk.qty_step(chain.symbol), now)
            self._desk.apply(account, transition, now)

    def on_trade(self, user: str, trade: Trade) -> None:
        account = self._accounts.get(user)
        if account is None:
            return
        chain = self._desk.chain_of_order(account, trade.client_order_id)
        if chain is None:
            order = account.book.orders.get(trade.order_id)
            chain = self._forced_close_chain(account.book, order) if order else None
        if chain is not None:
            trade = trade.model_copy(update={"chain_id": chain.chain_id})
            account.put_chain(lifecycle.on_trade(chain, trade))
        account.queue(trade)
        account.book.pnl.on_fill(
            trade, chain.mode if chain else None, chain.strategy if chain else None
        )
        account.pnl_changed()

    def on_position(self, user: str, position: Position) -> None:
        account = self._accounts.get(user)
        if account is None:
            return
        book = account.book
        book.positions[position.symbol] = position
        account.queue(position)
        account.pnl_changed()
        if position.size == 0:
            now = self._clock.now_ms()
            last = book.last_order_of(position.symbol)
            forced = last.reason if last is not None else None
            reason = forced if forced in FORCED_CLOSES else "closed_outside"
            for chain in book.live_chains():
                if chain.symbol == position.symbol:
                    self._desk.apply(account, lifecycle.on_flat(chain, str(reason), now), now)

    def on_balance(self, user: str, balance: Balance) -> None:
        account = self._accounts.get(user)
        if account is not None:
            account.queue(account.book.put_balance(balance))
            account.queue(account.book.pnl_now())
            account.outbox.pnl_dirty = False

    def on_market(self, data: MarkPrice | Kline | OrderBook) -> None:
        if isinstance(data, MarkPrice):
            self.market.marks[data.symbol] = data.mark_price
        elif isinstance(data, Kline) and data.closed:
            self.market.closed_minute = max(self.market.closed_minute, data.open_time // 60_000 + 1)
        self._publication.publish_market(data)

    def on_health(self, health: ApiHealth) -> None:
        self._on_health(health)

    @staticmethod
    def _forced_close_chain(book: AccountBook, order: Order) -> Chain | None:
        """The live chain a forced close (liquidation, ADL, settlement) of `order` ends."""
        if order.reason not in FORCED_CLOSES:
            return None
        return next((c for c in book.live_chains() if c.symbol == order.symbol), None)

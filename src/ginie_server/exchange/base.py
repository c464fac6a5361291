"""The exchange interface: what the engine needs from a USD-M futures venue, paper or Binance.

An exchange pushes what happens on it to one `ExchangeListener` (the engine), as protocol
models, and answers the engine's orders. It knows nothing of the hub, chains or the autopilot.
All listener callbacks run on the event loop and must not block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from ginie_protocol.events import (
    ApiHealth,
    Balance,
    Kline,
    MarkPrice,
    Order,
    OrderBook,
    OrderType,
    Position,
    Side,
    Trade,
)


class ExchangeListener(Protocol):
    """Receives everything an exchange reports. Implemented by the engine."""

    def on_order(self, user: str, order: Order) -> None: ...
    def on_trade(self, user: str, trade: Trade) -> None: ...
    def on_position(self, user: str, position: Position) -> None: ...
    def on_balance(self, user: str, balance: Balance) -> None: ...
    def on_market(self, data: MarkPrice | Kline | OrderBook) -> None: ...
    def on_health(self, health: ApiHealth) -> None: ...


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order. `client_order_id` links it to its chain; the exchange echoes it back."""

    symbol: str
    side: Side
    type: OrderType
    quantity: float
    client_order_id: str
    price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """What the venue accepts in an order of one symbol, to refuse a bad order before sending it.

    A price must be a multiple of `tick_size`, a quantity a multiple of `step_size` and at least
    `min_qty`, and price times quantity at least `min_notional`. `max_leverage` is None while the
    venue has not said.
    """

    symbol: str
    tick_size: float
    step_size: float
    min_qty: float
    min_notional: float
    max_leverage: int | None = None


class ExchangeError(Exception):
    """The venue refused or failed a request. `code` is short and stable, `message` readable;
    `call` names the request that failed (for example `GET /fapi/v3/positionRisk`) when known."""

    def __init__(self, code: str, message: str, *, call: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.call = call


class Exchange(ABC):
    """A USD-M futures venue holding one account per user it serves."""

    name: str
    """`paper` or `binance`."""

    symbols: tuple[str, ...]
    """The symbols this exchange streams market data for and may trade."""

    @abstractmethod
    def set_listener(self, listener: ExchangeListener) -> None:
        """Where to report orders, fills, positions, balances, market data and API health."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (or start simulating) and begin reporting to the listener."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop reporting and release connections; idempotent."""

    @abstractmethod
    def serves(self, user: str) -> bool:
        """Whether `user` has an account here (paper: every user; Binance: the owner only)."""

    @abstractmethod
    async def place_order(self, user: str, request: OrderRequest) -> Order:
        """Place an order; returns it as accepted. Raises ExchangeError when refused."""

    @abstractmethod
    async def cancel_order(
        self,
        user: str,
        symbol: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> Order:
        """Cancel an open order by either id; returns it as cancelled. Raises ExchangeError."""

    @abstractmethod
    async def set_leverage(self, user: str, symbol: str, leverage: int) -> None:
        """Set the leverage used for new positions in `symbol`."""

    @abstractmethod
    def positions(self, user: str) -> list[Position]:
        """The user's open positions, as last reported."""

    @abstractmethod
    def open_orders(self, user: str) -> list[Order]:
        """The user's open orders, as last reported."""

    @abstractmethod
    def balances(self, user: str) -> list[Balance]:
        """The user's balances, as last reported."""

    @abstractmethod
    def mark_price(self, symbol: str) -> MarkPrice | None:
        """The latest mark price of `symbol`, if any arrived yet."""

    @abstractmethod
    def klines(self, symbol: str) -> list[Kline]:
        """Recent 1-minute candles of `symbol`, oldest first, the forming one last."""

    @abstractmethod
    def order_book(self, symbol: str) -> OrderBook | None:
        """The latest order book of `symbol`, if any arrived yet."""

    def filters(self, symbol: str) -> SymbolFilters | None:
        """The order filters of `symbol`, or None for a symbol the venue has not described."""
        return None

"""Orders to Binance: new orders (conditional ones through its algo service), cancels and
leverage changes, each answer put into the account cache.

A price or quantity goes out on the symbol's tick and step (`binance_filters`); a symbol
without known filters goes to Binance as asked, for Binance to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ginie_protocol.events import Order
from ginie_server.clock import Clock
from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import ExchangeError, OrderRequest, SymbolFilters
from ginie_server.exchange.binance_account import AccountCache
from ginie_server.exchange.binance_filters import FilterBook
from ginie_server.exchange.binance_rest import BinanceRest, parse_order_id

CONDITIONAL_TYPES = frozenset({"STOP_MARKET", "TAKE_PROFIT_MARKET"})
"""Order types Binance takes through its algo service."""


def order_params(request: OrderRequest, filters: SymbolFilters | None) -> dict[str, Any]:
    """The parameters of `futures_create_order` for `request`. Raises ExchangeError for an
    order that cannot be sent: a quantity below the step, a stop or limit without its price."""
    step, tick = (filters.step_size, filters.tick_size) if filters is not None else (0.0, 0.0)
    quantity = mapping.to_step(request.quantity, step)
    if float(quantity) <= 0:
        raise ExchangeError("bad_quantity", f"quantity below the step {step:g}")
    params: dict[str, Any] = {
        "symbol": request.symbol,
        "side": request.side,
        "type": request.type,
        "quantity": quantity,
    }
    if request.reduce_only:
        params["reduceOnly"] = "true"
    if request.type in CONDITIONAL_TYPES:
        if request.stop_price is None:
            raise ExchangeError("bad_request", f"{request.type} needs a stop price")
        params["clientAlgoId"] = request.client_order_id
        params["triggerPrice"] = mapping.to_step(request.stop_price, tick)
        params["workingType"] = "MARK_PRICE"
    else:
        params["newClientOrderId"] = request.client_order_id
        params["newOrderRespType"] = "RESULT"
    if request.type == "LIMIT":
        if request.price is None:
            raise ExchangeError("bad_request", "LIMIT needs a price")
        params["price"] = mapping.to_step(request.price, tick)
        params["timeInForce"] = "GTC"
    return params


class OrderDesk:
    """Places and cancels the owner's orders and sets leverage, by REST."""

    def __init__(
        self,
        rest: BinanceRest,
        account: AccountCache,
        filters: FilterBook,
        clock: Clock,
        *,
        chain_of: mapping.ChainOf,
        mark_prices: Callable[[], dict[str, float]],
        refresh_positions: Callable[[], None],
    ) -> None:
        self._rest = rest
        self._account = account
        self._filters = filters
        self._clock = clock
        self._chain_of = chain_of
        self._mark_prices = mark_prices
        self._refresh_positions = refresh_positions

    async def place(self, request: OrderRequest) -> Order:
        """Place an order; returns it as accepted, or as the stream has since reported it."""
        params = order_params(request, self._filters.get(request.symbol))
        conditional = request.type in CONDITIONAL_TYPES
        item = await self._rest.call(self._rest.client.futures_create_order, **params)
        order = self._rest.map(
            "order response",
            mapping.rest_algo_order if conditional else mapping.rest_order,
            item,
            chain_of=self._chain_of,
        )
        if conditional:
            self._rest.note_algo_placed(order.order_id)
        self._account.apply_order(order)
        return self._account.orders.get(order.order_id, order)

    async def cancel(
        self, symbol: str, *, order_id: str | None, client_order_id: str | None
    ) -> Order:
        """Cancel an open order by either id; a conditional one is read back once cancelled."""
        client = self._rest.client
        if order_id is None and client_order_id is not None:
            known = self._account.order_with_client_id(client_order_id)
            order_id = known.order_id if known is not None else None
        if order_id is not None and order_id.startswith(mapping.ALGO_ORDER_PREFIX):
            algo_id = parse_order_id(order_id[len(mapping.ALGO_ORDER_PREFIX) :])
            await self._rest.read_back(order_id, client.futures_cancel_order, algoId=algo_id)
            item = await self._rest.read_back(order_id, client.futures_get_order, algoId=algo_id)
            order = self._rest.map(
                "algo order",
                mapping.rest_algo_order,
                item,
                chain_of=self._chain_of,
                previous=self._account.orders.get(order_id),
            )
        else:
            if order_id is not None:
                params: dict[str, Any] = {"orderId": parse_order_id(order_id)}
            elif client_order_id is not None:
                params = {"origClientOrderId": client_order_id}
            else:
                raise ExchangeError("bad_request", "give an order_id or a client_order_id")
            item = await self._rest.call(client.futures_cancel_order, symbol=symbol, **params)
            order = self._rest.map(
                "order response",
                mapping.rest_order,
                item,
                chain_of=self._chain_of,
                previous=self._account.orders.get(str(item.get("orderId"))),
            )
        self._account.apply_order(order)
        return self._account.orders.get(order.order_id, order)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        """Set the leverage of `symbol`; an open position shows it at once."""
        await self._rest.call(
            self._rest.client.futures_change_leverage, symbol=symbol, leverage=leverage
        )
        cached = self._account.positions.get(symbol)
        position = (
            None
            if cached is None
            else mapping.with_leverage(
                cached, leverage, self._mark_prices().get(symbol), self._clock.now_ms()
            )
        )
        if self._account.leverage_changed(symbol, leverage, position):
            self._refresh_positions()

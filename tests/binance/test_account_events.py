"""Account events Binance makes on its own, with the real python-binance against the double:
liquidation and auto-deleveraging fills, leverage and margin-mode changes made outside Ginie,
and the order filters read from exchangeInfo."""

from __future__ import annotations

import copy

import pytest

from binance import AsyncClient
from ginie_protocol.events import Order, Position, Trade
from ginie_server.clock import ManualClock
from ginie_server.exchange.base import OrderRequest, SymbolFilters
from ginie_server.exchange.binance import BinanceExchange
from ginie_server.exchange.paper import PaperExchange
from tests.binance import payloads
from tests.binance.conftest import ExchangeFactory, Recorder
from tests.binance.double import TAKER_FEE, BinanceDouble
from tests.harness import wait_for


async def open_long(exchange: BinanceExchange, recorder: Recorder, quantity: float) -> None:
    await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "MARKET", quantity, "gx-c1-entry")
    )
    await wait_for(lambda: any(p.size == quantity for p in recorder.positions))


def reported_before_flat(recorder: Recorder, item: Order | Trade) -> bool:
    """Whether `item` was reported before the position of its symbol went flat."""
    flat = next(
        i
        for i, reported in enumerate(recorder.account)
        if isinstance(reported, Position) and reported.symbol == item.symbol and reported.size == 0
    )
    return item in recorder.account[:flat]


@pytest.mark.parametrize(
    ("adl", "reason", "client_order_id"),
    [(False, "liquidation", "autoclose-"), (True, "auto-deleveraging", "adl_autoclose")],
)
async def test_liquidation_and_adl_fills_are_trades_with_their_fee_and_loss(
    double: BinanceDouble,
    make_exchange: ExchangeFactory,
    adl: bool,
    reason: str,
    client_order_id: str,
) -> None:
    exchange, recorder = await make_exchange()
    await open_long(exchange, recorder, 0.02)
    fill = await double.liquidate("BTCUSDT", 57_000.0, adl=adl)

    await wait_for(lambda: len(recorder.trades) == 2)
    trade = recorder.trades[-1]
    assert trade.client_order_id.startswith(client_order_id)
    assert (trade.side, trade.quantity, trade.price, trade.maker) == (
        "SELL",
        0.02,
        57_000.0,
        False,
    )
    assert trade.realized_pnl == pytest.approx(0.02 * (57_000 - 60_000))
    assert trade.fee == pytest.approx(0.02 * 57_000 * TAKER_FEE)
    assert trade.trade_id == f"BTCUSDT-{fill['id']}"
    await wait_for(lambda: not exchange.positions("alice"))
    closing = [o for o in recorder.orders if o.client_order_id == trade.client_order_id]
    assert [(o.status, o.type, o.reason) for o in closing] == [
        ("NEW", "MARKET", reason),
        ("FILLED", "MARKET", reason),
    ]
    # The listener learns the order's reason, and the fill, before the position goes flat.
    assert reported_before_flat(recorder, closing[-1])
    assert reported_before_flat(recorder, trade)
    (usdt,) = exchange.balances("alice")
    assert usdt.wallet_balance == pytest.approx(double.wallet)


async def test_a_liquidation_during_a_stream_gap_is_recovered_with_its_reason(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    await open_long(exchange, recorder, 0.01)
    double.block_user_streams()
    await double.drop_user_streams()
    await wait_for(lambda: not exchange.user_stream_connected)
    await double.liquidate("BTCUSDT", 55_000.0)
    double.unblock_user_streams()

    await wait_for(lambda: exchange.reconciles == 2)
    trade = recorder.trades[-1]
    assert trade.client_order_id.startswith("autoclose-")
    assert trade.realized_pnl == pytest.approx(0.01 * (55_000 - 60_000))
    liquidation = exchange_order(recorder, trade.order_id)
    assert (liquidation.status, liquidation.reason) == ("FILLED", "liquidation")
    assert exchange.positions("alice") == []


async def test_a_liquidation_fill_without_a_trade_id_is_taken_from_rest(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    await open_long(exchange, recorder, 0.01)
    fill = await double.liquidate("BTCUSDT", 56_000.0, numbered=False)
    await wait_for(lambda: len(recorder.trades) == 2)
    assert recorder.trades[-1].trade_id == f"BTCUSDT-{fill['id']}"
    assert recorder.trades[-1].fee == pytest.approx(0.01 * 56_000 * TAKER_FEE)
    await wait_for(lambda: exchange.reconciles == 2)
    assert len(recorder.trades) == 2


def exchange_order(recorder: Recorder, order_id: str) -> Order:
    return [o for o in recorder.orders if o.order_id == order_id][-1]


async def test_leverage_changed_outside_ginie_updates_the_position_and_its_margin(
    double: BinanceDouble, make_exchange: ExchangeFactory, manual_client: AsyncClient
) -> None:
    exchange, recorder = await make_exchange()
    await open_long(exchange, recorder, 0.01)
    # A new position learns its leverage and liquidation price from Binance's position risk.
    await wait_for(lambda: recorder.positions[-1].liquidation_price == 57_000.0)
    assert recorder.positions[-1].leverage == 20
    await manual_client.futures_change_leverage(symbol="BTCUSDT", leverage=5)

    await wait_for(lambda: recorder.positions[-1].leverage == 5)
    position = recorder.positions[-1]
    assert (position.size, position.margin) == (0.01, pytest.approx(0.01 * 60_000 / 5))
    # Then Binance's own figures: the liquidation price at the new leverage.
    await wait_for(lambda: recorder.positions[-1].liquidation_price == 48_000.0)
    (shown,) = exchange.positions("alice")
    assert (shown.leverage, shown.liquidation_price) == (5, 48_000.0)
    assert shown.margin == pytest.approx(0.01 * 60_000 / 5)


async def test_leverage_of_a_flat_symbol_is_kept_for_its_next_position(
    double: BinanceDouble, make_exchange: ExchangeFactory, manual_client: AsyncClient
) -> None:
    exchange, recorder = await make_exchange()
    # The stream brings the ACCOUNT_CONFIG_UPDATE before the fill's ACCOUNT_UPDATE.
    await manual_client.futures_change_leverage(symbol="ETHUSDT", leverage=7)
    await exchange.place_order("alice", OrderRequest("ETHUSDT", "SELL", "MARKET", 0.5, "gx-c2-e"))
    await wait_for(lambda: bool(recorder.positions))
    assert (recorder.positions[0].size, recorder.positions[0].leverage) == (-0.5, 7)
    assert recorder.positions[0].margin == pytest.approx(0.5 * 3_000 / 7)
    assert all(p.size != 0 for p in recorder.positions)


async def test_a_margin_mode_change_refreshes_the_positions(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    await open_long(exchange, recorder, 0.01)
    await wait_for(lambda: recorder.positions[-1].liquidation_price == 57_000.0)
    before = double.requests_to("/fapi/v3/positionRisk")
    double.positions["BTCUSDT"].leverage = 10
    change = copy.deepcopy(payloads.ACCOUNT_UPDATE_DOC)
    change["a"].update(m="MARGIN_TYPE_CHANGE", B=[])
    change["a"]["P"] = [
        {"s": "BTCUSDT", "pa": "0.01", "ep": "60000", "up": "0", "mt": "isolated", "iw": "30"}
    ]
    await double.inject_user(change)
    await wait_for(lambda: double.requests_to("/fapi/v3/positionRisk") == before + 1)
    await wait_for(lambda: recorder.positions[-1].liquidation_price == 54_000.0)


async def test_order_filters_come_from_exchange_info_and_are_refreshed(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, _ = await make_exchange(filters_refresh_s=0.05)
    assert exchange.filters("BTCUSDT") == SymbolFilters(
        symbol="BTCUSDT",
        tick_size=0.1,
        step_size=0.001,
        min_qty=0.001,
        min_notional=100.0,
        max_leverage=125,
    )
    assert exchange.filters("NOPEUSDT") is None
    double.max_leverage = 50
    await wait_for(lambda: max_leverage(exchange, "ETHUSDT") == 50)

    double.fail("/fapi/v1/leverageBracket")
    reads = double.requests_to("/fapi/v1/exchangeInfo")
    await wait_for(lambda: double.requests_to("/fapi/v1/exchangeInfo") >= reads + 2)
    assert max_leverage(exchange, "ETHUSDT") == 50


def max_leverage(exchange: BinanceExchange, symbol: str) -> int | None:
    filters = exchange.filters(symbol)
    return filters.max_leverage if filters is not None else None


def test_paper_exchange_answers_filters_from_its_symbol_specs() -> None:
    paper = PaperExchange(seed=1, speed=1.0, clock=ManualClock(), tick_seconds=None)
    assert paper.filters("XRPUSDT") == SymbolFilters(
        symbol="XRPUSDT",
        tick_size=0.0001,
        step_size=0.1,
        min_qty=0.1,
        min_notional=5.0,
        max_leverage=125,
    )
    assert paper.filters("NOPEUSDT") is None

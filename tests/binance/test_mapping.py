"""Binance payloads from the documentation become the right protocol models; bad ones are typed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ginie_protocol.events import Balance, Order, Position
from ginie_server.exchange import binance_mapping as bm
from ginie_server.exchange.base import SymbolFilters
from tests.binance import payloads as p


def chain_of(client_order_id: str) -> str | None:
    parts = client_order_id.split("-")
    return parts[1] if client_order_id.startswith("gx-") and len(parts) == 3 else None


def test_documented_order_update_new_maps_trailing_stop_to_stop_market() -> None:
    update = bm.order_trade_update(p.ORDER_TRADE_UPDATE_DOC, chain_of=chain_of)
    order = update.order
    assert update.trade is None
    assert update.event_time == 1568879465651
    assert order.order_id == "8886774"
    assert order.client_order_id == "TEST"
    assert order.chain_id is None
    assert (order.symbol, order.side, order.type, order.status) == (
        "BTCUSDT",
        "SELL",
        "STOP_MARKET",
        "NEW",
    )
    assert order.price is None
    assert order.stop_price == 7103.04
    assert order.quantity == 0.001
    assert order.filled_qty == 0.0
    assert order.avg_price is None
    assert order.reason is None
    assert order.created_at == order.updated_at == 1568879465650


def test_limit_order_lifecycle_new_partial_filled() -> None:
    new = bm.order_trade_update(p.LIMIT_NEW, chain_of=chain_of).order
    assert (new.type, new.status, new.price, new.stop_price, new.chain_id) == (
        "LIMIT",
        "NEW",
        7100.0,
        None,
        "c1",
    )

    partial = bm.order_trade_update(p.LIMIT_PARTIALLY_FILLED, chain_of=chain_of, previous=new)
    assert partial.order.status == "PARTIALLY_FILLED"
    assert partial.order.filled_qty == 0.004
    assert partial.order.avg_price == 7100.0
    assert partial.order.created_at == new.created_at
    assert partial.order.updated_at == 1568879466000
    assert partial.trade is not None
    assert partial.trade.model_dump() == {
        "trade_id": "BTCUSDT-5001",
        "order_id": "8886774",
        "client_order_id": "gx-c1-entry",
        "chain_id": "c1",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "price": 7100.0,
        "quantity": 0.004,
        "fee": 0.01136,
        "fee_asset": "USDT",
        "realized_pnl": 0.0,
        "maker": True,
        "time": 1568879466000,
    }

    filled = bm.order_trade_update(p.LIMIT_FILLED, chain_of=chain_of, previous=partial.order)
    assert filled.order.status == "FILLED"
    assert filled.order.filled_qty == 0.010
    assert filled.order.avg_price == 7099.70
    assert filled.trade is not None
    assert (filled.trade.trade_id, filled.trade.quantity, filled.trade.price) == (
        "BTCUSDT-5002",
        0.006,
        7099.5,
    )
    assert filled.trade.maker is False


def test_canceled_and_expired_orders_carry_no_trade() -> None:
    canceled = bm.order_trade_update(p.LIMIT_CANCELED, chain_of=chain_of)
    assert canceled.trade is None
    assert canceled.order.status == "CANCELED"
    assert canceled.order.reduce_only is True
    assert canceled.order.chain_id == "c2"

    expired = bm.order_trade_update(p.IOC_EXPIRED, chain_of=chain_of)
    assert expired.trade is None
    assert expired.order.status == "EXPIRED"
    assert expired.order.reason == "IOC not fully filled"
    assert expired.order.chain_id is None


def test_liquidation_fill_is_a_market_order_with_reason_and_realized_loss() -> None:
    update = bm.order_trade_update(p.LIQUIDATION_FILLED, chain_of=chain_of)
    assert update.order.type == "MARKET"
    assert update.order.status == "FILLED"
    assert update.order.reason == "liquidation"
    assert update.trade is not None
    assert update.trade.realized_pnl == -6.0
    assert update.trade.fee == 0.0325


def test_documented_liquidation_execution_is_a_trade_with_its_fee_and_loss() -> None:
    update = bm.order_trade_update(p.LIQUIDATION_CALCULATED, chain_of=chain_of)
    order, trade = update.order, update.trade
    assert (order.type, order.status, order.reason, order.chain_id) == (
        "MARKET",
        "FILLED",
        "liquidation",
        None,
    )
    assert trade is not None
    assert trade.model_dump() == {
        "trade_id": "BTCUSDT-5004",
        "order_id": "8886774",
        "client_order_id": "autoclose-1568879471000",
        "chain_id": None,
        "symbol": "BTCUSDT",
        "side": "SELL",
        "price": 6490.0,
        "quantity": 0.02,
        "fee": 0.0649,
        "fee_asset": "USDT",
        "realized_pnl": -14.6,
        "maker": False,
        "time": 1568879471000,
    }
    assert not update.unnumbered_fill


def test_auto_deleveraging_execution_is_a_trade_with_its_own_reason() -> None:
    update = bm.order_trade_update(p.ADL_CALCULATED)
    assert update.order.reason == "auto-deleveraging"
    assert update.trade is not None
    assert (update.trade.side, update.trade.quantity, update.trade.realized_pnl) == (
        "BUY",
        0.005,
        3.2,
    )
    assert update.trade.fee == 0.0134


def test_liquidation_order_before_its_fill_and_without_a_trade_id() -> None:
    new = p.order_update(
        c="autoclose-1", o="LIQUIDATION", ot="LIQUIDATION", x="NEW", X="NEW", sp="0"
    )
    placed = bm.order_trade_update(new)
    assert (placed.order.reason, placed.trade, placed.unnumbered_fill) == (
        "liquidation",
        None,
        False,
    )
    unnumbered = copy.deepcopy(p.LIQUIDATION_CALCULATED)
    unnumbered["o"]["t"] = 0
    update = bm.order_trade_update(unnumbered)
    assert (update.trade, update.unnumbered_fill, update.order.filled_qty) == (None, True, 0.02)
    no_fill = copy.deepcopy(p.LIQUIDATION_CALCULATED)
    no_fill["o"].update(l="0", X="NEW", z="0")
    assert bm.order_trade_update(no_fill).trade is None


def test_rest_orders_of_liquidations_and_settlements_carry_the_reason() -> None:
    item = {
        "avgPrice": "6490.00",
        "clientOrderId": "autoclose-1568879471000",
        "executedQty": "0.020",
        "orderId": 8886774,
        "origQty": "0.020",
        "origType": "LIQUIDATION",
        "price": "6480.00",
        "reduceOnly": False,
        "side": "SELL",
        "status": "FILLED",
        "stopPrice": "0",
        "symbol": "BTCUSDT",
        "time": 1568879471000,
        "type": "LIQUIDATION",
        "updateTime": 1568879471000,
    }
    assert bm.rest_order(item).reason == "liquidation"
    adl = bm.rest_order({**item, "clientOrderId": "adl_autoclose"})
    assert (adl.reason, adl.type) == ("auto-deleveraging", "MARKET")
    settled = {**item, "clientOrderId": "settlement_autoclose-9", "origType": "MARKET"}
    assert bm.rest_order(settled).reason == "settlement"
    assert bm.rest_order({**item, "clientOrderId": "x", "origType": "MARKET"}).reason is None


def test_documented_account_config_update_sets_leverage_and_margin() -> None:
    cached = Position(
        symbol="BTCUSDT",
        size=-0.5,
        entry_price=60_000,
        mark_price=61_000,
        unrealized_pnl=-500,
        leverage=10,
        liquidation_price=70_000,
        margin=3_050,
        updated_at=1611646737000,
    )
    update = bm.account_config_update(
        p.ACCOUNT_CONFIG_UPDATE_DOC,
        positions={"BTCUSDT": cached},
        mark_prices={"BTCUSDT": 62_000.0},
    )
    assert (update.symbol, update.leverage, update.multi_assets) == ("BTCUSDT", 25, None)
    assert update.event_time == 1611646737479
    assert update.position == cached.model_copy(
        update={
            "leverage": 25,
            "margin": pytest.approx(0.5 * 62_000 / 25),
            "mark_price": 62_000.0,
            "updated_at": 1611646737476,
        }
    )
    unknown = bm.account_config_update(p.ACCOUNT_CONFIG_UPDATE_DOC, positions={}, mark_prices={})
    assert (unknown.symbol, unknown.leverage, unknown.position) == ("BTCUSDT", 25, None)

    multi = bm.account_config_update(
        p.ACCOUNT_CONFIG_UPDATE_MULTI_ASSETS_DOC, positions={}, mark_prices={}
    )
    assert (multi.symbol, multi.leverage, multi.multi_assets) == (None, None, True)
    with pytest.raises(bm.BinancePayloadError, match="below 1"):
        bm.account_config_update(
            {**p.ACCOUNT_CONFIG_UPDATE_DOC, "ac": {"s": "BTCUSDT", "l": 0}},
            positions={},
            mark_prices={},
        )


def test_cross_position_margin_is_the_initial_margin() -> None:
    payload = copy.deepcopy(p.ACCOUNT_UPDATE_DOC)
    payload["a"]["P"] = [
        {
            "s": "ETHUSDT",
            "pa": "-2",
            "ep": "3000",
            "up": "-20",
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
        }
    ]
    update = bm.account_update(
        payload,
        positions={},
        balances={},
        mark_prices={"ETHUSDT": 3_010.0},
        leverage={"ETHUSDT": 5},
    )
    (position,) = update.positions
    assert (position.size, position.leverage) == (-2.0, 5)
    assert position.margin == pytest.approx(2 * 3_010 / 5)


def test_documented_account_update_nets_legs_and_keeps_cached_fields() -> None:
    cached_position = Position(
        symbol="BTCUSDT",
        size=5,
        entry_price=6500,
        mark_price=6600,
        unrealized_pnl=1,
        leverage=20,
        liquidation_price=5000,
        updated_at=1,
    )
    cached_balance = Balance(
        asset="USDT",
        wallet_balance=1,
        available_balance=1,
        unrealized_pnl=3.5,
        margin_used=7.25,
        updated_at=1,
    )
    update = bm.account_update(
        p.ACCOUNT_UPDATE_DOC,
        positions={"BTCUSDT": cached_position},
        balances={"USDT": cached_balance},
        mark_prices={"BTCUSDT": 6700.0},
    )
    assert update.reason == "ORDER"
    assert update.event_time == 1564745798939
    usdt, busd = update.balances
    assert (usdt.asset, usdt.wallet_balance, usdt.available_balance) == (
        "USDT",
        122624.12345678,
        100.12345678,
    )
    assert (usdt.unrealized_pnl, usdt.margin_used, usdt.updated_at) == (3.5, 7.25, 1564745798938)
    assert (busd.asset, busd.wallet_balance, busd.margin_used) == ("BUSD", 1.0, 0.0)
    (position,) = update.positions
    assert position.symbol == "BTCUSDT"
    assert position.size == 10.0
    assert position.entry_price == pytest.approx(6563.665)
    assert position.unrealized_pnl == pytest.approx(2850.212 - 1423.156)
    assert position.margin == pytest.approx(13200.70726908 + 6570.42511771)
    assert (position.mark_price, position.leverage, position.liquidation_price) == (
        6700.0,
        20,
        5000,
    )


def test_account_update_flat_position_without_cache() -> None:
    payload = copy.deepcopy(p.ACCOUNT_UPDATE_DOC)
    payload["a"]["P"] = payload["a"]["P"][:1]
    update = bm.account_update(payload, positions={}, balances={}, mark_prices={})
    (position,) = update.positions
    assert (position.size, position.entry_price, position.leverage) == (0.0, 0.0, 1)
    assert position.liquidation_price is None


def test_listen_key_expired_and_market_streams() -> None:
    assert bm.listen_key_expired(p.LISTEN_KEY_EXPIRED_DOC) == p.LISTEN_KEY_EXPIRED_DOC["listenKey"]

    mark = bm.market_event({"stream": "btcusdt@markPrice@1s", "data": p.MARK_PRICE_DOC})
    assert mark.model_dump() == {
        "symbol": "BTCUSDT",
        "mark_price": 11794.15,
        "index_price": 11784.62659091,
        "funding_rate": 0.00038167,
        "next_funding_time": 1562306400000,
        "time": 1562305380000,
    }
    kline = bm.market_event(p.KLINE_DOC)
    assert kline.model_dump() == {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "open_time": 1638747660000,
        "close_time": 1638747719999,
        "open": 0.001,
        "high": 0.0025,
        "low": 0.0015,
        "close": 0.002,
        "volume": 1000.0,
        "closed": False,
    }
    book = bm.market_event({"stream": "btcusdt@depth10@100ms", "data": p.DEPTH_DOC})
    assert book.symbol == "BTCUSDT"
    assert book.bids[0] == (7403.89, 0.002)
    assert book.asks[-1] == (7407.08, 2.475)
    assert book.time == 1571889248277


def test_algo_update_maps_conditional_orders() -> None:
    payload: dict[str, Any] = {
        "e": "ALGO_UPDATE",
        "T": 1750515742297,
        "E": 1750515742303,
        "o": {
            "caid": "gx-c3-sl",
            "aid": 2148719,
            "at": "CONDITIONAL",
            "o": "STOP_MARKET",
            "s": "BNBUSDT",
            "S": "SELL",
            "ps": "BOTH",
            "f": "GTC",
            "q": "0.01",
            "X": "NEW",
            "ai": "",
            "ap": "0.00000",
            "aq": "0.00000",
            "act": "0",
            "tp": "600.000",
            "p": "0",
            "R": True,
        },
    }
    order = bm.algo_update(payload, chain_of=chain_of)
    assert order.order_id == "algo-2148719"
    assert (order.client_order_id, order.chain_id, order.type, order.status) == (
        "gx-c3-sl",
        "c3",
        "STOP_MARKET",
        "NEW",
    )
    assert (order.stop_price, order.price, order.reduce_only) == (600.0, None, True)

    payload["o"].update(X="FINISHED", aq="0.01", ap="599.5", ai="9001")
    finished = bm.algo_update(payload, chain_of=chain_of, previous=order)
    assert (finished.status, finished.filled_qty, finished.avg_price) == ("FILLED", 0.01, 599.5)


def test_rest_items_map_to_models() -> None:
    order = bm.rest_order(
        {
            "clientOrderId": "gx-c1-entry",
            "cumQty": "0",
            "cumQuote": "0",
            "executedQty": "0",
            "orderId": 22542179,
            "avgPrice": "0.00000",
            "origQty": "10",
            "price": "9000",
            "reduceOnly": False,
            "side": "BUY",
            "positionSide": "BOTH",
            "status": "NEW",
            "stopPrice": "0",
            "closePosition": False,
            "symbol": "BTCUSDT",
            "timeInForce": "GTC",
            "type": "LIMIT",
            "origType": "LIMIT",
            "updateTime": 1566818724722,
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
        },
        chain_of=chain_of,
    )
    assert (order.order_id, order.chain_id, order.price, order.quantity) == (
        "22542179",
        "c1",
        9000.0,
        10.0,
    )
    assert order.created_at == 1566818724722

    positions = bm.rest_positions(
        [
            {
                "symbol": "ADAUSDT",
                "positionSide": "BOTH",
                "positionAmt": "30",
                "entryPrice": "0.385",
                "breakEvenPrice": "0.385077",
                "markPrice": "0.41047590",
                "unRealizedProfit": "0.76427700",
                "liquidationPrice": "0",
                "isolatedMargin": "0",
                "notional": "12.31427700",
                "marginAsset": "USDT",
                "isolatedWallet": "0",
                "initialMargin": "0.61571385",
                "maintMargin": "0.08004280",
                "positionInitialMargin": "0.61571385",
                "openOrderInitialMargin": "0",
                "adl": 2,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": 1720736417660,
            }
        ],
        previous={},
        now_ms=1,
    )
    (position,) = positions
    assert (position.size, position.leverage, position.liquidation_price) == (30.0, 20, None)

    (balance,) = bm.rest_balances(
        [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": "122607.35137903",
                "crossWalletBalance": "23.72469206",
                "crossUnPnl": "0.00000000",
                "availableBalance": "23.72469206",
                "maxWithdrawAmount": "23.72469206",
                "marginAvailable": True,
                "updateTime": 1617939110373,
            }
        ],
        now_ms=1,
    )
    assert balance.available_balance == 23.72469206
    assert balance.margin_used == pytest.approx(122607.35137903 - 23.72469206)

    trade = bm.rest_trade(
        p.REST_TRADE_DOC,
        client_order_id="gx-c9-tp1",
        chain_of=chain_of,
    )
    assert (trade.trade_id, trade.chain_id, trade.fee, trade.realized_pnl) == (
        "BTCUSDT-698759",
        "c9",
        0.0781901,
        -0.91539999,
    )

    klines = bm.rest_klines(
        "BTCUSDT",
        [
            [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
             "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
             "28.46694368", "17928899.62484339"],
            [1499644800000, "0.01577100", "0.01600000", "0.01570000", "0.01590000",
             "10.0", 1499644859999, "0", 1, "0", "0", "0"],
        ],
    )  # fmt: skip
    assert [k.closed for k in klines] == [True, False]
    assert klines[0].high == 0.8


MALFORMED: list[tuple[str, Any]] = [
    ("missing order object", {"e": "ORDER_TRADE_UPDATE", "E": 1}),
    ("order id not a number", p.order_update(i="abc")),
    ("unknown side", p.order_update(S="LONG")),
    ("unknown status", p.order_update(X="PENDING")),
    ("unknown execution type", p.order_update(x="SOMETHING")),
    ("price not numeric", p.order_update(p="seven")),
    ("quantity infinite", p.order_update(q="inf")),
    ("reduce-only not boolean", p.order_update(R="false")),
    ("not an object", ["ORDER_TRADE_UPDATE"]),
]


@pytest.mark.parametrize(("label", "payload"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_order_updates_raise_typed_errors(label: str, payload: Any) -> None:
    with pytest.raises(bm.BinancePayloadError) as caught:
        bm.order_trade_update(payload)
    assert caught.value.event == "ORDER_TRADE_UPDATE"
    assert "malformed ORDER_TRADE_UPDATE payload" in str(caught.value)


def test_malformed_account_and_market_payloads_raise_typed_errors() -> None:
    bad_account = copy.deepcopy(p.ACCOUNT_UPDATE_DOC)
    del bad_account["a"]["B"][0]["wb"]
    with pytest.raises(bm.BinancePayloadError, match="missing field 'wb'"):
        bm.account_update(bad_account, positions={}, balances={}, mark_prices={})

    bad_positions = copy.deepcopy(p.ACCOUNT_UPDATE_DOC)
    bad_positions["a"]["P"] = "none"
    with pytest.raises(bm.BinancePayloadError, match="'P' is not a list"):
        bm.account_update(bad_positions, positions={}, balances={}, mark_prices={})

    with pytest.raises(bm.BinancePayloadError, match="unknown event type"):
        bm.market_event({"e": "aggTrade", "s": "BTCUSDT"})
    with pytest.raises(bm.BinancePayloadError, match="bad level"):
        bm.market_event({**p.DEPTH_DOC, "b": [["1.0"]]})
    with pytest.raises(bm.BinancePayloadError, match="'E' is not an integer"):
        bm.market_event({**p.MARK_PRICE_DOC, "E": 1.5})


def test_stale_updates_never_overwrite_newer_state() -> None:
    base = dict(
        order_id="1",
        client_order_id="x",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=1.0,
        created_at=1,
    )
    filled = Order(**base, status="FILLED", filled_qty=1.0, updated_at=10)  # type: ignore[arg-type]
    new = Order(**base, status="NEW", filled_qty=0.0, updated_at=12)  # type: ignore[arg-type]
    partial = Order(**base, status="PARTIALLY_FILLED", filled_qty=0.5, updated_at=5)  # type: ignore[arg-type]
    assert bm.is_stale(filled, new)
    assert bm.is_stale(filled, partial)
    assert not bm.is_stale(partial, filled)
    assert not bm.is_stale(None, new)


def test_documented_exchange_info_and_brackets_give_the_order_filters() -> None:
    brackets = bm.leverage_brackets(p.LEVERAGE_BRACKET_DOC)
    assert brackets == {"ETHUSDT": 75}
    filters = bm.symbol_filters(p.EXCHANGE_INFO_DOC, max_leverage={"BLZUSDT": 50, **brackets})
    assert filters == {
        "BLZUSDT": SymbolFilters(
            symbol="BLZUSDT",
            tick_size=0.0001,
            step_size=1.0,
            min_qty=1.0,
            min_notional=5.0,
            max_leverage=50,
        )
    }
    assert bm.symbol_filters(p.EXCHANGE_INFO_DOC)["BLZUSDT"].max_leverage is None
    assert bm.request_weight_limit(p.EXCHANGE_INFO_DOC) == 2400
    assert bm.request_weight_limit({"symbols": []}) is None
    with pytest.raises(bm.BinancePayloadError, match="lacks its filters"):
        bm.symbol_filters({"symbols": [{"symbol": "X", "filters": []}]})
    with pytest.raises(bm.BinancePayloadError, match="has no brackets"):
        bm.leverage_brackets([{"symbol": "X", "brackets": []}])


def test_quantities_and_prices_floor_to_their_steps() -> None:
    assert bm.to_step(0.0129, 0.001) == "0.012"
    assert bm.to_step(1e-05, 0.001) == "0"
    assert bm.to_step(59_000.19, 0.1) == "59000.1"
    assert bm.to_step(17.9, 1.0) == "17"
    assert bm.to_step(1e-07, 0.0) == "0.0000001"

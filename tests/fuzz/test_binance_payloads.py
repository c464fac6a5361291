"""Exchange payloads under hostile input: every Binance mapping either returns protocol models
that survive the wire, or raises `BinancePayloadError`; nothing else escapes.

Each case starts from a payload shaped as Binance documents it and breaks one to three of its
fields: a wrong type, an absurd number, a missing key, a nested surprise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from ginie_protocol import decode_server, encode, make_event
from ginie_server.exchange import binance_mapping as bm
from tests.binance.payloads import (
    ACCOUNT_UPDATE_DOC,
    DEPTH_DOC,
    KLINE_DOC,
    LIMIT_PARTIALLY_FILLED,
    LISTEN_KEY_EXPIRED_DOC,
    MARK_PRICE_DOC,
    ORDER_TRADE_UPDATE_DOC,
    REST_TRADE_DOC,
)
from tests.fuzz.strategies import FUZZ, json_values

REST_ORDER: dict[str, Any] = {
    "avgPrice": "0.00000",
    "clientOrderId": "gx-c1-entry",
    "cumQuote": "0",
    "executedQty": "0",
    "orderId": 1917641,
    "origQty": "0.40",
    "origType": "LIMIT",
    "price": "9300",
    "reduceOnly": False,
    "side": "BUY",
    "positionSide": "BOTH",
    "status": "NEW",
    "stopPrice": "0",
    "closePosition": False,
    "symbol": "BTCUSDT",
    "time": 1579276756075,
    "timeInForce": "GTC",
    "type": "LIMIT",
    "updateTime": 1579276756075,
}

REST_ALGO_ORDER: dict[str, Any] = {
    "algoId": 2146760,
    "clientAlgoId": "gx-c1-sl",
    "algoType": "CONDITIONAL",
    "orderType": "STOP_MARKET",
    "symbol": "BTCUSDT",
    "side": "SELL",
    "quantity": "0.010",
    "algoStatus": "NEW",
    "triggerPrice": "7000",
    "price": "0",
    "reduceOnly": True,
    "createTime": 1750485492076,
    "updateTime": 1750485492076,
}

ALGO_UPDATE: dict[str, Any] = {
    "e": "ALGO_UPDATE",
    "T": 1750515742297,
    "E": 1750515742303,
    "o": {
        "caid": "gx-c1-sl",
        "aid": 2148719,
        "at": "CONDITIONAL",
        "o": "STOP_MARKET",
        "s": "BTCUSDT",
        "S": "SELL",
        "q": "0.010",
        "X": "FINISHED",
        "aq": "0.010",
        "ap": "6999.5",
        "tp": "7000",
        "p": "0",
        "R": True,
    },
}


REST_POSITIONS: list[Any] = [
    {
        "symbol": "BTCUSDT",
        "positionSide": "BOTH",
        "positionAmt": "0.010",
        "entryPrice": "7000.0",
        "markPrice": "7010.5",
        "unRealizedProfit": "0.105",
        "liquidationPrice": "6000",
        "notional": "70.105",
        "initialMargin": "7.0105",
        "updateTime": 1720736417660,
    }
]

REST_BALANCES: list[Any] = [
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
]

REST_KLINES: list[Any] = [
    [
        1499040000000,
        "0.01634790",
        "0.80000000",
        "0.01575800",
        "0.01577100",
        "148976.1",
        1499644799999,
    ],
    [
        1499644800000,
        "0.01577100",
        "0.01600000",
        "0.01500000",
        "0.01590000",
        "1000.0",
        1500249599999,
    ],
]

MAPPINGS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "order_trade_update": (LIMIT_PARTIALLY_FILLED, bm.order_trade_update),
    "order_trade_update_doc": (ORDER_TRADE_UPDATE_DOC, bm.order_trade_update),
    "account_update": (
        ACCOUNT_UPDATE_DOC,
        lambda p: bm.account_update(p, positions={}, balances={}, mark_prices={}),
    ),
    "algo_update": (ALGO_UPDATE, bm.algo_update),
    "listen_key_expired": (LISTEN_KEY_EXPIRED_DOC, bm.listen_key_expired),
    "market_mark_price": (MARK_PRICE_DOC, bm.market_event),
    "market_kline": (KLINE_DOC, bm.market_event),
    "market_depth": ({"stream": "btcusdt@depth5", "data": DEPTH_DOC}, bm.market_event),
    "rest_order": (REST_ORDER, bm.rest_order),
    "rest_algo_order": (REST_ALGO_ORDER, bm.rest_algo_order),
    "rest_trade": (REST_TRADE_DOC, lambda p: bm.rest_trade(p, client_order_id="gx-c1-entry")),
    "rest_positions": (REST_POSITIONS, lambda p: bm.rest_positions(p, previous={}, now_ms=1)),
    "rest_balances": (REST_BALANCES, lambda p: bm.rest_balances(p, now_ms=1)),
    "rest_klines": (REST_KLINES, lambda p: bm.rest_klines("BTCUSDT", p)),
}

hostile_values: st.SearchStrategy[Any] = json_values | st.sampled_from(
    [
        10**400,
        -(10**400),
        2**63,
        "²",
        "--5",
        "1e308",
        "-1e308",
        1e308,
        "NaN",
        "inf",
        "-Infinity",
        "1e999",
        "-",
        "",
        " ",
        "0x10",
        "1_000",
        True,
        None,
        [],
        {},
        [["1", "2", "3"]],
        [[None, None]],
    ]
)

Path = tuple[str | int, ...]


def paths_of(node: Any, prefix: Path = ()) -> list[Path]:
    """Every key or index path inside a JSON value, parents before children."""
    found: list[Path] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths_of(child, (*prefix, key)))
    return found


@st.composite
def broken(draw: st.DrawFn, seed: Any) -> Any:
    """A copy of `seed` with one to three of its fields replaced or removed."""
    payload = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = paths_of(payload)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(hostile_values))
    return payload


def survives_the_wire(model: BaseModel) -> None:
    """A mapped model must reach a console intact: finite numbers, decodable on the far side."""
    event = make_event(model, ts=1, seq=1, epoch="e")
    assert decode_server(encode(event)) == event


def check_mapping(name: str, payload: Any) -> None:
    _seed, mapping = MAPPINGS[name]
    try:
        result = mapping(payload)
    except bm.BinancePayloadError as exc:
        assert str(exc).startswith("malformed ")
        return
    outputs: list[Any] = []
    if isinstance(result, bm.OrderTradeUpdate):
        outputs = [result.order, result.trade]
    elif isinstance(result, bm.AccountUpdate):
        outputs = [*result.balances, *result.positions]
    elif isinstance(result, list):
        outputs = result
    elif isinstance(result, str):
        assert name == "listen_key_expired"
    else:
        outputs = [result]
    for model in outputs:
        if model is not None:
            survives_the_wire(model)


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_documented_payloads_map_cleanly(name: str) -> None:
    seed, mapping = MAPPINGS[name]
    assert mapping(copy.deepcopy(seed)) is not None
    check_mapping(name, copy.deepcopy(seed))


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_broken_payloads_raise_only_payload_errors(name: str) -> None:
    seed, _mapping = MAPPINGS[name]

    @FUZZ
    @given(broken(seed))
    def run(payload: Any) -> None:
        check_mapping(name, payload)

    run()


@FUZZ
@given(json_values)
def test_any_json_value_is_refused_with_a_payload_error(value: Any) -> None:
    for name in MAPPINGS:
        check_mapping(name, value)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("market_mark_price", ("p",), 10**400),
        ("rest_balances", (0, "balance"), -(10**400)),
        ("rest_order", ("updateTime",), "²"),
        ("rest_order", ("orderId",), "--5"),
        ("rest_positions", (0, "positionAmt"), "1e308"),
        ("account_update", ("a", "P", 1, "ep"), 1e308),
    ],
    ids=[
        "huge-int-number",
        "huge-negative-int",
        "superscript-digit",
        "double-minus",
        "overflowing-size",
        "overflowing-entry",
    ],
)
def test_pathological_numbers_are_payload_errors(name: str, path: Path, value: Any) -> None:
    seed, mapping = MAPPINGS[name]
    payload = copy.deepcopy(seed)
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(bm.BinancePayloadError):
        mapping(payload)


def test_a_margin_that_overflows_is_a_payload_error() -> None:
    payload = copy.deepcopy(REST_BALANCES)
    payload[0].update(balance="1e308", crossUnPnl="1e308")
    with pytest.raises(bm.BinancePayloadError, match="overflows"):
        bm.rest_balances(payload, now_ms=1)

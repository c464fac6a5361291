"""Binance USD-M payloads as Binance's documentation prints them, and variations of them.

`ORDER_TRADE_UPDATE_DOC`, `ACCOUNT_UPDATE_DOC`, `LISTEN_KEY_EXPIRED_DOC`, `MARK_PRICE_DOC`,
`KLINE_DOC` and `DEPTH_DOC` are the documented examples; the order lifecycle variations change
only the fields Binance documents as changing for that execution type.
"""

from __future__ import annotations

import copy
from typing import Any

ORDER_TRADE_UPDATE_DOC: dict[str, Any] = {
    "e": "ORDER_TRADE_UPDATE",
    "E": 1568879465651,
    "T": 1568879465650,
    "o": {
        "s": "BTCUSDT",
        "c": "TEST",
        "S": "SELL",
        "o": "TRAILING_STOP_MARKET",
        "f": "GTC",
        "q": "0.001",
        "p": "0",
        "ap": "0",
        "sp": "7103.04",
        "x": "NEW",
        "X": "NEW",
        "i": 8886774,
        "l": "0",
        "z": "0",
        "L": "0",
        "N": "USDT",
        "n": "0",
        "T": 1568879465650,
        "t": 0,
        "b": "0",
        "a": "9.91",
        "m": False,
        "R": False,
        "wt": "CONTRACT_PRICE",
        "ot": "TRAILING_STOP_MARKET",
        "ps": "LONG",
        "cp": False,
        "AP": "7476.89",
        "cr": "5.0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "rp": "0",
        "V": "EXPIRE_TAKER",
        "pm": "OPPONENT",
        "gtd": 0,
        "er": "0",
    },
}

ACCOUNT_UPDATE_DOC: dict[str, Any] = {
    "e": "ACCOUNT_UPDATE",
    "E": 1564745798939,
    "T": 1564745798938,
    "a": {
        "m": "ORDER",
        "B": [
            {"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"},
            {"a": "BUSD", "wb": "1.00000000", "cw": "0.00000000", "bc": "-49.12345678"},
        ],
        "P": [
            {
                "s": "BTCUSDT",
                "pa": "0",
                "ep": "0.00000",
                "bep": "0",
                "cr": "200",
                "up": "0",
                "mt": "isolated",
                "iw": "0.00000000",
                "ps": "BOTH",
            },
            {
                "s": "BTCUSDT",
                "pa": "20",
                "ep": "6563.66500",
                "bep": "6563.6",
                "cr": "0",
                "up": "2850.21200",
                "mt": "isolated",
                "iw": "13200.70726908",
                "ps": "LONG",
            },
            {
                "s": "BTCUSDT",
                "pa": "-10",
                "ep": "6563.86000",
                "bep": "6563.6",
                "cr": "-45.04000000",
                "up": "-1423.15600",
                "mt": "isolated",
                "iw": "6570.42511771",
                "ps": "SHORT",
            },
        ],
    },
}

LISTEN_KEY_EXPIRED_DOC: dict[str, Any] = {
    "e": "listenKeyExpired",
    "E": "1736996475556",
    "listenKey": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv",
}

MARK_PRICE_DOC: dict[str, Any] = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11794.15000000",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00038167",
    "T": 1562306400000,
}

KLINE_DOC: dict[str, Any] = {
    "e": "kline",
    "E": 1638747660000,
    "s": "BTCUSDT",
    "k": {
        "t": 1638747660000,
        "T": 1638747719999,
        "s": "BTCUSDT",
        "i": "1m",
        "f": 100,
        "L": 200,
        "o": "0.0010",
        "c": "0.0020",
        "h": "0.0025",
        "l": "0.0015",
        "v": "1000",
        "n": 100,
        "x": False,
        "q": "1.0000",
        "V": "500",
        "Q": "0.500",
        "B": "123456",
    },
}

DEPTH_DOC: dict[str, Any] = {
    "e": "depthUpdate",
    "E": 1571889248277,
    "T": 1571889248276,
    "s": "BTCUSDT",
    "U": 390497796,
    "u": 390497878,
    "pu": 390497794,
    "b": [["7403.89", "0.002"], ["7403.90", "3.906"], ["7404.00", "1.428"]],
    "a": [["7405.96", "3.340"], ["7406.63", "4.525"], ["7407.08", "2.475"]],
}


def order_update(**changes: Any) -> dict[str, Any]:
    """The documented ORDER_TRADE_UPDATE with fields of its order object `o` replaced."""
    payload = copy.deepcopy(ORDER_TRADE_UPDATE_DOC)
    payload["o"].update(changes)
    return payload


LIMIT_NEW = order_update(
    c="gx-c1-entry", o="LIMIT", ot="LIMIT", p="7100.00", sp="0", q="0.010", S="BUY", ps="BOTH"
)
LIMIT_PARTIALLY_FILLED = order_update(
    c="gx-c1-entry",
    o="LIMIT",
    ot="LIMIT",
    p="7100.00",
    sp="0",
    q="0.010",
    S="BUY",
    ps="BOTH",
    x="TRADE",
    X="PARTIALLY_FILLED",
    l="0.004",
    z="0.004",
    L="7100.00",
    ap="7100.00",
    n="0.01136",
    t=5001,
    m=True,
    T=1568879466000,
)
LIMIT_FILLED = order_update(
    c="gx-c1-entry",
    o="LIMIT",
    ot="LIMIT",
    p="7100.00",
    sp="0",
    q="0.010",
    S="BUY",
    ps="BOTH",
    x="TRADE",
    X="FILLED",
    l="0.006",
    z="0.010",
    L="7099.50",
    ap="7099.70",
    n="0.01703880",
    t=5002,
    m=False,
    rp="0",
    T=1568879467000,
)
LIMIT_CANCELED = order_update(
    c="gx-c2-tp1",
    o="LIMIT",
    ot="LIMIT",
    p="7300.00",
    sp="0",
    q="0.010",
    R=True,
    ps="BOTH",
    x="CANCELED",
    X="CANCELED",
    T=1568879468000,
)
IOC_EXPIRED = order_update(
    c="manual-ioc",
    o="LIMIT",
    ot="LIMIT",
    f="IOC",
    p="7000.00",
    sp="0",
    q="0.010",
    ps="BOTH",
    x="EXPIRED",
    X="EXPIRED",
    er="2",
    T=1568879469000,
)
LIQUIDATION_FILLED = order_update(
    c="autoclose-1568879470000",
    o="LIQUIDATION",
    ot="LIQUIDATION",
    f="IOC",
    p="6500.00",
    sp="0",
    q="0.010",
    ps="BOTH",
    x="TRADE",
    X="FILLED",
    l="0.010",
    z="0.010",
    L="6500.00",
    ap="6500.00",
    n="0.0325",
    t=5003,
    rp="-6.00",
    T=1568879470000,
)

REST_TRADE_DOC: dict[str, Any] = {
    "buyer": False,
    "commission": "-0.07819010",
    "commissionAsset": "USDT",
    "id": 698759,
    "maker": False,
    "orderId": 25851813,
    "price": "7819.01",
    "qty": "0.002",
    "quoteQty": "15.63802",
    "realizedPnl": "-0.91539999",
    "side": "SELL",
    "positionSide": "SHORT",
    "symbol": "BTCUSDT",
    "time": 1569514978020,
}
"""A fill as `GET /fapi/v1/userTrades` returns it (Binance's documented example)."""

LIQUIDATION_CALCULATED = order_update(
    c="autoclose-1568879471000",
    o="LIQUIDATION",
    ot="LIQUIDATION",
    f="IOC",
    p="6480.00",
    sp="0",
    q="0.020",
    ps="BOTH",
    x="CALCULATED",
    X="FILLED",
    l="0.020",
    z="0.020",
    L="6490.00",
    ap="6490.00",
    n="0.0649",
    N="USDT",
    t=5004,
    m=False,
    rp="-14.60",
    T=1568879471000,
)
"""A liquidation: the documented ORDER_TRADE_UPDATE with the fields Binance documents for it
(client id `autoclose-...`, order type LIQUIDATION, execution type CALCULATED) and its fill."""

ADL_CALCULATED = order_update(
    c="adl_autoclose",
    o="LIQUIDATION",
    ot="LIQUIDATION",
    f="IOC",
    p="0",
    sp="0",
    q="0.005",
    S="BUY",
    ps="BOTH",
    x="CALCULATED",
    X="FILLED",
    l="0.005",
    z="0.005",
    L="6700.00",
    ap="6700.00",
    n="0.01340",
    N="USDT",
    t=5005,
    m=False,
    rp="3.20",
    T=1568879472000,
)
"""An auto-deleveraging close (client id `adl_autoclose`) of a profitable short. Binance does not
document the order type such a close carries; the client id decides its reason."""

ACCOUNT_CONFIG_UPDATE_DOC: dict[str, Any] = {
    "e": "ACCOUNT_CONFIG_UPDATE",
    "E": 1611646737479,
    "T": 1611646737476,
    "ac": {"s": "BTCUSDT", "l": 25},
}

ACCOUNT_CONFIG_UPDATE_MULTI_ASSETS_DOC: dict[str, Any] = {
    "e": "ACCOUNT_CONFIG_UPDATE",
    "E": 1611646737479,
    "T": 1611646737476,
    "ai": {"j": True},
}

EXCHANGE_INFO_DOC: dict[str, Any] = {
    "exchangeFilters": [],
    "rateLimits": [
        {"interval": "MINUTE", "intervalNum": 1, "limit": 2400, "rateLimitType": "REQUEST_WEIGHT"},
        {"interval": "MINUTE", "intervalNum": 1, "limit": 1200, "rateLimitType": "ORDERS"},
    ],
    "serverTime": 1565613908500,
    "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "0"}],
    "symbols": [
        {
            "symbol": "BLZUSDT",
            "pair": "BLZUSDT",
            "contractType": "PERPETUAL",
            "status": "TRADING",
            "baseAsset": "BLZ",
            "quoteAsset": "USDT",
            "marginAsset": "USDT",
            "pricePrecision": 5,
            "quantityPrecision": 0,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "maxPrice": "300",
                    "minPrice": "0.0001",
                    "tickSize": "0.0001",
                },
                {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": "1", "stepSize": "1"},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "maxQty": "590119",
                    "minQty": "1",
                    "stepSize": "1",
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": "5.0"},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.1500",
                    "multiplierDown": "0.8500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
    ],
    "timezone": "UTC",
}
"""GET /fapi/v1/exchangeInfo as documented, cut to one symbol."""

LEVERAGE_BRACKET_DOC: list[dict[str, Any]] = [
    {
        "symbol": "ETHUSDT",
        "notionalCoef": 1.50,
        "brackets": [
            {
                "bracket": 1,
                "initialLeverage": 75,
                "notionalCap": 10000,
                "notionalFloor": 0,
                "maintMarginRatio": 0.0065,
                "cum": 0.0,
            },
            {
                "bracket": 2,
                "initialLeverage": 50,
                "notionalCap": 50000,
                "notionalFloor": 10000,
                "maintMarginRatio": 0.01,
                "cum": 35.0,
            },
        ],
    }
]
"""GET /fapi/v1/leverageBracket as documented (a second bracket added)."""

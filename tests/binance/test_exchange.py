"""BinanceExchange with the real python-binance against the double: orders, streams, health."""

from __future__ import annotations

import logging

import pytest

from ginie_protocol.events import Kline, MarkPrice, OrderBook
from ginie_server.clock import ManualClock
from ginie_server.exchange.base import ExchangeError, OrderRequest
from ginie_server.exchange.binance import (
    DEFAULT_FUTURES_URL,
    TESTNET_FUTURES_URL,
    TESTNET_STREAM_URL,
    binance_exchange_from_env,
    ginie_chain_of,
)
from tests.binance import payloads
from tests.binance.conftest import ExchangeFactory
from tests.binance.double import BinanceDouble
from tests.harness import wait_for


async def test_place_and_cancel_with_client_order_ids_and_weight_reported(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    limit = await exchange.place_order(
        "alice",
        OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.01, "gx-c1-entry", price=59_000.0),
    )
    assert (limit.status, limit.client_order_id, limit.chain_id, limit.price) == (
        "NEW",
        "gx-c1-entry",
        "c1",
        59_000.0,
    )
    assert double.orders[int(limit.order_id)].client_order_id == "gx-c1-entry"
    assert exchange.open_orders("alice") == [limit]
    assert exchange.open_orders("bob") == []

    stop = await exchange.place_order(
        "alice",
        OrderRequest(
            "BTCUSDT",
            "SELL",
            "STOP_MARKET",
            0.01,
            "gx-c1-sl",
            stop_price=58_000.0,
            reduce_only=True,
        ),
    )
    assert (stop.type, stop.stop_price, stop.reduce_only, stop.chain_id) == (
        "STOP_MARKET",
        58_000.0,
        True,
        "c1",
    )
    assert stop.order_id.startswith("algo-")

    canceled = await exchange.cancel_order("alice", "BTCUSDT", client_order_id="gx-c1-entry")
    assert canceled.status == "CANCELED"
    canceled_stop = await exchange.cancel_order("alice", "BTCUSDT", order_id=stop.order_id)
    assert canceled_stop.status == "CANCELED"
    assert exchange.open_orders("alice") == []

    await wait_for(lambda: recorder.order_states("gx-c1-entry") == ["NEW", "CANCELED"])
    assert recorder.order_states("gx-c1-sl") == ["NEW", "CANCELED"]
    assert recorder.users == {"alice"}

    latest = recorder.health[-1]
    assert latest.exchange == "binance"
    assert latest.weight_used > 0
    assert latest.weight_used == int(double._weight_used)
    assert latest.latency_ms is not None and latest.latency_ms >= 0
    assert latest.status == "ok"


async def test_quantities_and_prices_follow_the_symbol_steps(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, _ = await make_exchange()
    order = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.0129, "g-c4-E", price=59_000.1234)
    )
    assert (order.quantity, order.price) == (0.012, 59_000.1)
    with pytest.raises(ExchangeError) as small:
        await exchange.place_order(
            "alice", OrderRequest("BTCUSDT", "BUY", "MARKET", 4e-4, "g-c4-X")
        )
    assert small.value.code == "bad_quantity"
    assert len(double.orders) == 1


async def test_binance_errors_become_exchange_errors(make_exchange: ExchangeFactory) -> None:
    exchange, recorder = await make_exchange()
    with pytest.raises(ExchangeError) as invalid:
        await exchange.place_order("alice", OrderRequest("NOPEUSDT", "BUY", "MARKET", 1, "gx-a-b"))
    assert invalid.value.code == "invalid_symbol"
    assert invalid.value.message == "Invalid symbol. (Binance -1121)"

    with pytest.raises(ExchangeError) as margin:
        await exchange.place_order("alice", OrderRequest("BTCUSDT", "BUY", "MARKET", 50, "gx-a-c"))
    assert margin.value.code == "insufficient_margin"
    assert "Margin is insufficient" in margin.value.message
    assert recorder.health[-1].status == "degraded"
    assert recorder.health[-1].last_error == margin.value.message

    with pytest.raises(ExchangeError) as unknown:
        await exchange.cancel_order("alice", "BTCUSDT", order_id="12345")
    assert unknown.value.code == "unknown_order"

    with pytest.raises(ExchangeError) as not_served:
        await exchange.place_order("bob", OrderRequest("BTCUSDT", "BUY", "MARKET", 1, "gx-a-d"))
    assert not_served.value.code == "not_served"


async def test_fills_on_the_stream_reach_the_listener(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    await exchange.set_leverage("alice", "BTCUSDT", 10)
    order = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.02, "gx-c7-entry", price=59_500.0)
    )
    await double.fill(int(order.order_id), quantity=0.005)
    await double.fill(int(order.order_id))

    await wait_for(lambda: len(recorder.trades) == 2)
    assert [t.quantity for t in recorder.trades] == [0.005, 0.015]
    assert {t.chain_id for t in recorder.trades} == {"c7"}
    assert recorder.order_states("gx-c7-entry") == ["NEW", "PARTIALLY_FILLED", "FILLED"]
    await wait_for(lambda: bool(exchange.positions("alice")))
    (position,) = exchange.positions("alice")
    assert (position.symbol, position.size, position.entry_price, position.leverage) == (
        "BTCUSDT",
        0.02,
        59_500.0,
        10,
    )
    (usdt,) = exchange.balances("alice")
    assert usdt.wallet_balance == pytest.approx(10_000 - 0.02 * 59_500 * 0.0002)


async def test_market_streams_feed_mark_price_klines_and_depth(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    assert len(exchange.klines("BTCUSDT")) == 30
    assert exchange.klines("BTCUSDT")[-1].closed is False
    await wait_for(lambda: double.market_stream_count == 2)
    await double.push_market("ETHUSDT", price=3_100.0)
    await wait_for(lambda: len(recorder.market) == 3)
    kinds = {type(m) for m in recorder.market}
    assert kinds == {MarkPrice, Kline, OrderBook}
    mark = exchange.mark_price("ETHUSDT")
    assert mark is not None and mark.mark_price == 3_100.0
    book = exchange.order_book("ETHUSDT")
    assert book is not None and len(book.bids) == 10 and book.bids[0][0] < 3_100 < book.asks[0][0]
    assert exchange.klines("ETHUSDT")[-1].close == 3_100.0


async def test_malformed_payloads_are_counted_and_the_stream_goes_on(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    await double.inject_user(payloads.order_update(S="SIDEWAYS"))
    await double.inject_user({"e": "ACCOUNT_UPDATE", "E": 1, "a": "broken"})
    await double.inject_market("btcusdt@markPrice@1s", {"e": "markPriceUpdate", "s": "BTCUSDT"})
    await wait_for(lambda: exchange.malformed_payloads == 3)
    assert "ORDER_TRADE_UPDATE" in (recorder.health[-1].last_error or "") or any(
        "malformed" in (h.last_error or "") for h in recorder.health
    )
    await double.inject_user(payloads.LIMIT_NEW)
    await wait_for(lambda: recorder.order_states("gx-c1-entry") == ["NEW"])
    assert double.user_stream_count == 1


async def test_keepalive_extends_the_listen_key(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    await make_exchange(keepalive_interval_s=0.1)
    await wait_for(lambda: double.counters.keepalives >= 2)
    assert double.counters.user_connections == 1


async def test_secrets_stay_out_of_repr_and_logs(
    double: BinanceDouble, make_exchange: ExchangeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    exchange, _ = await make_exchange()
    await double.rotate_listen_key()
    await wait_for(lambda: exchange.user_stream_connects == 2)
    with pytest.raises(ExchangeError):
        await exchange.place_order("alice", OrderRequest("BTCUSDT", "BUY", "MARKET", 99, "x-1"))
    text = repr(exchange) + caplog.text + str(vars(exchange).get("__dict__", ""))
    assert double.api_key not in text
    assert double.api_secret not in text
    assert "BinanceExchange(owner='alice'" in repr(exchange)


def test_factory_reads_keys_and_endpoints_from_the_environment() -> None:
    clock = ManualClock()
    with pytest.raises(ExchangeError) as missing:
        binance_exchange_from_env("demo", False, clock, environ={})
    assert missing.value.code == "missing_api_key"

    keys = {"GINIE_BINANCE_API_KEY": "k", "GINIE_BINANCE_API_SECRET": "s"}
    mainnet = binance_exchange_from_env("demo", False, clock, environ=keys)
    assert (mainnet.futures_url, mainnet.stream_url) == (
        DEFAULT_FUTURES_URL,
        "wss://fstream.binance.com/",
    )
    testnet = binance_exchange_from_env("demo", True, clock, environ=keys)
    assert (testnet.futures_url, testnet.stream_url) == (TESTNET_FUTURES_URL, TESTNET_STREAM_URL)
    overridden = binance_exchange_from_env(
        "carol",
        True,
        clock,
        environ={
            **keys,
            "GINIE_BINANCE_FUTURES_URL": "http://127.0.0.1:9/fapi",
            "GINIE_BINANCE_STREAM_URL": "ws://127.0.0.1:9",
        },
    )
    assert (overridden.futures_url, overridden.stream_url) == (
        "http://127.0.0.1:9/fapi",
        "ws://127.0.0.1:9/",
    )
    assert overridden.serves("carol") and not overridden.serves("demo")


def test_chains_follow_the_client_order_ids_the_engine_sets() -> None:
    assert ginie_chain_of("g-7f3a-E") == "7f3a"
    assert ginie_chain_of("g-7f3a-TP1") == "7f3a"
    assert ginie_chain_of("manual-1") is None
    assert ginie_chain_of("g--E") is None

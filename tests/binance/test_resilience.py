"""The Binance link under REST faults, with the real python-binance against the double: a
failing endpoint degrades the reconcile but not the live stream, rate limits are obeyed, and
conditional orders the algo service does not know yet are asked for again."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ginie_protocol.events import ApiHealth
from ginie_server.exchange.base import ExchangeError, OrderRequest
from ginie_server.exchange.binance import BinanceExchange
from tests.binance.conftest import ExchangeFactory, Recorder
from tests.binance.double import BinanceDouble
from tests.harness import wait_for

RECONCILE_ENDPOINTS = [
    "/fapi/v1/openOrders",
    "/fapi/v1/openAlgoOrders",
    "/fapi/v1/userTrades",
    "/fapi/v3/positionRisk",
    "/fapi/v3/balance",
]


def latest(recorder: Recorder) -> ApiHealth:
    return recorder.health[-1]


def failing(recorder: Recorder, path: str) -> bool:
    """Whether the latest health is degraded, naming the failing call `GET path`."""
    health = latest(recorder)
    return health.status == "degraded" and (health.last_error or "").startswith(f"GET {path}: ")


async def wait_quietly(double: BinanceDouble, held: int, blocked: Callable[[], bool]) -> None:
    """Wait until `blocked()` is false, checking that the double got no request meanwhile
    (beyond the `held` it had)."""

    def quiet_until_unblocked() -> bool:
        if blocked():
            assert len(double.counters.requests) == held, "a request went out during a back-off"
            return False
        return True

    await wait_for(quiet_until_unblocked)


async def reconnect(double: BinanceDouble, exchange: BinanceExchange) -> None:
    """Drop the user stream (as at the 24-hour mark) and wait until it is back."""
    connects = exchange.user_stream_connects
    await double.drop_user_streams()
    await wait_for(lambda: exchange.user_stream_connects == connects + 1)


@pytest.mark.parametrize("path", RECONCILE_ENDPOINTS)
async def test_a_failing_endpoint_degrades_the_reconcile_but_not_the_live_stream(
    double: BinanceDouble, make_exchange: ExchangeFactory, path: str
) -> None:
    exchange, recorder = await make_exchange()
    double.fail(path, 503)
    await reconnect(double, exchange)
    await wait_for(lambda: failing(recorder, path))
    assert latest(recorder).last_error == f"GET {path}: HTTP 503 Service Unavailable"
    assert not exchange.reconciled

    # Live orders and fills flow all the while.
    order = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.01, "gx-c1-entry", price=59_000.0)
    )
    await double.fill(int(order.order_id))
    await wait_for(lambda: recorder.order_states("gx-c1-entry") == ["NEW", "FILLED"])
    await wait_for(lambda: len(recorder.trades) == 1)
    # The reconcile keeps trying, with backoff, and the health stays degraded.
    tries = double.requests_to(path)
    await wait_for(lambda: double.requests_to(path) >= tries + 2)
    assert failing(recorder, path)

    double.heal(path)
    await wait_for(lambda: exchange.reconciled)
    await wait_for(lambda: latest(recorder).status == "ok")
    assert latest(recorder).last_error is None
    assert exchange.reconciles == 2
    assert len(recorder.trades) == 1


async def test_start_with_a_failing_endpoint_returns_at_once_and_streams(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    double.fail("/fapi/v3/positionRisk", 503)
    started = time.monotonic()
    exchange, recorder = await make_exchange(start_timeout_s=30.0)
    assert time.monotonic() - started < 10
    assert exchange.user_stream_connected and not exchange.reconciled
    assert failing(recorder, "/fapi/v3/positionRisk")
    await double.inject_user(order_new_event(double))
    await wait_for(lambda: recorder.order_states("manual-1") == ["NEW"])
    double.heal("/fapi/v3/positionRisk")
    await wait_for(lambda: exchange.reconciles == 1 and latest(recorder).status == "ok")


def order_new_event(double: BinanceDouble) -> dict[str, object]:
    """An ORDER_TRADE_UPDATE of a new order placed outside Ginie, as the double sends it."""
    order = double._new_order(
        symbol="BTCUSDT",
        side="BUY",
        type_="LIMIT",
        quantity=0.001,
        price=50_000.0,
        stop_price=0.0,
        reduce_only=False,
        client_order_id="manual-1",
    )
    return double._order_event(order, "NEW")


@pytest.mark.parametrize(
    ("status", "health", "said", "code"),
    [
        (429, "degraded", "rate limited (HTTP 429)", "rate_limited"),
        (418, "down", "IP banned (HTTP 418)", "ip_banned"),
    ],
)
async def test_429_and_418_hold_every_request_back_as_retry_after_says(
    double: BinanceDouble,
    make_exchange: ExchangeFactory,
    status: int,
    health: str,
    said: str,
    code: str,
) -> None:
    exchange, recorder = await make_exchange()
    double.fail("/fapi/v3/positionRisk", status, retry_after=0.5, times=1)
    await reconnect(double, exchange)
    await wait_for(lambda: latest(recorder).status == health)
    assert (latest(recorder).last_error or "").startswith(said)
    held = len(double.counters.requests)

    with pytest.raises(ExchangeError) as refused:
        await exchange.place_order("alice", OrderRequest("BTCUSDT", "BUY", "MARKET", 0.01, "x-1"))
    assert refused.value.code == code
    # A stream that drops meanwhile waits for the end of the back-off to ask for a listenKey.
    await double.drop_user_streams()

    await wait_quietly(double, held, lambda: exchange.rate_limits.wait_s(time.monotonic()) > 0)
    await wait_for(lambda: exchange.reconciled and latest(recorder).status == "ok")


async def test_request_weight_and_order_counts_are_read_from_every_response(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    assert exchange.rate_limits.weight_limit == 2400
    await exchange.place_order("alice", OrderRequest("BTCUSDT", "BUY", "MARKET", 0.01, "gx-c1-e"))
    await exchange.place_order(
        "alice",
        OrderRequest("BTCUSDT", "SELL", "STOP_MARKET", 0.01, "gx-c1-sl", stop_price=55_000.0),
    )
    assert exchange.rate_limits.order_counts == {"10S": 2, "1M": 2}
    assert latest(recorder).weight_used == exchange.rate_limits.weight_used == double._weight_used
    assert latest(recorder).weight_limit == 2400


async def test_a_new_algo_order_that_reads_back_unknown_is_asked_again(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    double.hide_new_algo_orders(2)
    stop = await exchange.place_order(
        "alice",
        OrderRequest("BTCUSDT", "SELL", "STOP_MARKET", 0.01, "gx-c1-sl", stop_price=55_000.0),
    )
    canceled = await exchange.cancel_order("alice", "BTCUSDT", order_id=stop.order_id)
    assert canceled.status == "CANCELED"
    # Placed, cancelled twice as unknown, cancelled, read back.
    assert double.requests_to("/fapi/v1/algoOrder") == 5
    assert latest(recorder).status == "ok"

    # A reconcile right after placing one: it is missing from openAlgoOrders, and read back.
    await exchange.place_order(
        "alice",
        OrderRequest("BTCUSDT", "SELL", "STOP_MARKET", 0.01, "gx-c2-sl", stop_price=54_000.0),
    )
    await reconnect(double, exchange)
    await wait_for(lambda: exchange.reconciles == 2)
    assert recorder.order_states("gx-c2-sl") == ["NEW"]
    assert latest(recorder).status == "ok"


async def test_an_algo_order_still_unknown_after_the_window_is_a_failure(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange(algo_visibility_s=0.2)
    double.hide_new_algo_orders(10_000)
    stop = await exchange.place_order(
        "alice",
        OrderRequest("BTCUSDT", "SELL", "STOP_MARKET", 0.01, "gx-c1-sl", stop_price=55_000.0),
    )
    with pytest.raises(ExchangeError) as unknown:
        await exchange.cancel_order("alice", "BTCUSDT", order_id=stop.order_id)
    assert unknown.value.code == "unknown_order"
    assert latest(recorder).status == "degraded"

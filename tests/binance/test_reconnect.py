"""The user data stream comes back by itself, and the REST reconcile recovers the gap."""

from __future__ import annotations

import pytest

from binance import AsyncClient
from ginie_server.exchange.base import OrderRequest
from tests.binance.conftest import ExchangeFactory
from tests.binance.double import BinanceDouble
from tests.harness import wait_for


async def test_fills_during_a_gap_with_a_rotated_listen_key_reach_the_listener(
    double: BinanceDouble, make_exchange: ExchangeFactory, manual_client: AsyncClient
) -> None:
    exchange, recorder = await make_exchange()
    entry = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.01, "gx-c1-entry", price=59_000.0)
    )
    short = await exchange.place_order(
        "alice", OrderRequest("ETHUSDT", "SELL", "LIMIT", 0.02, "gx-c2-entry", price=3_100.0)
    )
    resting = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "BUY", "LIMIT", 0.01, "gx-c3-entry", price=50_000.0)
    )
    first_key = double.listen_key

    double.block_user_streams()
    await double.rotate_listen_key()
    await wait_for(lambda: not exchange.user_stream_connected)

    await double.fill(int(entry.order_id))
    await double.fill(int(short.order_id), quantity=0.005)
    await manual_client.futures_cancel_order(symbol="BTCUSDT", orderId=int(resting.order_id))
    await manual_client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001", newClientOrderId="manual-1"
    )
    assert recorder.trades == []

    double.unblock_user_streams()
    await wait_for(lambda: len(recorder.trades) == 3)
    await wait_for(lambda: exchange.reconciles == 2)

    assert exchange.user_stream_connected and exchange.reconciled
    assert double.listen_key not in (None, first_key)
    assert double.counters.user_connections == 2
    by_client = {t.client_order_id: t for t in recorder.trades}
    assert set(by_client) == {"gx-c1-entry", "gx-c2-entry", "manual-1"}
    assert (by_client["gx-c1-entry"].chain_id, by_client["gx-c1-entry"].quantity) == ("c1", 0.01)
    assert (by_client["gx-c2-entry"].side, by_client["gx-c2-entry"].quantity) == ("SELL", 0.005)
    assert by_client["manual-1"].chain_id is None
    assert recorder.order_states("gx-c1-entry") == ["NEW", "FILLED"]
    assert recorder.order_states("gx-c2-entry") == ["NEW", "PARTIALLY_FILLED"]
    assert recorder.order_states("gx-c3-entry") == ["NEW", "CANCELED"]
    assert recorder.order_states("manual-1") == ["FILLED"]

    sizes = {p.symbol: p.size for p in exchange.positions("alice")}
    assert sizes == {"BTCUSDT": pytest.approx(0.011), "ETHUSDT": pytest.approx(-0.005)}
    (usdt,) = exchange.balances("alice")
    assert usdt.wallet_balance == pytest.approx(double.wallet)
    assert recorder.balances[-1] == usdt

    await double.fill(int(short.order_id))
    await wait_for(lambda: len(recorder.trades) == 4)
    assert recorder.order_states("gx-c2-entry") == ["NEW", "PARTIALLY_FILLED", "FILLED"]
    assert len({t.trade_id for t in recorder.trades}) == 4


async def test_listen_key_expired_opens_a_new_stream_with_a_new_key(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    first_key = double.listen_key
    await double.expire_listen_key()
    await wait_for(lambda: exchange.user_stream_connects == 2 and exchange.reconciles == 2)
    await wait_for(lambda: double.user_stream_count == 1)
    assert double.listen_key not in (None, first_key)

    order = await exchange.place_order(
        "alice", OrderRequest("BTCUSDT", "SELL", "MARKET", 0.003, "gx-c5-entry")
    )
    await wait_for(lambda: len(recorder.trades) == 1)
    assert recorder.trades[0].order_id == order.order_id
    assert recorder.trades[0].chain_id == "c5"


async def test_the_daily_disconnect_reconnects_on_the_same_key_and_reconciles(
    double: BinanceDouble, make_exchange: ExchangeFactory
) -> None:
    exchange, recorder = await make_exchange()
    key = double.listen_key
    order = await exchange.place_order(
        "alice", OrderRequest("ETHUSDT", "BUY", "LIMIT", 0.1, "gx-c6-entry", price=2_990.0)
    )
    await double.drop_user_streams()
    await wait_for(lambda: exchange.user_stream_connects == 2 and exchange.reconciles == 2)
    assert double.listen_key == key
    await double.fill(int(order.order_id))
    await wait_for(lambda: recorder.order_states("gx-c6-entry") == ["NEW", "FILLED"])
    await wait_for(lambda: len(recorder.trades) == 1)

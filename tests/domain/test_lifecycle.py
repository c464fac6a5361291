"""The chain state machine: entry, exits, partial close, one-cancels-other, failures."""

from ginie_protocol.events import Chain, Order, Trade
from ginie_server.domain.lifecycle import (
    CancelOrder,
    PlaceOrder,
    Plan,
    on_flat,
    on_order,
    on_rejected,
    on_trade,
    open_chain,
    parse_client_id,
    request_close,
    take_profit_prices,
)

PLAN = Plan("SOLUSDT", "LONG", "scalp", "autopilot", "s", "S1", 2.0, 110.0, 95.0, 100.0)


def order(cid: str, status: str, qty: float = 2.0, price: float | None = None) -> Order:
    return Order(
        order_id="1",
        client_order_id=cid,
        symbol="SOLUSDT",
        side="BUY",
        type="MARKET",
        status=status,
        quantity=qty,
        filled_qty=qty if status == "FILLED" else 0.0,
        avg_price=price,
        created_at=1,
        updated_at=1,
    )  # type: ignore[arg-type]


def opened() -> Chain:
    chain = open_chain("C1", PLAN, take_profit_prices(PLAN, 0.01), 1).chain
    return on_order(chain, order("g-C1-E", "FILLED", price=100.0), 0.01, 2).chain


def test_client_ids_round_trip() -> None:
    assert parse_client_id("g-C7-TP2") == ("C7", "TP2")
    assert parse_client_id("g-C7-ZZ") is None
    assert parse_client_id("web-123") is None


def test_open_places_market_entry_then_exits_after_fill() -> None:
    t = open_chain("C1", PLAN, take_profit_prices(PLAN, 0.01), 1)
    assert t.chain.status == "pending" and t.chain.take_profit_prices == [105.0, 110.0]
    assert t.actions == [PlaceOrder("g-C1-E", "SOLUSDT", "BUY", "MARKET", 2.0)]
    t = on_order(t.chain, order("g-C1-E", "FILLED", price=100.0), 0.01, 2)
    assert t.chain.status == "open" and t.chain.entry_price == 100.0
    assert t.chain.remaining_qty == 2.0 and [s.step for s in t.steps] == ["entry_filled"]
    assert t.actions == [
        PlaceOrder("g-C1-TP1", "SOLUSDT", "SELL", "TAKE_PROFIT_MARKET", 1.0, 105.0, True),
        PlaceOrder("g-C1-TP2", "SOLUSDT", "SELL", "TAKE_PROFIT_MARKET", 1.0, 110.0, True),
        PlaceOrder("g-C1-SL", "SOLUSDT", "SELL", "STOP_MARKET", 2.0, 95.0, True),
    ]


def test_take_profits_close_in_two_steps_and_cancel_the_stop() -> None:
    chain = opened()
    t = on_order(chain, order("g-C1-TP1", "FILLED", 1.0, 105.0), 0.01, 3)
    assert t.chain.status == "partially_closed" and t.chain.remaining_qty == 1.0
    assert t.actions == []
    t = on_order(t.chain, order("g-C1-TP2", "FILLED", 1.0, 110.0), 0.01, 4)
    assert t.chain.status == "closed" and t.chain.close_reason == "take_profit"
    assert [s.step for s in t.steps] == ["take_profit_filled", "closed"]
    assert t.actions == [CancelOrder("g-C1-TP1", "SOLUSDT"), CancelOrder("g-C1-SL", "SOLUSDT")]


def test_stop_loss_closes_and_cancels_take_profits() -> None:
    t = on_order(opened(), order("g-C1-SL", "FILLED", 2.0, 95.0), 0.01, 3)
    assert t.chain.status == "closed" and t.chain.close_reason == "stop_loss"
    assert t.actions == [CancelOrder("g-C1-TP1", "SOLUSDT"), CancelOrder("g-C1-TP2", "SOLUSDT")]
    again = on_order(t.chain, order("g-C1-TP1", "FILLED", 1.0, 105.0), 0.01, 4)
    assert again.chain == t.chain and not again.changed


def test_realized_pnl_is_net_of_fees() -> None:
    trade = Trade(
        trade_id="T",
        order_id="1",
        client_order_id="g-C1-SL",
        symbol="SOLUSDT",
        side="SELL",
        price=95.0,
        quantity=2.0,
        fee=0.1,
        realized_pnl=-10.0,
        time=3,
    )
    assert on_trade(opened(), trade).realized_pnl == -10.1


def test_entry_rejected_fails_and_entry_cancelled_cancels() -> None:
    chain = open_chain("C1", PLAN, [110.0], 1).chain
    t = on_rejected(chain, "E", "insufficient_margin", "no money", 2)
    assert t.chain.status == "failed" and t.actions == []
    t = on_order(chain, order("g-C1-E", "CANCELED"), 0.01, 2)
    assert t.chain.status == "cancelled" and t.chain.closed_at == 2


def test_rejected_stop_closes_the_position_at_market() -> None:
    t = on_rejected(opened(), "SL", "would_trigger", "would trigger", 3)
    assert t.chain.close_reason == "protection_rejected"
    assert t.actions == [PlaceOrder("g-C1-X", "SOLUSDT", "SELL", "MARKET", 2.0, None, True)]
    t = on_order(t.chain, order("g-C1-X", "FILLED", 2.0, 99.0), 0.01, 4)
    assert t.chain.status == "closed" and t.chain.close_reason == "protection_rejected"


def test_manual_close_and_liquidation() -> None:
    t = request_close(opened(), "manual_close")
    assert [a.client_order_id for a in t.actions] == ["g-C1-X"]
    t = on_flat(opened(), "liquidation", 5)
    assert t.chain.status == "closed" and t.chain.close_reason == "liquidation"
    assert len(t.actions) == 3


def test_single_take_profit_when_quantity_cannot_split() -> None:
    plan = Plan("BTCUSDT", "SHORT", "swing", "manual", "s", None, 0.001, 90.0, 105.0, 100.0)
    assert take_profit_prices(plan, 0.001) == [90.0]
    t = open_chain("C2", plan, [90.0], 1)
    assert t.chain.take_profit_client_order_ids == ["g-C2-TP1"]

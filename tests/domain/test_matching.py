"""Paper matching: fills and fees, positions and flips, stops and take-profits, reduce-only,
margin and liquidation."""

import pytest

from ginie_protocol.events import Balance, Order, Position, Trade
from ginie_server.domain.matching import (
    MAKER_FEE,
    TAKER_FEE,
    OrderRejected,
    PaperAccount,
    Quote,
    apply_fill,
    liquidation_price,
)

Q = Quote(mark=100.0, bid=99.9, ask=100.1)


def q(mark: float) -> Quote:
    return Quote(mark=mark, bid=mark - 0.1, ask=mark + 0.1)


def place(acct: PaperAccount, **kw: object) -> tuple[Order, list[object]]:
    args: dict[str, object] = {"symbol": "SOLUSDT", "quote": Q, "now": 1}
    args.update(kw)
    return acct.place(**args)  # type: ignore[arg-type]


def test_apply_fill_adds_reduces_and_flips() -> None:
    assert apply_fill(0.0, 0.0, 2.0, 100.0) == (2.0, 100.0, 0.0)
    assert apply_fill(2.0, 100.0, 2.0, 110.0) == (4.0, 105.0, 0.0)
    assert apply_fill(4.0, 105.0, -1.0, 115.0) == (3.0, 105.0, 10.0)
    size, entry, realized = apply_fill(3.0, 105.0, -5.0, 95.0)
    assert (size, entry, realized) == (-2.0, 95.0, -30.0)
    assert apply_fill(-2.0, 95.0, 2.0, 90.0) == (0.0, 0.0, 10.0)


def test_market_order_fills_at_the_touch_with_taker_fee() -> None:
    acct = PaperAccount()
    order, events = place(acct, side="BUY", type="MARKET", quantity=2.0, client_order_id="a")
    assert [type(e) for e in events] == [Order, Trade, Order, Position, Balance]
    trade = events[1]
    assert isinstance(trade, Trade)
    assert trade.price == 100.1 and trade.fee == pytest.approx(2 * 100.1 * TAKER_FEE)
    assert order.status == "FILLED" and order.avg_price == 100.1
    assert acct.wallet == pytest.approx(10_000 - 2 * 100.1 * TAKER_FEE)
    pos = acct.position("SOLUSDT", 1)
    assert pos.size == 2.0 and pos.margin == pytest.approx(2 * 100.1 / 10)


def test_partial_close_realizes_pnl_and_flip_reopens_at_fill_price() -> None:
    acct = PaperAccount()
    place(acct, side="BUY", type="MARKET", quantity=2.0, client_order_id="a")
    _, events = place(
        acct, side="SELL", type="MARKET", quantity=3.0, client_order_id="b", quote=q(110.0)
    )
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.realized_pnl == pytest.approx(2 * (109.9 - 100.1))
    pos = acct.position("SOLUSDT", 2)
    assert pos.size == -1.0 and pos.entry_price == 109.9
    fees = 2 * 100.1 * TAKER_FEE + 3 * 109.9 * TAKER_FEE
    assert acct.wallet == pytest.approx(10_000 + 2 * (109.9 - 100.1) - fees)


def test_resting_limit_fills_as_maker_when_price_reaches_it() -> None:
    acct = PaperAccount()
    order, events = place(
        acct, side="BUY", type="LIMIT", quantity=1.0, price=95.0, client_order_id="l"
    )
    assert order.status == "NEW" and len(events) == 1
    assert acct.on_price("SOLUSDT", q(97.0), 2) == []
    events = acct.on_price("SOLUSDT", q(94.8), 3)
    trade = next(e for e in events if isinstance(e, Trade))
    assert trade.maker and trade.price == 95.0 and trade.fee == pytest.approx(95.0 * MAKER_FEE)


def test_crossing_limit_fills_at_once_as_taker() -> None:
    acct = PaperAccount()
    order, _ = place(acct, side="SELL", type="LIMIT", quantity=1.0, price=99.0, client_order_id="l")
    assert order.status == "FILLED" and order.avg_price == 99.9


def test_stop_and_take_profit_trigger_in_their_direction() -> None:
    acct = PaperAccount()
    place(acct, side="BUY", type="MARKET", quantity=2.0, client_order_id="e")
    place(
        acct,
        side="SELL",
        type="STOP_MARKET",
        quantity=2.0,
        stop_price=95.0,
        reduce_only=True,
        client_order_id="sl",
    )
    place(
        acct,
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        quantity=1.0,
        stop_price=105.0,
        reduce_only=True,
        client_order_id="tp",
    )
    assert acct.on_price("SOLUSDT", q(100.0), 2) == []
    events = acct.on_price("SOLUSDT", q(105.0), 3)
    filled = [e for e in events if isinstance(e, Order)]
    assert [(o.client_order_id, o.status) for o in filled] == [("tp", "FILLED")]
    events = acct.on_price("SOLUSDT", q(94.0), 4)
    filled = [e for e in events if isinstance(e, Order)]
    assert [(o.client_order_id, o.status, o.filled_qty) for o in filled] == [("sl", "FILLED", 1.0)]
    assert acct.position("SOLUSDT", 4).size == 0.0


def test_stop_that_would_trigger_at_once_is_refused() -> None:
    acct = PaperAccount()
    place(acct, side="BUY", type="MARKET", quantity=1.0, client_order_id="e")
    with pytest.raises(OrderRejected) as err:
        place(
            acct,
            side="SELL",
            type="STOP_MARKET",
            quantity=1.0,
            stop_price=101.0,
            reduce_only=True,
            client_order_id="sl",
        )
    assert err.value.code == "would_trigger"


def test_reduce_only_never_opens_or_grows_and_expires_when_flat() -> None:
    acct = PaperAccount()
    with pytest.raises(OrderRejected) as err:
        place(acct, side="SELL", type="MARKET", quantity=1.0, reduce_only=True, client_order_id="r")
    assert err.value.code == "reduce_only_rejected"
    place(acct, side="BUY", type="MARKET", quantity=1.0, client_order_id="e")
    with pytest.raises(OrderRejected):
        place(acct, side="BUY", type="MARKET", quantity=1.0, reduce_only=True, client_order_id="r")
    place(
        acct,
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        quantity=5.0,
        stop_price=105.0,
        reduce_only=True,
        client_order_id="tp",
    )
    place(acct, side="SELL", type="MARKET", quantity=1.0, client_order_id="x")
    events = acct.on_price("SOLUSDT", q(106.0), 5)
    assert [(e.status, e.reason) for e in events if isinstance(e, Order)] == [
        ("EXPIRED", "no position to reduce")
    ]


def test_insufficient_margin_and_duplicate_ids_are_refused() -> None:
    acct = PaperAccount()
    with pytest.raises(OrderRejected) as err:
        place(acct, side="BUY", type="MARKET", quantity=2_000.0, client_order_id="big")
    assert err.value.code == "insufficient_margin"
    place(acct, side="BUY", type="LIMIT", quantity=1.0, price=90.0, client_order_id="dup")
    with pytest.raises(OrderRejected) as err:
        place(acct, side="BUY", type="LIMIT", quantity=1.0, price=91.0, client_order_id="dup")
    assert err.value.code == "duplicate_client_order_id"


def test_liquidation_price_and_liquidation() -> None:
    assert liquidation_price(1.0, 100.0, 10) == pytest.approx(90.5)
    assert liquidation_price(-1.0, 100.0, 10) == pytest.approx(109.5)
    assert liquidation_price(0.0, 100.0, 10) is None
    acct = PaperAccount()
    acct.set_leverage("SOLUSDT", 20)
    place(acct, side="BUY", type="MARKET", quantity=10.0, client_order_id="e")
    liq = acct.position("SOLUSDT", 1).liquidation_price
    assert liq == pytest.approx(100.1 * (1 - 1 / 20 + 0.005))
    events = acct.on_price("SOLUSDT", q(95.0), 2)
    order = next(e for e in events if isinstance(e, Order))
    assert order.reason == "liquidation" and order.status == "FILLED"
    assert acct.position("SOLUSDT", 2).size == 0.0


def test_cancel_by_client_order_id() -> None:
    acct = PaperAccount()
    place(acct, side="BUY", type="LIMIT", quantity=1.0, price=90.0, client_order_id="c1")
    cancelled = acct.cancel(2, client_order_id="c1")
    assert cancelled.status == "CANCELED" and acct.open_orders == {}
    with pytest.raises(OrderRejected):
        acct.cancel(3, client_order_id="c1")

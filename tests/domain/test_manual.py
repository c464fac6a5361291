"""The manual order check: quantity from notional, and each filter's refusal naming its field."""

from __future__ import annotations

import pytest

from ginie_server.domain.manual import Filters, OrderInvalid, Request, check_order

BTC = Filters(tick_size=0.1, step_size=0.001, min_qty=0.001, min_notional=5.0, max_leverage=125)


def request(**changes: object) -> Request:
    fields: dict[str, object] = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": 0.01,
        "notional": None,
        "price": None,
        "take_profit": 101_000.0,
        "stop_loss": 99_000.0,
        "leverage": 5,
    }
    fields.update(changes)
    return Request(**fields)  # type: ignore[arg-type]


def test_a_market_order_is_valued_at_the_mark() -> None:
    checked = check_order(request(), BTC, mark=100_000.0, available=10_000.0)
    assert (checked.quantity, checked.notional, checked.margin) == (0.01, 1_000.0, 200.0)


def test_a_notional_becomes_the_quantity_rounded_down_to_the_step() -> None:
    checked = check_order(
        request(quantity=None, notional=1_234.0), BTC, mark=100_000.0, available=10_000.0
    )
    assert checked.quantity == 0.012


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"quantity": 0.0005}, "quantity", "step size"),
        ({"quantity": 0.0125}, "quantity", "multiple of the step size 0.001"),
        ({"quantity": None, "notional": 3.0}, "notional", "below"),
        ({"type": "LIMIT", "price": 100_000.05}, "price", "tick size 0.1"),
        ({"stop_loss": 100_500.0}, "stop_loss", "below the entry"),
        ({"take_profit": 99_500.0}, "take_profit", "above the entry"),
        ({"side": "SELL"}, "take_profit", "below the entry"),
        ({"leverage": 126}, "leverage", "largest 125"),
        ({"quantity": 1.0}, "quantity", "more than the 10000.00 USDT available"),
    ],
)
def test_each_bound_is_named_with_its_field(
    changes: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(OrderInvalid) as refused:
        check_order(request(**changes), BTC, mark=100_000.0, available=10_000.0)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert words in str(refused.value)


def test_exits_are_optional() -> None:
    bare = request(quantity=0.001, take_profit=None, stop_loss=None)
    assert check_order(bare, BTC, mark=100_000.0, available=10_000.0).quantity == 0.001


def test_a_market_order_needs_a_mark() -> None:
    with pytest.raises(OrderInvalid, match=r"^symbol: no mark price"):
        check_order(request(), BTC, mark=None, available=10_000.0)

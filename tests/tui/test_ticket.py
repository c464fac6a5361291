"""The order ticket with a recorded feed: its arithmetic, its form, confirmation before sending,
refusals shown next to their field, read-only outside LIVE; and the kill switch's dialog."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Label, Select, Static

from ginie_protocol import Ack, AckError
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.palette import palette_entries
from ginie_tui.screens.flatten import FlattenModal
from ginie_tui.screens.modals import ConfirmModal
from ginie_tui.screens.ticket import OrderTicket
from ginie_tui.ticket import OrderForm, field_of, preview, read_form
from tests.harness import wait_for
from tests.tui.dataset import T0
from tests.tui.fakes import LIVE, POLLING, RecordedFeed, live_store

SIZE = (100, 32)


def app_with(feed: RecordedFeed) -> GinieApp:
    return make_app(feed, store=live_store(), clock=ManualClock(T0), settings=ConsoleSettings())


def notes(app: GinieApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def ticket_shown(app: GinieApp) -> bool:
    """True once the ticket is on screen with its fields."""
    return isinstance(app.screen, OrderTicket) and bool(app.screen.query("#size"))


def text(screen: object, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the arithmetic


def test_a_long_is_valued_at_the_mark_with_its_margin_loss_and_gain() -> None:
    form = OrderForm(
        "BTCUSDT", "BUY", "MARKET", 0.01, take_profit=66_000.0, stop_loss=64_000.0, leverage=10
    )
    p = preview(form, 65_000.0, default_leverage=5)
    assert p.entry == 65_000.0 and p.quantity == 0.01
    assert p.notional == pytest.approx(650.0)
    assert p.margin == pytest.approx(65.0) and p.leverage == 10
    assert p.loss_at_stop == pytest.approx(-10.0)
    assert p.gain_at_target == pytest.approx(10.0)


def test_a_short_by_notional_at_a_limit_price_uses_the_rules_leverage() -> None:
    form = OrderForm("ETHUSDT", "SELL", "LIMIT", 1_000.0, "notional", 4_000.0, 3_800.0, 4_100.0)
    p = preview(form, 3_990.0, default_leverage=5)
    assert p.entry == 4_000.0, "a LIMIT order is valued at its price, not the mark"
    assert p.quantity == pytest.approx(0.25) and p.notional == 1_000.0
    assert p.margin == pytest.approx(200.0) and p.leverage == 5
    assert p.loss_at_stop == pytest.approx(-25.0)
    assert p.gain_at_target == pytest.approx(50.0)


def test_no_mark_or_no_size_leaves_the_figures_out() -> None:
    market = OrderForm("BTCUSDT", "BUY", "MARKET", 0.01)
    assert preview(market, None, 5).notional is None
    unsized = OrderForm("BTCUSDT", "BUY", "MARKET", None)
    assert preview(unsized, 65_000.0, 5).margin is None
    no_exits = preview(market, 65_000.0, 5)
    assert no_exits.loss_at_stop is None and no_exits.gain_at_target is None


def test_the_form_is_read_into_arguments_with_errors_by_field() -> None:
    texts = {"symbol": " btcusdt ", "size": "0.01", "price": "1", "stop_loss": "64000"}
    form, errors = read_form(texts, "BUY", "MARKET", "quantity")
    assert errors == {}
    assert form.args() == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": 0.01,
        "stop_loss": 64000.0,
    }, "a MARKET order takes no price"
    _, errors = read_form({"symbol": "", "size": "", "leverage": "x"}, "SELL", "LIMIT", "notional")
    assert set(errors) == {"symbol", "size", "leverage"}


def test_an_error_message_names_its_field() -> None:
    assert field_of("quantity: 0.0005 is below the step size 0.001 of BTCUSDT") == (
        "quantity",
        "0.0005 is below the step size 0.001 of BTCUSDT",
    )
    assert field_of("order.place: Value error, price: a LIMIT order needs a price") == (
        "price",
        "a LIMIT order needs a price",
    )
    assert field_of("too many commands: retry") == (None, "too many commands: retry")


# ---------------------------------------------------------------------------- the ticket


async def open_ticket(app: GinieApp, pilot: object, **fields: str) -> OrderTicket:
    await pilot.press("o")  # type: ignore[attr-defined]
    await wait_for(lambda: ticket_shown(app))
    ticket = app.screen
    assert isinstance(ticket, OrderTicket)
    for name, value in fields.items():
        if name in ("side", "type", "unit"):
            ticket.query_one(f"#{name}", Select).value = value
        else:
            ticket.query_one(f"#{name}", Input).value = value
    return ticket


async def test_the_ticket_shows_the_order_then_confirms_then_sends() -> None:
    feed = RecordedFeed(LIVE)
    feed.answers["order.place"] = Ack(id="c-1", ok=True, result={"chain_id": "C7"})
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        ticket = await open_ticket(
            app, pilot, size="0.01", take_profit="66000", stop_loss="64500", leverage="10"
        )
        assert ticket.query_one("#symbol", Input).value == "BTCUSDT", "the rules' first symbol"
        shown = lambda: text(ticket, "#ticket-preview")  # noqa: E731
        await wait_for(lambda: "margin 65.12 USDT at 10x" in shown())
        assert "notional 651.20 USDT" in shown()
        assert "Loss at stop -6.20 USDT" in shown() and "gain at target +8.80" in shown()
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConfirmModal))
        question = str(app.screen.query_one(Label).render())
        assert question.startswith("BUY 0.01 BTCUSDT at market, target 66,000.00, stop 64,500")
        assert "margin 65.12" in question and feed.sent == []
        await pilot.press("y")
        await wait_for(lambda: not isinstance(app.screen, OrderTicket | ConfirmModal))
        assert feed.sent == [
            (
                "order.place",
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "MARKET",
                    "quantity": 0.01,
                    "take_profit": 66000.0,
                    "stop_loss": 64500.0,
                    "leverage": 10,
                },
            )
        ]
        assert any(n.startswith("Order placed:") and "chain C7" in n for n in notes(app))


@pytest.mark.parametrize(
    ("fields", "message", "where"),
    [
        (
            {"size": "0.0005"},
            "quantity: 0.0005 is below the step size and minimum quantity 0.001 of BTCUSDT",
            "#size-error",
        ),
        ({"symbol": "DOGEUSDT", "size": "10"}, "symbol: unknown symbol DOGEUSDT", "#symbol-error"),
    ],
    ids=["step-size", "unknown-symbol"],
)
async def test_a_refusal_is_shown_next_to_its_field(
    fields: dict[str, str], message: str, where: str
) -> None:
    feed = RecordedFeed(LIVE)
    feed.answers["order.place"] = Ack(
        id="c-1", ok=False, error=AckError(code="invalid", message=message)
    )
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        ticket = await open_ticket(app, pilot, **fields)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        reason = message.partition(": ")[2]
        await wait_for(lambda: reason in text(ticket, where))
        assert app.screen is ticket, "the ticket stays open to correct the field"
        assert len(feed.sent) == 1


async def test_the_form_is_checked_before_anything_is_asked_or_sent() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        ticket = await open_ticket(app, pilot, type="LIMIT", size="0.01")
        await pilot.pause()
        assert not ticket.query_one("#price", Input).disabled
        await pilot.press("enter")
        await wait_for(lambda: "a LIMIT order needs a price" in text(ticket, "#price-error"))
        ticket.query_one("#size", Input).value = ""
        await pilot.press("enter")
        await wait_for(lambda: "give a quantity" in text(ticket, "#size-error"))
        assert app.screen is ticket and feed.sent == []


async def test_the_ticket_does_not_open_while_read_only() -> None:
    feed = RecordedFeed(POLLING)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        await pilot.press("o")
        await pilot.press("K")
        await wait_for(lambda: len([n for n in notes(app) if n.startswith("Read-only")]) == 2)
        assert not isinstance(app.screen, OrderTicket | FlattenModal)


async def test_the_palette_opens_the_ticket_and_the_kill_switch() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        entries = {e.command: e for e in palette_entries(app.store)}
        app.run_palette_entry(entries["order.place"])
        await wait_for(lambda: ticket_shown(app))
        await pilot.pause()
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, OrderTicket))
        app.run_palette_entry(entries["account.flatten"])
        await wait_for(lambda: isinstance(app.screen, FlattenModal))


# ---------------------------------------------------------------------------- the kill switch


async def test_the_kill_switch_names_what_it_closes_then_shows_what_it_did() -> None:
    feed = RecordedFeed(LIVE)
    feed.answers["account.flatten"] = Ack(
        id="c-1",
        ok=True,
        result={
            "stopped_autopilot": True,
            "cancelled": ["g-ch-1-sl"],
            "closed": ["BTCUSDT"],
            "failed": [{"step": "close ETHUSDT", "error": "exchange down"}],
        },
    )
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        await pilot.press("K")
        await wait_for(lambda: isinstance(app.screen, FlattenModal))
        modal = app.screen
        body = text(modal, "#flatten-body")
        assert "stop the autopilot (running now)" in body
        assert "cancel 1 open order" in body and "BTCUSDT   LONG  0.01" in body
        await pilot.press("n")
        await wait_for(lambda: not isinstance(app.screen, FlattenModal))
        assert feed.sent == []
        await pilot.press("K")
        await wait_for(lambda: isinstance(app.screen, FlattenModal))
        modal = app.screen
        await pilot.press("y")
        await wait_for(lambda: "Closed BTCUSDT." in text(modal, "#flatten-body"))
        assert feed.sent == [("account.flatten", {"stop_autopilot": True})]
        body = text(modal, "#flatten-body")
        assert "Cancelled 1 order: g-ch-1-sl" in body
        assert "close ETHUSDT: exchange down" in body
        assert any(
            n.startswith("Account flattened: 1 closed, 1 cancelled, 1 failed") for n in notes(app)
        )
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, FlattenModal))

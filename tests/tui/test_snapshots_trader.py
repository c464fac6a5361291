"""Recorded screens of the trader's dialogs and the alerts log (SVGs in snapshots/)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from ginie_protocol import make_event
from ginie_protocol.events import Chain, CircuitBreaker, Trade
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from tests.harness import wait_for
from tests.tui.dataset import EPOCH, T0, user_models
from tests.tui.fakes import LIVE, RecordedFeed, live_store

SIZE = (100, 32)


def recorded_app(feed: RecordedFeed) -> GinieApp:
    return make_app(
        feed,
        store=live_store(),
        clock=ManualClock(T0),
        settings=ConsoleSettings(server="http://127.0.0.1:8765"),
    )


def test_order_ticket(snap_compare: Any) -> None:
    """o opens the ticket: a bracket order on BTCUSDT valued at the mark, before confirming."""

    async def fill_in(pilot: Pilot[None]) -> None:
        await pilot.press("o")
        await wait_for(lambda: bool(pilot.app.screen.query("#size")))
        for name, value in (("size", "0.02"), ("take_profit", "66500"), ("stop_loss", "64400")):
            pilot.app.screen.query_one(f"#{name}", Input).value = value
        await pilot.pause()

    assert snap_compare(recorded_app(RecordedFeed(LIVE)), run_before=fill_in, terminal_size=SIZE)


def test_flatten_confirmation(snap_compare: Any) -> None:
    """K asks before flattening, naming the position, the open orders and the autopilot."""
    assert snap_compare(recorded_app(RecordedFeed(LIVE)), press=["K"], terminal_size=SIZE)


def test_alerts_log(snap_compare: Any) -> None:
    """The System tab's log after a fill, a closed chain and a tripped breaker."""
    feed = RecordedFeed(LIVE)
    held = {type(m): m for m in user_models()}
    trade = held[Trade].model_copy(
        update={"trade_id": "t-2", "side": "SELL", "price": 65_650.0, "time": T0}
    )
    chain = held[Chain].model_copy(
        update={
            "status": "closed",
            "remaining_qty": 0,
            "realized_pnl": 6.4,
            "close_reason": "take_profit",
            "closed_at": T0,
        }
    )
    breaker = held[CircuitBreaker].model_copy(
        update={"state": "tripped", "reason": "3 losses in a row", "tripped_at": T0}
    )

    async def alert(pilot: Pilot[None]) -> None:
        await wait_for(lambda: feed.listener is not None)
        for n, data in enumerate((trade, chain, breaker), start=len(user_models()) + 1):
            feed.deliver(make_event(data, ts=T0, seq=n, epoch=EPOCH))
        await pilot.pause()
        pilot.app.clear_notifications()
        await pilot.press("6")
        await pilot.pause()

    assert snap_compare(recorded_app(feed), run_before=alert, terminal_size=SIZE)

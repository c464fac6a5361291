"""Alerts: one test per kind through the console (a notification, the bell where asked, the log
on the System tab), each raised once; and none from replayed events or snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from ginie_protocol import make_event
from ginie_protocol.events import Chain, CircuitBreaker, MarkPrice, ModeSafety, Topic, Trade
from ginie_tui.alerts import Alerter, AlertKind, parse_kinds
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.store import Store
from ginie_tui.widgets.alerts import AlertsPanel
from ginie_tui.widgets.rowlog import RowLog
from tests.harness import wait_for
from tests.tui.dataset import EPOCH, T0, user_models
from tests.tui.fakes import LIVE, RECONNECTING, RecordedFeed, live_store, polled_store

SIZE = (100, 32)
NEXT_SEQ = len(user_models()) + 1


class Console:
    """A console on a recorded feed that counts its bells; `deliver` numbers user events."""

    def __init__(self, bell: frozenset[AlertKind] = frozenset()) -> None:
        self.feed = RecordedFeed(LIVE)
        self.app: GinieApp = make_app(
            self.feed,
            store=live_store(),
            clock=ManualClock(T0),
            settings=ConsoleSettings(bell=bell),
        )
        self.bells = 0
        self.app.bell = self._ring  # type: ignore[method-assign]
        self.seq = NEXT_SEQ

    def _ring(self) -> None:
        self.bells += 1

    def deliver(self, data: Any) -> None:
        self.feed.deliver(make_event(data, ts=T0, seq=self.seq, epoch=EPOCH))
        self.seq += 1

    def tick(self, mark: float, at: int) -> None:
        tick = MarkPrice(
            symbol="BTCUSDT",
            mark_price=mark,
            index_price=mark,
            funding_rate=0.0,
            next_funding_time=T0,
            time=at,
        )
        self.feed.deliver(make_event(tick, ts=at))

    def notes(self, title: str) -> list[str]:
        return [n.message for n in self.app._notifications if n.title == title]


def chain(**update: Any) -> Chain:
    held = next(m for m in user_models() if isinstance(m, Chain))
    return held.model_copy(update=update)


def breaker(**update: Any) -> CircuitBreaker:
    held = next(m for m in user_models() if isinstance(m, CircuitBreaker))
    return held.model_copy(update=update)


def mode(**update: Any) -> ModeSafety:
    held = next(m for m in user_models() if isinstance(m, ModeSafety))
    return held.model_copy(update=update)


def fill(n: int) -> Trade:
    return Trade(
        trade_id=f"t-{n + 10}",
        order_id="1002",
        client_order_id="g-ch-1-sl",
        symbol="BTCUSDT",
        side="SELL",
        price=64_675.0,
        quantity=0.01,
        fee=0.2,
        realized_pnl=-3.35,
        time=T0 + n,
    )


async def test_a_fill_is_notified_once_with_the_bell_asked_for() -> None:
    console = Console(bell=frozenset({AlertKind.FILL}))
    async with console.app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        console.deliver(fill(1))
        await wait_for(lambda: console.notes("Fill") != [])
        console.deliver(fill(1))  # the same trade sent again: no news
        console.deliver(breaker(state="tripped", tripped_at=T0))  # handled after it
        await wait_for(lambda: console.notes("Circuit breaker tripped") != [])
        assert console.notes("Fill") == ["SELL 0.01 BTCUSDT at 64,675.00, realized -3.35 USDT"]
        assert console.bells == 1
        assert [a.kind for a in console.app.alerter.recent] == ["fill", "breaker"]


async def test_the_fills_of_one_batch_are_one_notification() -> None:
    console = Console()
    async with console.app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        for n in range(6):
            console.deliver(fill(n))
        await wait_for(lambda: console.notes("6 fills") != [])
        (listed,) = console.notes("6 fills")
        assert listed.splitlines()[-1] == "and 2 more" and len(listed.splitlines()) == 5
        assert console.notes("Fill") == [] and len(console.app.alerter.recent) == 6


async def test_a_closed_chain_is_notified_once_with_its_pnl() -> None:
    console = Console()
    async with console.app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        console.deliver(chain(status="partially_closed", remaining_qty=0.005))
        closed = chain(
            status="closed", remaining_qty=0, realized_pnl=12.5, close_reason="take_profit"
        )
        console.deliver(closed)
        console.deliver(closed.model_copy(update={"closed_at": T0}))
        await wait_for(lambda: console.notes("Chain closed") != [])
        assert console.notes("Chain closed") == ["ch-1 LONG BTCUSDT (take_profit): P&L +12.50 USDT"]
        assert console.bells == 0, "the bell rings only for the kinds asked"


async def test_a_tripped_breaker_is_notified_once() -> None:
    console = Console(bell=frozenset(AlertKind))
    async with console.app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        tripped = breaker(state="tripped", reason="3 losses in a row", tripped_at=T0)
        console.deliver(tripped)
        console.deliver(tripped.model_copy(update={"hourly_loss": 20.0}))
        await wait_for(lambda: console.notes("Circuit breaker tripped") != [])
        assert console.notes("Circuit breaker tripped") == ["3 losses in a row"]
        assert console.bells == 1


@pytest.mark.parametrize("status", ["paused", "blocked"])
async def test_a_paused_or_blocked_mode_is_notified(status: str) -> None:
    console = Console()
    async with console.app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        console.deliver(mode(status=status, reason="daily loss 300 USDT reached"))
        await wait_for(lambda: console.notes(f"Mode scalp {status}") != [])
        console.deliver(mode(status=status, reason="daily loss 300 USDT reached", loss_today=320))
        console.deliver(breaker(state="tripped", tripped_at=T0))  # handled after it
        await wait_for(lambda: console.notes("Circuit breaker tripped") != [])
        assert console.notes(f"Mode scalp {status}") == ["daily loss 300 USDT reached"]
        assert [a.kind for a in console.app.alerter.recent] == ["mode", "breaker"]


async def test_a_position_near_liquidation_is_notified_once_until_it_moves_away() -> None:
    """The dataset's long BTCUSDT position liquidates at 52,300: 5 % above that is 55,050.
    Ticks of one burst render as one (the latest), so the test lets each batch render."""
    console = Console()
    async with console.app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: console.feed.listener is not None)
        for n, mark in enumerate((60_000.0, 54_000.0, 53_900.0, 60_000.0, 54_500.0)):
            console.tick(mark, T0 + n)
            await pilot.pause()
        await wait_for(lambda: len(console.notes("Near liquidation")) == 2)
        assert console.notes("Near liquidation") == [
            "LONG 0.01 BTCUSDT: mark 3.1% from liquidation at 52,300.00",
            "LONG 0.01 BTCUSDT: mark 4.0% from liquidation at 52,300.00",
        ]


async def test_a_lost_and_regained_connection_is_notified() -> None:
    console = Console()
    app = console.app
    async with app.run_test(size=SIZE):
        await wait_for(lambda: console.feed.listener is not None)
        assert console.notes("Connection lost") == [], "the first LIVE is no news"
        console.feed.fixed = RECONNECTING
        app.feed_status(RECONNECTING)
        await wait_for(lambda: console.notes("Connection lost") != [])
        assert console.notes("Connection lost") == ["RECONNECTING: read-only until LIVE again"]
        console.feed.fixed = LIVE
        app.feed_status(LIVE)
        await wait_for(lambda: console.notes("Connection regained") == ["LIVE again"])


async def test_the_system_tab_logs_the_alerts_newest_first() -> None:
    console = Console()
    async with console.app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: console.feed.listener is not None)
        console.deliver(fill(1))
        console.deliver(breaker(state="tripped", reason="3 losses in a row", tripped_at=T0))
        await pilot.press("6")
        log = console.app.query_one(AlertsPanel).query_one(RowLog)
        await wait_for(lambda: log.row_count == 2)
        assert "Circuit breaker tripped" in log.get_row_at(0)[2]
        assert log.get_row_at(1)[1] == "fill"


# ---------------------------------------------------------------------------- no alert


def replayed(store: Store, data: Any, seq: int) -> list[Any]:
    """Apply `data` as an event a resume replayed; its change, as the feed reports it."""
    applied = store.apply_event(make_event(data, ts=T0, seq=seq, epoch=EPOCH), T0, "replayed")
    assert applied.change is not None
    return [applied.change]


def test_replayed_events_raise_no_alert_and_are_not_news_when_live_again() -> None:
    store = live_store()
    alerter = Alerter()
    tripped = breaker(state="tripped", reason="3 losses in a row", tripped_at=T0)
    closed = chain(status="closed", remaining_qty=0, realized_pnl=-4.0)
    for n, data in enumerate([fill(1), closed, tripped, mode(status="blocked")]):
        assert alerter.observe(replayed(store, data, NEXT_SEQ + n), store, T0) == []
    again = store.apply_event(
        make_event(tripped.model_copy(update={"hourly_loss": 30.0}), T0, NEXT_SEQ + 4, EPOCH), T0
    )
    assert again.change is not None and again.change.source == "live"
    assert alerter.observe([again.change], store, T0) == [], "still the same trip"
    assert list(alerter.recent) == []


def test_a_snapshot_raises_no_alert_and_teaches_the_states() -> None:
    """A RESYNC or a fallback poll brings the state as a snapshot: no alert for what it holds,
    and a live event repeating that state later is no news either."""
    store = polled_store()
    alerter = Alerter()
    data = {
        Topic.CIRCUIT_BREAKER_UPDATE: breaker(state="tripped", tripped_at=T0).model_dump(),
        Topic.TRADE_UPDATE: [fill(1).model_dump()],
    }
    changes = store.apply_snapshot(EPOCH, NEXT_SEQ, data, T0)
    assert changes and all(c.source == "polled" for c in changes)
    assert alerter.observe(changes, store, T0) == []
    live = store.apply_event(
        make_event(breaker(state="tripped", tripped_at=T0), T0, NEXT_SEQ + 1, EPOCH), T0
    )
    assert live.change is not None
    assert alerter.observe([live.change], store, T0) == []


def test_bell_kinds_parse() -> None:
    assert parse_kinds("fill, breaker") == {AlertKind.FILL, AlertKind.BREAKER}
    assert parse_kinds("all") == set(AlertKind)
    assert parse_kinds("") == frozenset()
    with pytest.raises(ValueError, match="unknown alert kind 'fills'"):
        parse_kinds("fills")

"""The console's behaviour with a recorded feed: commands, confirmation, read-only, the pending
signals modal, notifications, in-place bounded tables, the palette, the indicator."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from ginie_protocol import COMMAND_ARGS, Ack, AckError, CommandArgsError, Topic, make_event
from ginie_protocol.events import CircuitBreaker, LifecycleEvent, MarkPrice, Trade
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.palette import palette_entries
from ginie_tui.screens.modals import ConfirmModal, PendingSignalsModal, parse_rule_assignments
from ginie_tui.store import Store
from ginie_tui.widgets.indicator import ConnectionIndicator, describe_status
from ginie_tui.widgets.lifecycle import SHOWN, LifecyclePanel
from ginie_tui.widgets.positions import PositionsPanel
from ginie_tui.widgets.rowlog import RowLog
from ginie_tui.widgets.signals import SignalsPanel
from tests.harness import wait_for
from tests.tui.dataset import EPOCH, T0, user_models
from tests.tui.fakes import LIVE, POLLING, RECONNECTING, RecordedFeed, live_store

SIZE = (100, 32)
NEXT_SEQ = len(user_models()) + 1


def app_with(feed: RecordedFeed, store: Store | None = None) -> GinieApp:
    return make_app(
        feed,
        store=store if store is not None else live_store(),
        clock=ManualClock(T0),
        settings=ConsoleSettings(server="http://127.0.0.1:8765"),
    )


def cell(app: GinieApp, panel: type, row: str, column: str) -> str:
    return str(app.query_one(panel).query_one(RowLog).get_cell(row, column))


def hint(modal: PendingSignalsModal) -> str:
    return str(modal.query_one("#pending-hint", Static).render())


def notes(app: GinieApp) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_approving_shows_the_result_only_from_the_following_event() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        await pilot.press("2", "s")
        await wait_for(lambda: isinstance(app.screen, PendingSignalsModal))
        modal = app.screen
        assert isinstance(modal, PendingSignalsModal)
        await pilot.press("a")
        await wait_for(lambda: "signal.approve sig-2: SHORT ETHUSDT at 3,400.00?" in hint(modal))
        assert app.screen is modal, "the question is asked in the modal, not over it"
        await pilot.press("y")
        await wait_for(lambda: feed.sent == [("signal.approve", {"signal_id": "sig-2"})])
        await wait_for(lambda: any("signal.approve accepted" in n for n in notes(app)))
        assert app.screen is modal and "requested" in hint(modal)
        assert "pending" in cell(app, SignalsPanel, "sig-2", "status"), "no local guess"
        signal = app.store.get(Topic.SIGNAL_UPDATE, "sig-2")
        approved = signal.model_copy(update={"status": "approved", "decided_at": T0})
        feed.deliver(make_event(approved, ts=T0, seq=NEXT_SEQ, epoch=EPOCH))
        await wait_for(lambda: "approved" in cell(app, SignalsPanel, "sig-2", "status"))
        table = modal.query_one(RowLog)
        await wait_for(lambda: "approved" in str(table.get_cell("sig-2", "status")))
        await pilot.press("a")
        await wait_for(lambda: any("already approved" in n for n in notes(app)))
        assert len(feed.sent) == 1


async def test_no_or_escape_in_the_pending_modal_sends_nothing_and_keeps_it_open() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, PendingSignalsModal))
        modal = app.screen
        assert isinstance(modal, PendingSignalsModal)
        for answer in ("n", "escape"):
            await pilot.press("a")
            await wait_for(lambda: "This trades" in hint(modal))
            await pilot.press(answer)
            await wait_for(lambda: hint(modal) == PendingSignalsModal.HINT)
            assert app.screen is modal
        await pilot.press("y")
        await pilot.press("r")
        await wait_for(lambda: feed.sent == [("signal.reject", {"signal_id": "sig-2"})])
        assert not any(isinstance(s, ConfirmModal) for s in app.screen_stack)
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, PendingSignalsModal))


async def test_trading_commands_wait_for_confirmation_and_no_sends_nothing() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        app.request_command("position.close", {"symbol": "BTCUSDT"})
        await wait_for(lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")
        await wait_for(lambda: not isinstance(app.screen, ConfirmModal))
        app.request_command("ginie.stop", {})
        await wait_for(lambda: feed.sent == [("ginie.stop", {})])


async def test_a_rate_limited_command_is_shown_as_such() -> None:
    feed = RecordedFeed(LIVE)
    feed.answers["ginie.stop"] = Ack(
        id="c-1",
        ok=False,
        error=AckError(code="rate_limited", message="over budget", retry_after_ms=1500),
    )
    app = app_with(feed)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: feed.listener is not None)
        app.request_command("ginie.stop", {})
        await wait_for(lambda: any("rate limited" in n for n in notes(app)))
        assert notes(app)[-1] == (
            "ginie.stop rate limited: Too many commands at once: not run. Try again in 1.5 s."
        )


@pytest.mark.parametrize("status", [RECONNECTING, POLLING])
async def test_read_only_while_not_live(status: ConnectionStatus) -> None:
    feed = RecordedFeed(status)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        app.request_command("ginie.stop", {})
        await pilot.press("2")
        await pilot.click("#ginie-start")
        await wait_for(lambda: len([n for n in notes(app) if n.startswith("Read-only")]) == 2)
        assert feed.sent == []
        assert "READ-ONLY" in str(app.query_one(ConnectionIndicator).render())
        assert not isinstance(app.screen, ConfirmModal)


async def test_bad_arguments_are_refused_with_the_reason() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: feed.listener is not None)
        app.request_command("mode.pause", {"mode": "yolo"})
        await wait_for(lambda: any(n.startswith("Not sent") for n in notes(app)))
        assert feed.sent == []


async def test_fills_and_breaker_trips_are_notified() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: feed.listener is not None)
        fill = Trade(
            trade_id="t-2",
            order_id="1002",
            client_order_id="g-ch-1-sl",
            symbol="BTCUSDT",
            side="SELL",
            price=64675.0,
            quantity=0.01,
            fee=0.2,
            time=T0,
        )
        feed.deliver(make_event(fill, ts=T0, seq=NEXT_SEQ, epoch=EPOCH))
        breaker = app.store.singleton(Topic.CIRCUIT_BREAKER_UPDATE)
        tripped: CircuitBreaker = breaker.model_copy(
            update={"state": "tripped", "reason": "3 losses in a row", "tripped_at": T0}
        )
        feed.deliver(make_event(tripped, ts=T0, seq=NEXT_SEQ + 1, epoch=EPOCH))
        await wait_for(lambda: any(n.startswith("Fill: SELL 0.01 BTCUSDT") for n in notes(app)))
        await wait_for(lambda: "Circuit breaker tripped: 3 losses in a row" in notes(app))
        assert cell(app, LifecyclePanel, "4", "step") == "sl_placed"


async def test_a_hidden_panel_renders_its_changes_when_its_tab_is_shown() -> None:
    """A change to a panel on a hidden tab costs no frames: the panel renders it from the store
    when its tab is shown."""
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        body = app.query_one("#breaker-body", Static)
        breaker = app.store.singleton(Topic.CIRCUIT_BREAKER_UPDATE)
        tripped: CircuitBreaker = breaker.model_copy(
            update={"state": "tripped", "reason": "3 losses in a row", "tripped_at": T0}
        )
        feed.deliver(make_event(tripped, ts=T0, seq=NEXT_SEQ, epoch=EPOCH))
        await wait_for(lambda: "Circuit breaker tripped: 3 losses in a row" in notes(app))
        assert "3 losses in a row" not in str(body.render()), "rendered while hidden"
        await pilot.press("3")
        await wait_for(lambda: "3 losses in a row" in str(body.render()))


async def test_lifecycle_rows_are_newest_first_and_bounded() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: feed.listener is not None)
        for n in range(SHOWN + 50):
            row = LifecycleEvent(
                id=100 + n, chain_id="ch-9", symbol="ETHUSDT", step="s", message=str(n), time=T0 + n
            )
            feed.deliver(make_event(row, ts=T0, seq=NEXT_SEQ + n, epoch=EPOCH))
        table = app.query_one(LifecyclePanel).query_one(RowLog)
        await wait_for(lambda: table.get_row_at(0)[2] == str(SHOWN + 49))
        assert table.row_count == SHOWN
        assert table.get_row_at(SHOWN - 1)[2] == "50", "the oldest rows went"
        assert len(app.store.items(Topic.LIFECYCLE_EVENT)) == SHOWN + 54


async def test_market_ticks_update_position_marks_in_place() -> None:
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: feed.listener is not None)
        for n in range(100):
            tick = MarkPrice(
                symbol="BTCUSDT",
                mark_price=65_000.0 + n,
                index_price=65_000.0,
                funding_rate=0.0,
                next_funding_time=T0,
                time=T0 + n,
            )
            feed.deliver(make_event(tick, ts=T0))
        await wait_for(lambda: cell(app, PositionsPanel, "BTCUSDT", "mark") == "65,099.00")
        assert app.query_one(PositionsPanel).query_one(RowLog).row_count == 1


def test_the_palette_offers_every_command() -> None:
    entries = palette_entries(live_store())
    assert {e.command for e in entries} == set(COMMAND_ARGS)
    targets = {(e.command, tuple(sorted(e.args.items()))) for e in entries}
    assert ("signal.approve", (("signal_id", "sig-2"),)) in targets
    assert ("order.cancel", (("order_id", "1002"),)) in targets
    assert ("position.close", (("symbol", "BTCUSDT"),)) in targets
    assert ("order.cancel", (("order_id", "1001"),)) not in targets, "filled orders stay out"


def test_rule_assignments_parse_and_validate() -> None:
    assert parse_rule_assignments("min_confidence=0.7 allowed_symbols=BTCUSDT,ETHUSDT") == {
        "min_confidence": 0.7,
        "allowed_symbols": ["BTCUSDT", "ETHUSDT"],
    }
    assert parse_rule_assignments("auto_execute=true") == {"auto_execute": True}
    with pytest.raises(CommandArgsError, match="min_confidence"):
        parse_rule_assignments("min_confidence=7")
    with pytest.raises(CommandArgsError, match="field=value"):
        parse_rule_assignments("leverage")


def test_indicator_text_for_each_state() -> None:
    assert "LIVE[/] latency 3 ms" in describe_status(LIVE, T0)
    assert "READ-ONLY" not in describe_status(LIVE, T0)
    text = describe_status(POLLING, T0)
    assert "last sync 12 s ago, next poll in 48 s" in text and "READ-ONLY" in text
    assert "attempt 3, retry in 4 s" in describe_status(RECONNECTING, T0)
    offline = ConnectionStatus(ConnState.OFFLINE, detail="connecting")
    assert "OFFLINE[/] connecting" in describe_status(offline, T0)
    stale = ConnectionStatus(ConnState.STALE, last_sync_at=T0 - 35_000)
    assert "nothing received since 35 s ago" in describe_status(stale, T0)


def test_news_documents_parse() -> None:
    from ginie_tui.news import NewsError, parse_news

    rss = (
        "<rss><channel><item><title>BTC up</title><link>http://x/1</link>"
        "<pubDate>Tue, 25 Nov 2025</pubDate></item><item><title></title></item></channel></rss>"
    )
    assert [n.title for n in parse_news(rss)] == ["BTC up"]
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>ETH</title>'
        '<link href="http://x/2"/><updated>2025-11-25</updated></entry></feed>'
    )
    assert parse_news(atom)[0].link == "http://x/2"
    assert parse_news('{"items": [{"title": "a", "url": "u"}, {"nope": 1}]}')[0].link == "u"
    for bad in ("plain text", "<rss><item>", '{"items": 3}'):
        with pytest.raises(NewsError):
            parse_news(bad)

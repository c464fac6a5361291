"""The console and its feed against a real server on 127.0.0.1: live events reach their panel,
a stopped server turns the indicator RECONNECTING then POLLING, fallback polls come at the set
interval and never while LIVE (counted by /api/metrics), a restart loses nothing, a link that
goes silent turns STALE."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ginie_protocol import Topic
from ginie_protocol.events import Signal
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.connection import ConnState
from ginie_tui.feed import CommandRefused, Feed, FeedSettings
from ginie_tui.screens.modals import PendingSignalsModal
from ginie_tui.widgets.chart import CandleChart
from ginie_tui.widgets.indicator import ConnectionIndicator
from ginie_tui.widgets.market import MarketPanel
from ginie_tui.widgets.rowlog import RowLog
from ginie_tui.widgets.signals import SignalsPanel
from tests.faults.proxy import Direction, FaultProxy, is_websocket_upgrade
from tests.harness import ScriptedSource, running_server, wait_for

SIZE = (100, 32)
POLL_S = 1.0


def signal(n: int, now_ms: int) -> Signal:
    return Signal(
        signal_id=f"live-{n}",
        symbol="BTCUSDT",
        direction="LONG",
        mode="scalp",
        strategy="ema_cross",
        confidence=0.8,
        entry_price=65_000.0,
        take_profit=65_500.0,
        stop_loss=64_800.0,
        status="pending",
        created_at=now_ms,
        expires_at=now_ms + 300_000,
    )


def console(url: str, token: str) -> tuple[GinieApp, Feed]:
    feed = Feed(
        FeedSettings(
            url=url,
            token=token,
            poll_interval_s=POLL_S,
            grace_s=0.5,
            backoff_base_s=0.1,
            backoff_cap_s=0.4,
            ping_interval_s=0.5,
            seed=7,
        )
    )
    app = make_app(feed, settings=ConsoleSettings(server=url, poll_interval_s=POLL_S))
    return app, feed


def state_is(app: GinieApp, state: ConnState) -> Callable[[], bool]:
    return lambda: app.status.state is state


async def rest_calls(url: str, token: str, route: str) -> int:
    """How many calls of `route` the server counted for the token's user."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{url}/api/metrics", headers={"Authorization": f"Bearer {token}"}
        )
    calls: dict[str, int] = answer.json()["rest_calls"]
    return calls.get(route, 0)


async def snapshot_calls(url: str, token: str) -> int:
    return await rest_calls(url, token, "/api/snapshot")


async def market_calls(url: str, token: str) -> int:
    return await rest_calls(url, token, "/api/market/{symbol}")


async def market_calls_reach(url: str, token: str, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait until the server has counted `count` market calls; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while await market_calls(url, token) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} market calls after {timeout} s")


def market_span_reaches(app: GinieApp, seconds: float) -> Callable[[], bool]:
    """True once live mark prices span `seconds` of server time from now on."""
    start: list[int] = []

    def reached() -> bool:
        marks = [app.store.mark_price(s) for s in app.store.market_symbols()]
        newest = max((m.time for m in marks if m is not None), default=None)
        if newest is None:
            return False
        if not start:
            start.append(newest)
        return newest - start[0] >= seconds * 1000

    return reached


async def test_a_published_event_appears_in_its_panel(tmp_path: Path) -> None:
    async with running_server(tmp_path) as rs:
        app, _ = console(rs.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            await pilot.press("2")
            rs.hub.publish("demo", signal(1, int(time.time() * 1000)))
            table = app.query_one(SignalsPanel).query_one(RowLog)
            await wait_for(lambda: "live-1" in table.keys, timeout=5)
            assert "pending" in str(table.get_cell("live-1", "status"))
            await wait_for(lambda: "1 pending" in str(app.query_one(SignalsPanel).border_title))


async def test_a_stopped_server_turns_reconnecting_then_polling(tmp_path: Path) -> None:
    async with running_server(tmp_path) as rs:
        app, _ = console(rs.url, rs.token)
        async with app.run_test(size=SIZE):
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            await rs.server.stop()
            await wait_for(state_is(app, ConnState.RECONNECTING), timeout=5)
            assert "READ-ONLY" in str(app.query_one(ConnectionIndicator).render())
            await wait_for(state_is(app, ConnState.POLLING), timeout=5)
            assert "next poll" in str(app.query_one(ConnectionIndicator).render())


async def test_fallback_polls_at_the_interval_and_never_while_live(tmp_path: Path) -> None:
    async with running_server(tmp_path) as rs, FaultProxy("127.0.0.1", rs.server.port) as proxy:
        app, feed = console(proxy.url, rs.token)
        async with app.run_test(size=SIZE):
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            at_start = await snapshot_calls(rs.url, rs.token)
            assert at_start == 1, "the start-up snapshot only"
            await wait_for(market_span_reaches(app, 2.5 * POLL_S), timeout=10)
            assert await snapshot_calls(rs.url, rs.token) == at_start, "no poll while LIVE"

            proxy.refuse_new(is_websocket_upgrade)
            proxy.cut_all()
            await wait_for(state_is(app, ConnState.POLLING), timeout=5)
            # Polls are told apart by the feed's own record of them: the time of the last sync
            # is no marker, since frames already on their way when the link was cut are
            # applied (and stamped) after the cut.
            polls: list[tuple[int, str]] = []

            def four_polls() -> bool:
                at = feed.machine.last_poll_at
                if at is not None and (not polls or polls[-1][0] != at):
                    polls.append((at, feed.status().detail))
                return len(polls) >= 4

            await wait_for(four_polls, timeout=10)
            assert [error for _, error in polls if error] == [], "every poll succeeded"
            assert await snapshot_calls(rs.url, rs.token) - at_start in (4, 5)
            gaps = [b - a for (a, _), (b, _) in itertools.pairwise(polls)]
            assert all(gap >= 0.9 * POLL_S * 1000 for gap in gaps), gaps
            assert app.status.state is ConnState.POLLING
            assert feed.machine.next_poll_at() is not None

            proxy.admit_all()
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            back_live = await snapshot_calls(rs.url, rs.token)
            await wait_for(market_span_reaches(app, 2.5 * POLL_S), timeout=10)
            assert await snapshot_calls(rs.url, rs.token) == back_live, "no poll while LIVE"


async def test_a_shown_symbol_gets_its_candle_history_once_per_connection(
    tmp_path: Path,
) -> None:
    """The market panel's symbol brings `/api/market/{symbol}` into the store through the feed:
    once per symbol and connection, again after a reconnect, never on a timer."""
    async with running_server(tmp_path) as rs, FaultProxy("127.0.0.1", rs.server.port) as proxy:
        app, _ = console(proxy.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            panel = app.query_one(MarketPanel)
            await pilot.press("5")
            await wait_for(lambda: panel.symbol != "", timeout=10)
            first = panel.symbol
            await wait_for(lambda: len(app.store.klines(first)) > 1, timeout=5)
            async with httpx.AsyncClient() as client:
                reply = await client.get(f"{rs.url}/api/market/{first}", headers=rs.auth())
            served = reply.json()["data"]["FUTURES_KLINE_UPDATE"]
            held = {k.open_time for k in app.store.klines(first)}
            assert len(served) > 1 and {k["open_time"] for k in served[:-1]} <= held
            chart = panel.query_one(CandleChart)
            await wait_for(
                lambda: (
                    chart.figure is not None
                    and len(chart.figure.candles) == len(app.store.klines(first))
                )
            )
            assert await market_calls(rs.url, rs.token) == 2, "the console's fetch and ours"

            panel.cycle(1)
            await wait_for(lambda: panel.symbol not in ("", first), timeout=5)
            second = panel.symbol
            await wait_for(lambda: len(app.store.klines(second)) > 1, timeout=5)
            panel.cycle(-1)
            await wait_for(lambda: panel.symbol == first, timeout=5)
            await wait_for(market_span_reaches(app, 1.5), timeout=10)
            assert await market_calls(rs.url, rs.token) == 3, "once per symbol, no timer"

            proxy.cut_all()
            await wait_for(lambda: not app.status.live, timeout=5)
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            await market_calls_reach(rs.url, rs.token, 5)
            await wait_for(market_span_reaches(app, 1.0), timeout=10)
            assert await market_calls(rs.url, rs.token) == 5, "both symbols again, only once"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_restarted_server_brings_the_console_back_live_with_nothing_missing(
    tmp_path: Path,
) -> None:
    """Signals 4 to 6 are published while the console is away. It may come back by resuming
    the socket (the events replayed) or by a fallback poll that lands first (the snapshot);
    either way it must end up with all six. One scripted source serves both servers, so its
    snapshot, like the engine's state, outlives the restart."""
    port = free_port()
    now = int(time.time() * 1000)
    source = ScriptedSource()
    async with running_server(tmp_path, port=port, sources=[source]) as first:
        app, _ = console(first.url, first.token)
        token = first.token
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            await pilot.press("2")
            for n in (1, 2, 3):
                source.emit("demo", signal(n, now))
            await wait_for(lambda: app.store.get(Topic.SIGNAL_UPDATE, "live-3") is not None)
            epoch = app.store.epoch
            await first.server.stop()
            await wait_for(lambda: not app.status.live, timeout=5)
            async with running_server(tmp_path, port=port, sources=[source]) as second:
                for n in (4, 5, 6):
                    source.emit("demo", signal(n, now))
                await wait_for(state_is(app, ConnState.LIVE), timeout=10)
                table = app.query_one(SignalsPanel).query_one(RowLog)
                wanted = {f"live-{n}" for n in range(1, 7)}
                await wait_for(lambda: wanted <= set(table.keys), timeout=5)
                assert app.store.epoch == epoch, "same database, same epoch"
                async with httpx.AsyncClient() as client:
                    reply = await client.get(
                        f"{second.url}/api/snapshot?topics=SIGNAL_UPDATE",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                answer: Any = reply.json()
                assert answer["seq"] >= 6
                await wait_for(lambda: app.store.seq >= answer["seq"], timeout=5)


async def test_approving_a_pending_signal_from_the_modal(tmp_path: Path) -> None:
    """signal.approve goes to the real engine; the panel changes only with its SIGNAL_UPDATE."""
    async with running_server(tmp_path, speed=100.0) as rs:
        app, feed = console(rs.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            await pilot.press("2")
            rules = {"auto_execute": False, "signal_ttl_seconds": 86_400}
            assert (await feed.command("autopilot.set_rules", rules)).ok
            await wait_for(
                lambda: any(s.status == "pending" for s in app.store.items(Topic.SIGNAL_UPDATE)),
                timeout=15,
            )
            await pilot.press("s")
            await wait_for(lambda: isinstance(app.screen, PendingSignalsModal))
            modal = app.screen
            assert isinstance(modal, PendingSignalsModal)
            chosen = modal.selected()
            assert chosen is not None and chosen.status == "pending"
            await pilot.press("a")
            await wait_for(lambda: modal.asking is not None)
            await pilot.press("y")
            decided = lambda: app.store.get(Topic.SIGNAL_UPDATE, chosen.signal_id).status  # noqa: E731
            await wait_for(lambda: decided() != "pending", timeout=10)
            table = app.query_one(SignalsPanel).query_one(RowLog)
            await wait_for(
                lambda: decided() in str(table.get_cell(chosen.signal_id, "status")), timeout=5
            )
            assert decided() in {"approved", "executed", "rejected"}


async def test_a_silent_link_turns_stale_and_read_only_then_live_again(tmp_path: Path) -> None:
    """Delivery stalls in the network (the socket stays open): past the ping timeout the
    console says STALE, refuses commands and marks panels stale; it is LIVE again after."""
    async with running_server(tmp_path) as rs, FaultProxy("127.0.0.1", rs.server.port) as proxy:
        feed = Feed(
            FeedSettings(
                url=proxy.url,
                token=rs.token,
                ping_interval_s=0.2,
                ping_timeout_s=1.0,
                backoff_base_s=0.1,
                backoff_cap_s=0.4,
                seed=5,
            )
        )
        app = make_app(feed, settings=ConsoleSettings(server=proxy.url, tick_s=0.05))
        async with app.run_test(size=SIZE):
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            socket = next(c for c in proxy.live if is_websocket_upgrade(c.first_bytes))
            socket.stall(Direction.DOWN)
            await wait_for(state_is(app, ConnState.STALE), timeout=5)
            indicator = str(app.query_one(ConnectionIndicator).render())
            assert "STALE" in indicator and "READ-ONLY" in indicator
            assert app.query_one(SignalsPanel).border_subtitle == "stale"
            with pytest.raises(CommandRefused, match="read-only while STALE"):
                await feed.command("ginie.stop", {})
            socket.resume(Direction.DOWN)
            await wait_for(state_is(app, ConnState.LIVE), timeout=10)
            assert app.query_one(SignalsPanel).border_subtitle == "live"

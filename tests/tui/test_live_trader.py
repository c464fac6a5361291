"""The trader's console against a real paper server on 127.0.0.1: the order ticket places a
manual bracket order and shows the server's refusals by field, the kill switch leaves nothing
open, a resume's replay raises no alert, and `ginie-tui export` lists the server's history."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from contextlib import redirect_stderr
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from ginie_protocol.events import (
    Chain,
    CircuitBreaker,
    LifecycleEvent,
    ModeSafety,
    Position,
    Trade,
)
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.cli import main
from ginie_tui.connection import ConnState
from ginie_tui.feed import Feed, FeedSettings
from ginie_tui.screens.flatten import FlattenModal
from ginie_tui.screens.modals import ConfirmModal
from ginie_tui.screens.ticket import OrderTicket
from ginie_tui.store import Change
from tests.faults.proxy import FaultProxy, is_websocket_upgrade
from tests.harness import ScriptedSource, ServerProcess, connect_client, running_server, wait_for

SIZE = (100, 32)
OPEN_ORDER = {"NEW", "PARTIALLY_FILLED"}


def console(url: str, token: str, grace_s: float = 0.5) -> GinieApp:
    feed = Feed(
        FeedSettings(
            url=url, token=token, grace_s=grace_s, backoff_base_s=0.1, backoff_cap_s=0.4, seed=3
        )
    )
    return make_app(feed, settings=ConsoleSettings(server=url))


async def live_with_marks(app: GinieApp, *symbols: str) -> None:
    """LIVE, with a mark price of each symbol in the store, and the autopilot told not to
    execute its signals (so no chain of its own takes a symbol the test trades)."""
    await wait_for(lambda: app.status.state is ConnState.LIVE, timeout=10)
    ack = await app.feed.command("autopilot.set_rules", {"auto_execute": False})
    assert ack.ok, ack
    await wait_for(lambda: all(app.store.mark_price(s) for s in symbols), timeout=10)


def mark(app: GinieApp, symbol: str) -> float:
    held = app.store.mark_price(symbol)
    assert held is not None
    return held.mark_price


async def place_with_ticket(app: GinieApp, pilot: Pilot[None], **fields: str) -> OrderTicket:
    """Open the ticket, fill `fields` in, press enter and confirm with y."""
    await pilot.press("o")
    await wait_for(lambda: isinstance(app.screen, OrderTicket) and bool(app.screen.query("#size")))
    ticket = app.screen
    assert isinstance(ticket, OrderTicket)
    await pilot.pause()
    for name, value in fields.items():
        ticket.query_one(f"#{name}", Input).value = value
    await pilot.press("enter")
    await wait_for(lambda: isinstance(app.screen, ConfirmModal))
    await pilot.press("y")
    return ticket


def manual_chains(app: GinieApp, symbol: str) -> list[Any]:
    return [
        c
        for c in app.store.items("CHAIN_UPDATE")
        if c.source == "manual" and c.symbol == symbol and c.status == "open"
    ]


def orders_by_client_id(app: GinieApp) -> dict[str, Any]:
    return {o.client_order_id: o for o in app.store.items("ORDER_UPDATE")}


async def test_the_ticket_places_a_manual_bracket_order(tmp_path: Path) -> None:
    async with running_server(tmp_path) as rs:
        app = console(rs.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await live_with_marks(app, "ETHUSDT")
            price = mark(app, "ETHUSDT")
            target, stop = round(price * 1.03, 1), round(price * 0.97, 1)
            await place_with_ticket(
                app,
                pilot,
                symbol="ETHUSDT",
                size="0.05",
                take_profit=str(target),
                stop_loss=str(stop),
                leverage="4",
            )
            await wait_for(lambda: not isinstance(app.screen, OrderTicket), timeout=10)

            def bracket_working() -> bool:
                chains = manual_chains(app, "ETHUSDT")
                if not chains:
                    return False
                chain, orders = chains[0], orders_by_client_id(app)
                entry = orders.get(chain.entry_client_order_id)
                exits = [orders.get(i) for i in chain.take_profit_client_order_ids]
                exits.append(orders.get(chain.stop_loss_client_order_id or ""))
                return (
                    entry is not None
                    and entry.status == "FILLED"
                    and all(o is not None and o.status == "NEW" for o in exits)
                )

            await wait_for(bracket_working, timeout=10)
            (chain,) = manual_chains(app, "ETHUSDT")
            assert chain.quantity == pytest.approx(0.05) and chain.direction == "LONG"
            assert chain.take_profit_prices == [target] and chain.stop_loss_price == stop
            assert any(n.title == "Order placed" for n in app._notifications)


@pytest.mark.parametrize(
    ("fields", "where", "reason"),
    [
        ({"symbol": "BTCUSDT", "size": "0.0005"}, "#size-error", "below the step size"),
        ({"symbol": "DOGEUSDT", "size": "100"}, "#symbol-error", "unknown symbol DOGEUSDT"),
    ],
    ids=["below-step-size", "unknown-symbol"],
)
async def test_the_server_refusal_is_shown_next_to_its_field(
    tmp_path: Path, fields: dict[str, str], where: str, reason: str
) -> None:
    async with running_server(tmp_path) as rs:
        app = console(rs.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await live_with_marks(app, "BTCUSDT")
            ticket = await place_with_ticket(app, pilot, **fields)
            shown = ticket.query_one(where, Static)
            await wait_for(lambda: reason in str(shown.render()), timeout=10)
            assert app.screen is ticket
            assert not [c for c in app.store.items("CHAIN_UPDATE") if c.source == "manual"]


async def test_the_kill_switch_leaves_no_position_no_order_and_the_autopilot_stopped(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path) as rs:
        app = console(rs.url, rs.token)
        async with app.run_test(size=SIZE) as pilot:
            await live_with_marks(app, "ETHUSDT", "SOLUSDT")
            for symbol, size in (("ETHUSDT", 0.05), ("SOLUSDT", 1.0)):
                price = mark(app, symbol)
                ack = await app.feed.command(
                    "order.place",
                    {
                        "symbol": symbol,
                        "side": "SELL",
                        "type": "MARKET",
                        "quantity": size,
                        "take_profit": round(price * 0.95, 2),
                        "stop_loss": round(price * 1.05, 2),
                    },
                )
                assert ack.ok, ack
            await wait_for(lambda: manual_chains(app, "ETHUSDT") and manual_chains(app, "SOLUSDT"))
            chains = {c.chain_id: c for s in ("ETHUSDT", "SOLUSDT") for c in manual_chains(app, s)}
            exits = {
                cid
                for c in chains.values()
                for cid in [*c.take_profit_client_order_ids, c.stop_loss_client_order_id]
                if cid
            }
            await wait_for(lambda: all(orders_by_client_id(app).get(e) for e in exits))
            status = app.store.singleton("GINIE_STATUS_UPDATE")
            assert status is not None and status.running

            await pilot.press("K")
            await wait_for(lambda: isinstance(app.screen, FlattenModal))
            modal = app.screen
            body = modal.query_one("#flatten-body", Static)
            plan = str(body.render())
            assert "ETHUSDT" in plan and "SOLUSDT" in plan and "(running now)" in plan
            await pilot.press("y")
            await wait_for(lambda: "Nothing failed." in str(body.render()), timeout=10)
            assert "Closed ETHUSDT, SOLUSDT." in str(body.render())

            def flat() -> bool:
                positions = [p for p in app.store.items("POSITION_UPDATE") if p.size]
                orders = [o for o in app.store.items("ORDER_UPDATE") if o.status in OPEN_ORDER]
                ginie = app.store.singleton("GINIE_STATUS_UPDATE")
                steps = {e.step for e in app.store.items("LIFECYCLE_EVENT")}
                return (
                    not positions
                    and not orders
                    and ginie is not None
                    and not ginie.running
                    and {"flatten_started", "autopilot_stopped", "flatten_done"} <= steps
                )

            await wait_for(flat, timeout=10)
            assert not [c for c in app.store.items("CHAIN_UPDATE") if c.status == "open"]

            def steps_of(chain_id: str) -> list[str]:
                events = sorted(app.store.items("LIFECYCLE_EVENT"), key=lambda e: e.id)
                return [e.step for e in events if e.chain_id == chain_id]

            def chains_closed_by_flatten() -> bool:
                held = [app.store.get("CHAIN_UPDATE", cid) for cid in chains]
                return all(
                    c is not None and c.status == "closed" and c.close_reason == "flatten"
                    for c in held
                )

            await wait_for(chains_closed_by_flatten, timeout=10)
            for chain_id, chain in chains.items():
                steps = steps_of(chain_id)
                cancelled = len(chain.take_profit_client_order_ids) + 1  # the targets, the stop
                assert steps.count("order_cancelled") == cancelled, (chain_id, steps)
                assert steps.index("close_requested") < steps.index("closed"), (chain_id, steps)
            account = steps_of("account")
            assert account[0] == "flatten_started" and account[-1] == "flatten_done", account
            assert "autopilot_stopped" in account and "flatten_failed" not in account, account


def while_away() -> list[Any]:
    """One event of every user-event alert kind, as the server sends them while the console
    is away: a fill, a chain closed with its P&L, a tripped breaker, a blocked mode and a
    position 1 % from its liquidation price."""
    return [
        Trade(
            trade_id="away-1",
            order_id="o-1",
            client_order_id="g-C1-E",
            symbol="BTCUSDT",
            side="BUY",
            price=97_000.0,
            quantity=0.01,
            fee=0.4,
            time=1,
        ),
        Chain(
            chain_id="C9",
            symbol="ETHUSDT",
            direction="LONG",
            mode="scalp",
            source="manual",
            strategy="manual",
            status="closed",
            entry_client_order_id="g-C9-E",
            quantity=0.1,
            remaining_qty=0.0,
            entry_price=3_000.0,
            realized_pnl=-12.5,
            close_reason="stop_loss",
            opened_at=1,
            closed_at=2,
        ),
        CircuitBreaker(
            state="tripped",
            reason="3 losses in a row",
            consecutive_losses=3,
            max_consecutive_losses=3,
            max_daily_loss=500.0,
            max_hourly_loss=200.0,
            cooldown_minutes=30.0,
            tripped_at=2,
        ),
        ModeSafety(
            mode="scalp",
            status="blocked",
            reason="daily loss 300 USDT reached",
            loss_today=300.0,
            max_consecutive_losses=4,
            max_loss_today=300.0,
        ),
        Position(
            symbol="SOLUSDT",
            size=10.0,
            entry_price=150.0,
            mark_price=120.0,
            unrealized_pnl=-300.0,
            leverage=5,
            liquidation_price=118.8,
            updated_at=3,
        ),
    ]


async def test_events_replayed_after_a_resume_raise_no_alert(tmp_path: Path) -> None:
    """A fill, a closed chain, a breaker trip, a blocked mode and a position near liquidation
    made while the console is away reach it in the resume's replay: they are in the store,
    marked replayed, and no alert is raised for any of them (only the connection's own)."""
    source = ScriptedSource()
    async with (
        running_server(tmp_path, sources=[source]) as rs,
        FaultProxy("127.0.0.1", rs.server.port) as proxy,
    ):
        app = console(proxy.url, rs.token, grace_s=30.0)
        sources: list[tuple[str, str]] = []
        report = app.feed_changes

        def noted(changes: list[Change]) -> None:
            sources.extend((c.topic, c.source) for c in changes)
            report(changes)

        app.feed_changes = noted  # type: ignore[method-assign]
        async with app.run_test(size=SIZE):
            await wait_for(lambda: app.status.state is ConnState.LIVE, timeout=10)
            proxy.refuse_new(is_websocket_upgrade)
            proxy.cut_all()
            await wait_for(lambda: not app.status.live, timeout=5)
            for data in while_away():
                source.emit("demo", data)
            proxy.admit_all()
            await wait_for(lambda: app.store.get("POSITION_UPDATE", "SOLUSDT") is not None, 10)
            await wait_for(lambda: app.status.state is ConnState.LIVE, timeout=10)
            await wait_for(
                lambda: any(n.title == "Connection regained" for n in app._notifications)
            )
            assert app.store.get("TRADE_UPDATE", "away-1") is not None
            assert app.store.get("CHAIN_UPDATE", "C9") is not None
            breaker = app.store.singleton("CIRCUIT_BREAKER_UPDATE")
            assert breaker is not None and breaker.state == "tripped"
            topics = {
                "TRADE_UPDATE",
                "CHAIN_UPDATE",
                "CIRCUIT_BREAKER_UPDATE",
                "MODE_SAFETY_UPDATE",
                "POSITION_UPDATE",
            }
            assert {(t, "replayed") for t in topics} <= set(sources), sources
            assert not {(t, "live") for t in topics} & set(sources), sources
            assert [a.kind for a in app.alerter.recent] == ["connection", "connection"]
            assert [n.title for n in app._notifications] == [
                "Connection lost",
                "Connection regained",
            ]


# ---------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def traded_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A paper server child process on which the demo user made four manual trades."""
    with ServerProcess(tmp_path_factory.mktemp("export") / "ginie.db") as proc:
        assert proc.token is not None
        asyncio.run(make_trades(proc.ws_url, proc.token))
        yield proc


async def make_trades(ws_url: str, token: str) -> None:
    async with connect_client(ws_url, token) as client:
        await client.subscribe()
        for n, symbol in enumerate(("ETHUSDT", "SOLUSDT")):
            args = {"symbol": symbol, "side": "BUY", "type": "MARKET", "notional": 200.0}
            ack = await client.command("order.place", args, command_id=f"p-{n}")
            assert ack.ok, ack
            ack = await client.command("position.close", {"symbol": symbol}, f"c-{n}")
            assert ack.ok, ack


def server_trades(proc: ServerProcess) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {proc.token}"}
    for _ in range(100):  # the closes fill on the exchange's next ticks
        data: list[dict[str, Any]] = httpx.get(
            f"{proc.url}/api/futures/trades", headers=headers
        ).json()["data"]
        if len(data) >= 4:
            return data
        time.sleep(0.1)
    raise AssertionError(f"fewer than 4 trades: {data}")


def test_export_trades_as_csv_lists_every_trade_of_the_server(
    traded_server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = server_trades(traded_server)
    out = tmp_path / "trades.csv"
    argv = ["export", "trades", "--format", "csv", "-o", str(out)]
    argv += ["--url", traded_server.url, "--token", str(traded_server.token)]
    assert main(argv) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["trade_id"] for r in rows] == [t["trade_id"] for t in expected]
    assert list(rows[0]) == list(Trade.model_fields)
    assert {r["symbol"] for r in rows} == {"ETHUSDT", "SOLUSDT"}
    assert [Trade.model_validate(as_model_fields(r)) for r in rows] == [
        Trade.model_validate(t) for t in expected
    ], "every field of every trade as the server gives it"
    assert capsys.readouterr().err == ""


def as_model_fields(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row's cells as a model takes them (an empty cell is a missing value)."""
    return {name: value for name, value in row.items() if value != ""}


def test_export_json_to_stdout_and_since(
    traded_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = ["--url", traded_server.url, "--token", str(traded_server.token)]
    assert main(["export", "orders", "--format", "json", *connection]) == 0
    orders = json.loads(capsys.readouterr().out)
    assert len(orders) >= 4 and {o["symbol"] for o in orders} == {"ETHUSDT", "SOLUSDT"}
    assert main(["export", "orders", "--since", "2999-01-01", *connection]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [], "a header, no rows"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "2025-13-01"], "not a date of the form YYYY-MM-DD: '2025-13-01'"),
        (["--format", "xls"], "invalid choice: 'xls'"),
        (["--url", "http://127.0.0.1:1"], "cannot reach http://127.0.0.1:1"),
        (["--token", "wrong"], "the server refused the token (HTTP 401)"),
    ],
)
def test_export_errors_are_one_line(
    traded_server: ServerProcess,
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["export", "trades", "--url", traded_server.url, "--token", str(traded_server.token)]
    try:
        code = main(base + argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err


async def test_export_lifecycle_pages_back_through_a_long_history(tmp_path: Path) -> None:
    source = ScriptedSource()
    count = 2_345
    async with running_server(tmp_path, sources=[source]) as rs:
        for n in range(1, count + 1):
            source.emit(
                "demo",
                LifecycleEvent(
                    id=n, chain_id=f"C{n % 7}", symbol="BTCUSDT", step="note", message="m", time=n
                ),
            )
        out = tmp_path / "lifecycle.csv"
        argv = ["export", "lifecycle", "-o", str(out), "--url", rs.url, "--token", rs.token]
        err = io.StringIO()

        def export() -> int:
            with redirect_stderr(err):
                return main(argv)

        assert await asyncio.to_thread(export) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(r["id"]) for r in rows] == list(range(1, count + 1)), "all of them, oldest first"
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert "2,345 lifecycle events fetched" in err.getvalue()

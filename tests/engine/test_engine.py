"""The engine's commands, per-user isolation, snapshots that match the last event, and
reloading everything from the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ginie_protocol.events import (
    KEY_FIELD,
    AutopilotRules,
    Chain,
    CircuitBreaker,
    GinieStatus,
    ModeSafety,
    Order,
    Position,
    Signal,
    WireModel,
)
from ginie_server.engine import ENGINE_TOPICS as USER_TOPICS
from ginie_server.sources import CommandError

from .conftest import Rig


def last_of(rig: Rig, user: str, kind: str) -> WireModel:
    return [d for u, t, d in rig.recorder.events if u == user and t == kind][-1]


def assert_snapshots_match_events(rig: Rig, user: str) -> None:
    """Every topic's snapshot is exactly what that user's events last said."""
    for topic in USER_TOPICS:
        snapshot = rig.engine.snapshots[topic](user)
        published = [d for u, t, d in rig.recorder.events if u == user and t == topic]
        key_field = KEY_FIELD[topic]
        if key_field is None:
            assert snapshot == published[-1], topic
        else:
            latest = {getattr(d, key_field): d for d in published}
            assert {getattr(d, key_field): d for d in snapshot} == latest, topic  # type: ignore[union-attr]


async def test_a_new_user_gets_the_first_state_of_every_topic(rig: Rig) -> None:
    await rig.start("alice")
    kinds = {t for u, t, _ in rig.recorder.events if u == "alice"}
    assert kinds == set(USER_TOPICS) - {
        "POSITION_UPDATE",
        "ORDER_UPDATE",
        "TRADE_UPDATE",
        "CHAIN_UPDATE",
        "SIGNAL_UPDATE",
    }
    balance = rig.engine.snapshots["BALANCE_UPDATE"]("alice")
    assert [(b.asset, b.wallet_balance) for b in balance] == [("USDT", 10_000.0)]  # type: ignore[union-attr]
    assert rig.engine.snapshots["ORDER_UPDATE"]("nobody") == []
    assert isinstance(rig.engine.snapshots["PNL_UPDATE"]("nobody"), WireModel)


async def test_users_trade_apart_and_see_only_their_own_events(rig: Rig) -> None:
    await rig.start("alice", "bob")
    await rig.command("bob", "ginie.stop")
    await rig.run_until(lambda: any(isinstance(d, Chain) for d in rig.recorder.of("alice")))
    await rig.run(30)
    assert not any(isinstance(d, Chain | Order | Signal) for d in rig.recorder.of("bob"))
    alice_chains = {d.chain_id for d in rig.recorder.of("alice") if isinstance(d, Chain)}
    assert rig.engine.snapshots["CHAIN_UPDATE"]("bob") == []
    assert {c.chain_id for c in rig.engine.snapshots["CHAIN_UPDATE"]("alice")} == alice_chains  # type: ignore[union-attr]
    assert_snapshots_match_events(rig, "alice")
    assert_snapshots_match_events(rig, "bob")


async def test_signal_commands(rig: Rig) -> None:
    await rig.start("alice")
    await rig.command("alice", "autopilot.set_rules", auto_execute=False, signal_ttl_seconds=10)
    pilot = rig.book("alice").autopilot
    await rig.run_until(lambda: any(s.status == "pending" for s in pilot.signals.values()))
    signal = next(s for s in pilot.signals.values() if s.status == "pending")
    result = await rig.command("alice", "signal.reject", signal_id=signal.signal_id, reason="no")
    assert result == {"signal_id": signal.signal_id, "status": "rejected"}
    rejected = last_of(rig, "alice", "SIGNAL_UPDATE")
    assert isinstance(rejected, Signal) and (rejected.status, rejected.reason) == ("rejected", "no")
    with pytest.raises(CommandError) as err:
        await rig.command("alice", "signal.approve", signal_id=signal.signal_id)
    assert err.value.code == "conflict"
    with pytest.raises(CommandError) as err:
        await rig.command("alice", "signal.approve", signal_id="S999")
    assert err.value.code == "not_found"
    await rig.run_until(lambda: any(s.status == "expired" for s in pilot.signals.values()))
    status = last_of(rig, "alice", "GINIE_STATUS_UPDATE")
    assert isinstance(status, GinieStatus)
    assert status.rejections_by_reason["user"] == 1 and status.scans > 0
    assert_snapshots_match_events(rig, "alice")


async def test_autopilot_and_safety_commands(rig: Rig) -> None:
    await rig.start("alice")
    assert await rig.command("alice", "ginie.stop") == {"running": False, "changed": True}
    status = last_of(rig, "alice", "GINIE_STATUS_UPDATE")
    assert isinstance(status, GinieStatus) and status.state == "stopped"
    assert (await rig.command("alice", "ginie.stop"))["changed"] is False
    scans = status.scans
    await rig.run(5)
    assert rig.engine.snapshots["GINIE_STATUS_UPDATE"]("alice").scans == scans  # type: ignore[union-attr]
    await rig.command("alice", "ginie.start")

    result = await rig.command("alice", "mode.pause", mode="swing", minutes=1)
    assert result["status"] == "paused"
    await rig.run(61)
    safety = last_of(rig, "alice", "MODE_SAFETY_UPDATE")
    assert isinstance(safety, ModeSafety) and (safety.mode, safety.status) == ("swing", "active")
    await rig.command("alice", "mode.pause", mode="scalp")
    assert (await rig.command("alice", "mode.resume", mode="scalp"))["status"] == "active"

    await rig.command("alice", "autopilot.set_rules", max_consecutive_losses=2, cooldown_minutes=5)
    rules = last_of(rig, "alice", "AUTOPILOT_RULES_UPDATE")
    breaker = last_of(rig, "alice", "CIRCUIT_BREAKER_UPDATE")
    assert isinstance(rules, AutopilotRules) and rules.max_consecutive_losses == 2
    assert isinstance(breaker, CircuitBreaker) and breaker.max_consecutive_losses == 2
    with pytest.raises(CommandError) as err:
        await rig.command("alice", "autopilot.set_rules", allowed_symbols=["DOGEUSDT"])
    assert err.value.code == "bad_request"
    assert (await rig.command("alice", "circuit_breaker.reset"))["state"] == "ok"
    assert_snapshots_match_events(rig, "alice")


async def test_the_breaker_trips_blocks_entries_and_cools_down(rig: Rig) -> None:
    await rig.start("alice")
    await rig.command("alice", "autopilot.set_rules", max_consecutive_losses=1, cooldown_minutes=1)
    breakers = lambda: [d for d in rig.recorder.of("alice", "CIRCUIT_BREAKER_UPDATE")]  # noqa: E731
    await rig.run_until(lambda: any(b.state == "tripped" for b in breakers()))  # type: ignore[attr-defined]
    status = last_of(rig, "alice", "GINIE_STATUS_UPDATE")
    assert isinstance(status, GinieStatus) and status.state == "blocked"
    await rig.run_until(lambda: breakers()[-1].state == "ok")  # type: ignore[attr-defined]
    states = [b.state for b in breakers()]  # type: ignore[attr-defined]
    changes = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert changes[-3:] == ["tripped", "cooling_down", "ok"]


async def test_cancel_and_close_commands(rig: Rig) -> None:
    await rig.start("alice")
    user = rig.book("alice")
    await rig.run_until(lambda: bool(user.live_chains()))
    chain = user.live_chains()[0]
    with pytest.raises(CommandError) as err:
        await rig.command("alice", "order.cancel", order_id="P999")
    assert err.value.code == "not_found"
    result = await rig.command(
        "alice", "order.cancel", client_order_id=chain.stop_loss_client_order_id
    )
    assert result["status"] == "CANCELED"
    steps = [d.step for d in rig.recorder.of("alice", "LIFECYCLE_EVENT")]  # type: ignore[attr-defined]
    assert steps[-1] == "order_cancelled"
    await rig.command("alice", "position.close", symbol=chain.symbol.lower())
    closed = user.chains[chain.chain_id]
    assert (closed.status, closed.close_reason) == ("closed", "manual_close")
    position = last_of(rig, "alice", "POSITION_UPDATE")
    assert isinstance(position, Position) and position.size == 0
    with pytest.raises(CommandError) as err:
        await rig.command("alice", "position.close", symbol=chain.symbol)
    assert err.value.code == "not_found"
    assert_snapshots_match_events(rig, "alice")


async def test_everything_reloads_after_a_restart(db_path: Path) -> None:
    first = Rig(db_path)
    await first.start("alice")
    user = first.book("alice")
    await first.run_until(lambda: bool(user.live_chains()))
    snapshots = {t: first.engine.snapshots[t]("alice") for t in USER_TOPICS}
    internal = user.internal_books()
    prices = {s: first.paper.market.price(s) for s in first.paper.symbols}
    await first.close()

    second = Rig(db_path)
    await second.start()
    for topic in USER_TOPICS:
        if topic not in ("SYSTEM_STATUS_UPDATE", "HEALTH_UPDATE"):
            assert second.engine.snapshots[topic]("alice") == snapshots[topic], topic
    assert second.book("alice").internal_books() == internal
    assert {s: second.paper.market.price(s) for s in second.paper.symbols} == prices
    account = second.paper.account("alice")
    assert {p.symbol: p.size for p in account.open_positions(0)} == {
        p.symbol: p.size
        for p in snapshots["POSITION_UPDATE"]
        if p.size  # type: ignore[union-attr]
    }
    assert set(account.open_orders) == {
        o.order_id
        for o in snapshots["ORDER_UPDATE"]
        if o.status == "NEW"  # type: ignore[union-attr]
    }
    kinds = [t for _, t, _ in second.recorder.events]
    assert kinds == ["HEALTH_UPDATE", "SYSTEM_STATUS_UPDATE"]
    await second.close()


async def test_a_restart_gives_a_live_chain_its_exits_back(db_path: Path) -> None:
    first = Rig(db_path)
    await first.start("alice")
    user = first.book("alice")
    await first.run_until(lambda: bool(user.live_chains()))
    chain = user.live_chains()[0]
    for cid in [*chain.take_profit_client_order_ids, chain.stop_loss_client_order_id]:
        await first.paper.cancel_order("alice", chain.symbol, client_order_id=cid)
    await first.engine.pump()
    await first.close()

    second = Rig(db_path)
    await second.start()
    steps = [d.step for d in second.recorder.of("alice", "LIFECYCLE_EVENT")]  # type: ignore[attr-defined]
    assert steps[0] == "exits_restored"
    open_ids = {o.client_order_id for o in second.book("alice").open_orders()}
    assert chain.stop_loss_client_order_id in open_ids
    await second.close()

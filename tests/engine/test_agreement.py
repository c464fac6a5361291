"""One unrealized P&L: the positions, the USDT balance and P&L show the same figure, in every
snapshot and at every point of the event sequence where P&L is published."""

from __future__ import annotations

import pytest

from ginie_protocol.events import Balance, Pnl, Position

from .conftest import Rig


def positions_unrealized(positions: dict[str, Position]) -> float:
    return sum(p.unrealized_pnl for p in positions.values() if p.size != 0)


def assert_snapshots_agree(rig: Rig, user: str) -> None:
    positions = rig.engine.snapshots["POSITION_UPDATE"](user)
    balances = rig.engine.snapshots["BALANCE_UPDATE"](user)
    pnl = rig.engine.snapshots["PNL_UPDATE"](user)
    assert isinstance(positions, list) and isinstance(balances, list) and isinstance(pnl, Pnl)
    (usdt,) = [b for b in balances if isinstance(b, Balance) and b.asset == "USDT"]
    total = positions_unrealized({p.symbol: p for p in positions if isinstance(p, Position)})
    assert usdt.unrealized_pnl == pnl.unrealized
    assert pnl.unrealized == pytest.approx(total, abs=1e-6)


async def test_positions_balance_and_pnl_agree_on_unrealized_pnl(rig: Rig) -> None:
    await rig.start("alice")
    open_positions = 0
    checked_snapshots = 0
    for _ in range(600):
        await rig.run(1)
        book = rig.book("alice")
        if book.open_positions():
            open_positions += 1
            assert_snapshots_agree(rig, "alice")
            checked_snapshots += 1
        if open_positions >= 120:
            break
    assert checked_snapshots >= 120

    positions: dict[str, Position] = {}
    balance: Balance | None = None
    checked_events = 0
    for user, _, data in rig.recorder.events:
        if user != "alice":
            continue
        if isinstance(data, Position):
            positions[data.symbol] = data
        elif isinstance(data, Balance) and data.asset == "USDT":
            balance = data
        elif isinstance(data, Pnl):
            assert balance is not None
            assert balance.unrealized_pnl == data.unrealized
            assert data.unrealized == pytest.approx(positions_unrealized(positions), abs=1e-6)
            if data.unrealized != 0:
                checked_events += 1
    assert checked_events >= 100

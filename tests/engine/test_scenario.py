"""Acceptance: one trade from signal to take-profit and one to stop-loss, on a seeded market
driven by a manual clock, with the exact ordered events and their key fields."""

from __future__ import annotations

import pytest

from ginie_protocol.events import (
    Balance,
    Chain,
    LifecycleEvent,
    Order,
    Pnl,
    Position,
    Signal,
    Trade,
    WireModel,
)
from ginie_server.domain.lifecycle import parse_client_id, take_profit_quantities
from ginie_server.storage.trading import TradingStore

from .conftest import Rig

TRAIL_TYPES = {
    "SIGNAL_UPDATE",
    "CHAIN_UPDATE",
    "LIFECYCLE_EVENT",
    "ORDER_UPDATE",
    "TRADE_UPDATE",
    "PERFORMANCE_UPDATE",
    "CIRCUIT_BREAKER_UPDATE",
    "MODE_SAFETY_UPDATE",
    "MODE_ALLOCATION_UPDATE",
    "STATS_UPDATE",
    "BALANCE_UPDATE",
}


def brief(kind: str, data: WireModel) -> tuple[object, ...]:
    """The key fields of an event, for comparing sequences."""
    if isinstance(data, Signal):
        return (kind, data.signal_id, data.status)
    if isinstance(data, Chain):
        return (kind, data.status)
    if isinstance(data, LifecycleEvent):
        return (kind, data.step)
    if isinstance(data, Order):
        parsed = parse_client_id(data.client_order_id)
        return (kind, parsed[1] if parsed else data.client_order_id, data.status)
    if isinstance(data, Trade):
        parsed = parse_client_id(data.client_order_id)
        return (kind, parsed[1] if parsed else data.client_order_id)
    if isinstance(data, Position):
        return (kind, data.size)
    return (kind,)


def trail(rig: Rig, start: int, chain_id: str, signal_id: str) -> list[tuple[object, ...]]:
    """Events from `start` on that belong to one trade; positions only when their size moves,
    balances only when their wallet does (not when the mark revalues them)."""
    out: list[tuple[object, ...]] = []
    size: float | None = None
    before = [d for _, _, d in rig.recorder.events[:start] if isinstance(d, Balance)]
    wallet = before[-1].wallet_balance if before else None
    for _, kind, data in rig.recorder.events[start:]:
        if isinstance(data, Position):
            if data.size != size:
                size = data.size
                out.append(brief(kind, data))
            continue
        if isinstance(data, Balance):
            if data.wallet_balance != wallet:
                wallet = data.wallet_balance
                out.append(brief(kind, data))
            continue
        if kind not in TRAIL_TYPES:
            continue
        if isinstance(data, Signal) and data.signal_id != signal_id:
            continue
        if isinstance(data, Chain | LifecycleEvent | Order | Trade) and data.chain_id != chain_id:
            continue
        out.append(brief(kind, data))
    return out


OPENING = [
    ("SIGNAL_UPDATE", "S{n}", "approved"),
    ("SIGNAL_UPDATE", "S{n}", "executed"),
    ("LIFECYCLE_EVENT", "created"),
    ("CHAIN_UPDATE", "pending"),
    ("STATS_UPDATE",),
    ("ORDER_UPDATE", "E", "NEW"),
    ("LIFECYCLE_EVENT", "entry_placed"),
    ("TRADE_UPDATE", "E"),
    ("ORDER_UPDATE", "E", "FILLED"),
    ("LIFECYCLE_EVENT", "entry_filled"),
    ("CHAIN_UPDATE", "open"),
    ("MODE_ALLOCATION_UPDATE",),
    ("STATS_UPDATE",),
    ("POSITION_UPDATE", "{size}"),
    ("BALANCE_UPDATE",),
    ("ORDER_UPDATE", "TP1", "NEW"),
    ("LIFECYCLE_EVENT", "take_profit_placed"),
    ("ORDER_UPDATE", "TP2", "NEW"),
    ("LIFECYCLE_EVENT", "take_profit_placed"),
    ("ORDER_UPDATE", "SL", "NEW"),
    ("LIFECYCLE_EVENT", "stop_loss_placed"),
]


def opening(signal_id: str, size: float) -> list[tuple[object, ...]]:
    n = signal_id[1:]
    return [
        tuple(
            size if f == "{size}" else f.replace("{n}", n) if isinstance(f, str) else f for f in e
        )
        for e in OPENING
    ]


async def approve_next_signal(rig: Rig, user: str) -> tuple[Signal, str, int]:
    """Wait for a pending signal and approve it; returns it, its chain and where it began."""
    pilot = rig.book(user).autopilot

    def pending() -> list[Signal]:
        return [s for s in pilot.signals.values() if s.status == "pending"]

    await rig.run_until(lambda: bool(pending()))
    signal = pending()[0]
    start = len(rig.recorder.events)
    result = await rig.command(user, "signal.approve", signal_id=signal.signal_id)
    assert result["status"] == "executed"
    chain_id = result["chain_id"]
    assert isinstance(chain_id, str)
    return signal, chain_id, start


def chain_of(rig: Rig, user: str, chain_id: str) -> Chain:
    return rig.book(user).chains[chain_id]


async def test_signal_to_take_profit_then_signal_to_stop_loss(rig: Rig) -> None:
    await rig.start("alice")
    await rig.command("alice", "autopilot.set_rules", auto_execute=False)

    signal, chain_id, start = await approve_next_signal(rig, "alice")
    await rig.run_until(lambda: chain_of(rig, "alice", chain_id).status == "closed")
    tp_chain = chain_of(rig, "alice", chain_id)
    assert (signal.signal_id, signal.symbol, signal.direction) == ("S1", "BNBUSDT", "LONG")
    assert tp_chain.close_reason == "take_profit"
    size = tp_chain.quantity
    assert trail(rig, start, chain_id, signal.signal_id) == [
        *opening("S1", size),
        ("TRADE_UPDATE", "TP1"),
        ("ORDER_UPDATE", "TP1", "FILLED"),
        ("LIFECYCLE_EVENT", "take_profit_filled"),
        ("CHAIN_UPDATE", "partially_closed"),
        ("POSITION_UPDATE", take_profit_quantities(size, 2, 0.01)[1]),
        ("BALANCE_UPDATE",),
        ("TRADE_UPDATE", "TP2"),
        ("ORDER_UPDATE", "TP2", "FILLED"),
        ("LIFECYCLE_EVENT", "take_profit_filled"),
        ("LIFECYCLE_EVENT", "closed"),
        ("CHAIN_UPDATE", "closed"),
        ("PERFORMANCE_UPDATE",),
        ("STATS_UPDATE",),
        ("MODE_ALLOCATION_UPDATE",),
        ("POSITION_UPDATE", 0.0),
        ("BALANCE_UPDATE",),
        ("ORDER_UPDATE", "SL", "CANCELED"),
        ("LIFECYCLE_EVENT", "order_cancelled"),
    ]
    assert_trade_accounting(rig, "alice", start, tp_chain)
    assert tp_chain.realized_pnl > 0

    signal, chain_id, start = await approve_next_signal(rig, "alice")
    await rig.run_until(lambda: chain_of(rig, "alice", chain_id).status == "closed")
    sl_chain = chain_of(rig, "alice", chain_id)
    assert (signal.signal_id, signal.symbol, signal.direction) == ("S2", "SOLUSDT", "LONG")
    assert sl_chain.close_reason == "stop_loss"
    assert trail(rig, start, chain_id, signal.signal_id) == [
        *opening("S2", sl_chain.quantity),
        ("TRADE_UPDATE", "TP1"),
        ("ORDER_UPDATE", "TP1", "FILLED"),
        ("LIFECYCLE_EVENT", "take_profit_filled"),
        ("CHAIN_UPDATE", "partially_closed"),
        ("POSITION_UPDATE", take_profit_quantities(sl_chain.quantity, 2, 0.01)[1]),
        ("BALANCE_UPDATE",),
        ("TRADE_UPDATE", "SL"),
        ("ORDER_UPDATE", "SL", "FILLED"),
        ("LIFECYCLE_EVENT", "stop_loss_filled"),
        ("LIFECYCLE_EVENT", "closed"),
        ("CHAIN_UPDATE", "closed"),
        ("CIRCUIT_BREAKER_UPDATE",),
        ("MODE_SAFETY_UPDATE",),
        ("PERFORMANCE_UPDATE",),
        ("STATS_UPDATE",),
        ("MODE_ALLOCATION_UPDATE",),
        ("POSITION_UPDATE", 0.0),
        ("BALANCE_UPDATE",),
        ("ORDER_UPDATE", "TP2", "CANCELED"),
        ("LIFECYCLE_EVENT", "order_cancelled"),
    ]
    assert_trade_accounting(rig, "alice", start, sl_chain)
    assert sl_chain.realized_pnl < 0

    breaker = rig.engine.snapshots["CIRCUIT_BREAKER_UPDATE"]("alice")
    assert breaker.consecutive_losses == 1  # type: ignore[union-attr]
    safety = {s.mode: s for s in rig.engine.snapshots["MODE_SAFETY_UPDATE"]("alice")}
    assert safety[sl_chain.mode].consecutive_losses == 1
    pnl = rig.engine.snapshots["PNL_UPDATE"]("alice")
    assert isinstance(pnl, Pnl)
    assert (pnl.wins, pnl.losses, pnl.win_rate) == (1, 1, 0.5)
    assert pnl.realized_total == pytest.approx(tp_chain.realized_pnl + sl_chain.realized_pnl)
    perf = rig.engine.snapshots["PERFORMANCE_UPDATE"]("alice")
    assert [(r.key, r.trades) for r in perf.by_symbol] == [("BNBUSDT", 1), ("SOLUSDT", 1)]  # type: ignore[union-attr]


def assert_trade_accounting(rig: Rig, user: str, start: int, chain: Chain) -> None:
    """Fills add up to the chain's net P&L, a P&L update follows each fill's balance, and each
    lifecycle event is the row of `trade_lifecycle_events` with its id."""
    events = rig.recorder.events[start:]
    trades = [d for _, _, d in events if isinstance(d, Trade) and d.chain_id == chain.chain_id]
    assert sum(t.realized_pnl - t.fee for t in trades) == pytest.approx(chain.realized_pnl)
    kinds = [k for _, k, _ in events]
    for i, (_, _, data) in enumerate(events):
        if isinstance(data, Trade):
            after = kinds[i:]
            balance = after.index("BALANCE_UPDATE")
            assert after[balance + 1] == "PNL_UPDATE"
    rows = {row.id: row for row in TradingStore(rig.committed()).lifecycle(user, chain.chain_id)}
    published = [
        d for _, _, d in events if isinstance(d, LifecycleEvent) and d.chain_id == chain.chain_id
    ]
    assert published == [rows[e.id] for e in published]
    assert [e.id for e in published] == sorted(e.id for e in published)

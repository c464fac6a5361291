"""Memory stays bounded over a long history: after a thousand finished chains and signals the
engine holds only the live ones and the newest finished, snapshots are bounded the same way,
and P&L, performance and trade counts still equal what the full history in SQLite says."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest

from ginie_protocol.events import (
    Chain,
    LifecycleEvent,
    Order,
    Performance,
    Pnl,
    Signal,
    Stats,
)
from ginie_server.domain.autopilot import KEPT_SIGNALS
from ginie_server.domain.modes import MODES
from ginie_server.engine import KEPT_CHAINS
from ginie_server.sources import CommandError
from ginie_server.storage.db import migrate, open_database
from ginie_server.storage.trading import TRADING_MIGRATIONS, TradingStore

from .conftest import Rig

TRADES = 1_000
REJECTED_EVERY = 10
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
STRATEGIES = ("ema_cross", "breakout")


def offer_signal(rig: Rig, n: int, signal_id: str) -> Signal:
    """A pending signal for trade `n` at the current mark, its stop and target 5 % away."""
    u = rig.book("alice")
    symbol = SYMBOLS[n % len(SYMBOLS)]
    mark = rig.engine.marks[symbol]
    long = n % 2 == 0
    now = rig.clock.now_ms()
    signal = Signal(
        signal_id=signal_id,
        symbol=symbol,
        direction="LONG" if long else "SHORT",
        mode=MODES[n % len(MODES)],
        strategy=STRATEGIES[n % len(STRATEGIES)],
        confidence=0.9,
        entry_price=mark,
        take_profit=mark * (1.05 if long else 0.95),
        stop_loss=mark * (0.95 if long else 1.05),
        status="pending",
        reason="waiting for approval",
        created_at=now,
        expires_at=now + 600_000,
    )
    u.autopilot.put(signal)
    return signal


async def keep_entries_open(rig: Rig) -> None:
    """Resume paused modes and reset the breaker, so that losing streaks do not stop the run."""
    u = rig.book("alice")
    for mode in MODES:
        if u.safety[mode].status != "active":
            await rig.command("alice", "mode.resume", mode=mode)
    if u.breaker.blocks_entries:
        await rig.command("alice", "circuit_breaker.reset")


async def trade_many(rig: Rig) -> None:
    """Open and close `TRADES` chains by approving signals and closing the position, letting
    the market move a second between some of them; every tenth trade, reject one more signal.
    Signal ids count up in the order signals are offered, as the autopilot's do."""
    await rig.start("alice")
    await rig.command("alice", "ginie.stop")
    await rig.command(
        "alice",
        "autopilot.set_rules",
        risk_per_trade_pct=0.1,
        max_consecutive_losses=100,
        max_daily_loss=1e9,
        max_hourly_loss=1e9,
    )
    offered = itertools.count(1)
    for n in range(1, TRADES + 1):
        await keep_entries_open(rig)
        signal = offer_signal(rig, n, f"M{next(offered)}")
        result = await rig.command("alice", "signal.approve", signal_id=signal.signal_id)
        assert result["status"] == "executed", result
        if n % 3 == 0:
            await rig.run(1)
        await rig.command("alice", "position.close", symbol=signal.symbol)
        chain = rig.book("alice").chains[str(result["chain_id"])]
        assert chain.status == "closed", chain
        if n % REJECTED_EVERY == 0:
            extra = offer_signal(rig, n, f"M{next(offered)}")
            await rig.command("alice", "signal.reject", signal_id=extra.signal_id)


def stored(rig: Rig, topic: str) -> list[str]:
    rows = rig.committed().execute(
        "SELECT data FROM trading_state WHERE user = 'alice' AND topic = ?", (topic,)
    )
    return [r[0] for r in rows]


def performance_from_history(chains: list[Chain]) -> tuple[list[dict[str, object]], ...]:
    """Per-symbol and per-strategy rows recomputed from every closed chain."""
    by_symbol: dict[str, list[float]] = defaultdict(list)
    by_strategy: dict[str, list[float]] = defaultdict(list)
    for c in chains:
        if c.status == "closed":
            by_symbol[c.symbol].append(c.realized_pnl)
            by_strategy[c.strategy].append(c.realized_pnl)

    def table(by: dict[str, list[float]]) -> list[dict[str, object]]:
        return [
            {
                "key": key,
                "trades": len(pnls),
                "wins": sum(p > 0 for p in pnls),
                "losses": sum(p <= 0 for p in pnls),
                "pnl": pytest.approx(sum(pnls), abs=1e-6),
            }
            for key, pnls in sorted(by.items())
        ]

    return table(by_symbol), table(by_strategy)


def brief_rows(performance: Performance) -> tuple[list[dict[str, object]], ...]:
    fields = {"key", "trades", "wins", "losses", "pnl"}
    return tuple(
        [row.model_dump(include=fields) for row in rows]
        for rows in (performance.by_symbol, performance.by_strategy)
    )


async def test_a_long_history_stays_bounded_in_memory_and_correct_in_totals(
    db_path: Path,
) -> None:
    rig = Rig(db_path)
    await trade_many(rig)
    u = rig.book("alice")
    pilot = u.autopilot

    # memory: nothing live, exactly the newest finished chains and decided signals
    assert (len(u.chains.live), len(u.chains.finished)) == (0, KEPT_CHAINS)
    assert (len(pilot.signals.live), len(pilot.signals.finished)) == (0, KEPT_SIGNALS)
    assert rig.engine.unpublished("alice") == 0
    chain_ids = [f"C{n}" for n in range(TRADES - KEPT_CHAINS + 1, TRADES + 1)]
    assert list(u.chains.finished) == chain_ids
    decided = [
        s.signal_id for _, t, s in rig.recorder.events if t == "SIGNAL_UPDATE" and s.decided_at
    ]
    newest_signals = list(dict.fromkeys(reversed(decided)))[:KEPT_SIGNALS]
    assert set(pilot.signals) == set(newest_signals)

    # snapshots: the same bounded sets, each item as its last event said
    last_of: dict[tuple[str, str], object] = {}
    for _, topic, data in rig.recorder.events:
        if isinstance(data, Chain):
            last_of[topic, data.chain_id] = data
        elif isinstance(data, Signal):
            last_of[topic, data.signal_id] = data
    chains = rig.engine.snapshots["CHAIN_UPDATE"]("alice")
    signals = rig.engine.snapshots["SIGNAL_UPDATE"]("alice")
    assert [c.chain_id for c in chains] == chain_ids  # type: ignore[union-attr]
    assert {s.signal_id for s in signals} == set(newest_signals)  # type: ignore[union-attr]
    assert all(last_of["CHAIN_UPDATE", c.chain_id] == c for c in chains)  # type: ignore[union-attr]
    assert all(last_of["SIGNAL_UPDATE", s.signal_id] == s for s in signals)  # type: ignore[union-attr]

    # the database keeps the whole history, and the running totals agree with it
    history = [Chain.model_validate_json(js) for js in stored(rig, "CHAIN_UPDATE")]
    assert len(history) == TRADES and all(c.status == "closed" for c in history)
    signal_history = [Signal.model_validate_json(js) for js in stored(rig, "SIGNAL_UPDATE")]
    assert sorted(s.status for s in signal_history) == sorted(
        ["executed"] * TRADES + ["rejected"] * (TRADES // REJECTED_EVERY)
    )
    performance = rig.engine.snapshots["PERFORMANCE_UPDATE"]("alice")
    assert isinstance(performance, Performance)
    assert brief_rows(performance) == performance_from_history(history)
    wins = sum(c.realized_pnl > 0 for c in history)
    assert 0 < wins < TRADES
    pnl = rig.engine.snapshots["PNL_UPDATE"]("alice")
    assert isinstance(pnl, Pnl)
    assert (pnl.wins, pnl.losses) == (wins, TRADES - wins)
    assert pnl.realized_total == pytest.approx(sum(c.realized_pnl for c in history), abs=1e-6)
    for strategy in STRATEGIES:
        of_strategy = sum(c.realized_pnl for c in history if c.strategy == strategy)
        assert pnl.by_strategy[strategy] == pytest.approx(of_strategy, abs=1e-6)
    wallet = rig.engine.snapshots["BALANCE_UPDATE"]("alice")[0].wallet_balance  # type: ignore[index,union-attr]
    assert pnl.realized_total == pytest.approx(wallet - 10_000.0, abs=1e-6)
    stats = rig.engine.snapshots["STATS_UPDATE"]("alice")
    assert isinstance(stats, Stats)
    assert (stats.total_trades, stats.by_source, stats.open_chains) == (
        TRADES,
        {"manual": TRADES},
        0,
    )
    snapshots = {
        topic: rig.engine.snapshots[topic]("alice")
        for topic in ("CHAIN_UPDATE", "SIGNAL_UPDATE", "PNL_UPDATE", "PERFORMANCE_UPDATE")
    }
    await rig.close()

    # a restart loads the same bounded books and snapshots, not the whole history
    again = Rig(db_path)
    await again.start()
    u = again.book("alice")
    assert list(u.chains.finished) == chain_ids
    assert set(u.autopilot.signals) == set(newest_signals)
    for topic, snapshot in snapshots.items():
        assert again.engine.snapshots[topic]("alice") == snapshot, topic

    # a late update of a chain that left memory is still tied to it and recorded
    now = again.clock.now_ms()
    expired = Order(
        order_id="P-late",
        client_order_id="g-C1-SL",
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        status="EXPIRED",
        quantity=0.001,
        created_at=now,
        updated_at=now,
    )
    again.engine.listener.on_order("alice", expired)
    await again.engine.pump()
    late = again.recorder.of("alice", "ORDER_UPDATE", "LIFECYCLE_EVENT")
    assert [type(d).__name__ for d in late] == ["Order", "LifecycleEvent"]
    assert isinstance(late[0], Order) and late[0].chain_id == "C1"
    assert isinstance(late[1], LifecycleEvent)
    assert (late[1].chain_id, late[1].step) == ("C1", "order_expired")
    assert len(u.chains.finished) == KEPT_CHAINS

    # a decided signal that left memory answers as decided, not as unknown
    with pytest.raises(CommandError) as err:
        await again.command("alice", "signal.approve", signal_id="M1")
    assert err.value.code == "conflict"
    await again.close()


def test_an_older_database_ranks_its_finished_chains_and_signals_by_time(db_path: Path) -> None:
    conn = open_database(db_path)
    migrate(conn, "trading", TRADING_MIGRATIONS[:1])
    rows = [
        ("CHAIN_UPDATE", "C1", {"status": "closed", "closed_at": 300}),
        ("CHAIN_UPDATE", "C2", {"status": "failed", "closed_at": 100}),
        ("CHAIN_UPDATE", "C3", {"status": "open", "closed_at": None}),
        ("SIGNAL_UPDATE", "S1", {"status": "expired", "decided_at": 50}),
        ("SIGNAL_UPDATE", "S2", {"status": "pending", "decided_at": None}),
        ("PNL_UPDATE", "", {"realized_total": 1.0}),
    ]
    conn.executemany(
        "INSERT INTO trading_state (user, topic, key, data) VALUES ('alice', ?, ?, ?)",
        [(topic, key, json.dumps(data)) for topic, key, data in rows],
    )
    conn.commit()
    state = TradingStore(conn).load("alice", finished_limit=1)
    assert {t: list(items) for t, items in state.topics.items()} == {
        "CHAIN_UPDATE": ["C3", "C1"],
        "SIGNAL_UPDATE": ["S2", "S1"],
        "PNL_UPDATE": [""],
    }
    assert state.ranks == {"CHAIN_UPDATE": {"C1": 300}, "SIGNAL_UPDATE": {"S1": 50}}
    conn.close()

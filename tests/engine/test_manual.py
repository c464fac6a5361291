"""The trader's own commands on the paper exchange: a manual bracket order runs through the
same lifecycle as the autopilot's, a bad order is refused before anything is sent, and the
kill switch leaves nothing open."""

from __future__ import annotations

import pytest

from ginie_protocol.events import Chain, LifecycleEvent, Stats
from ginie_server.sources import CommandError

from .conftest import Rig


def mark(rig: Rig, symbol: str) -> float:
    return rig.engine.marks[symbol]


async def test_a_manual_bracket_order_opens_a_chain_with_its_exits(rig: Rig) -> None:
    await rig.start("alice")
    await rig.command("alice", "ginie.stop")
    await rig.run(2)
    price = mark(rig, "ETHUSDT")
    result = await rig.command(
        "alice",
        "order.place",
        symbol="ethusdt",
        side="BUY",
        type="MARKET",
        notional=500.0,
        take_profit=round(price * 1.05, 2),
        stop_loss=round(price * 0.95, 2),
        leverage=3,
    )
    chain_id = str(result["chain_id"])
    assert result["margin"] == pytest.approx(float(result["notional"]) / 3)  # type: ignore[arg-type]
    await rig.run_until(lambda: rig.book("alice").chains[chain_id].status == "open")
    chain = rig.book("alice").chains[chain_id]
    assert (chain.source, chain.strategy, chain.signal_id) == ("manual", "manual", None)
    assert chain.quantity == result["quantity"]
    open_ids = {o.client_order_id for o in rig.book("alice").open_orders()}
    assert open_ids == {*chain.take_profit_client_order_ids, chain.stop_loss_client_order_id}
    steps = [
        d.step
        for _, _, d in rig.recorder.events
        if isinstance(d, LifecycleEvent) and d.chain_id == chain_id
    ]
    assert steps[:3] == ["created", "entry_placed", "entry_filled"]
    stats = rig.engine.snapshots["STATS_UPDATE"]("alice")
    assert isinstance(stats, Stats) and stats.by_source.get("manual") == 1


async def test_a_limit_order_waits_at_its_price(rig: Rig) -> None:
    await rig.start("alice")
    await rig.command("alice", "ginie.stop")
    await rig.run(2)
    below = round(mark(rig, "BTCUSDT") * 0.8, 1)
    result = await rig.command(
        "alice",
        "order.place",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=below,
    )
    chain = rig.book("alice").chains[str(result["chain_id"])]
    assert chain.status == "pending"
    (entry,) = [o for o in rig.book("alice").open_orders() if o.chain_id == chain.chain_id]
    assert (entry.type, entry.price, entry.status) == ("LIMIT", below, "NEW")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"symbol": "DOGEUSDT", "quantity": 1.0}, "symbol: unknown symbol DOGEUSDT"),
        ({"symbol": "BTCUSDT", "quantity": 0.0005}, "quantity: 0.0005 is below the step size"),
        ({"symbol": "BTCUSDT", "quantity": 5.0}, "quantity: the margin"),
        ({"symbol": "BTCUSDT", "quantity": 0.01, "stop_loss": 10**7}, "stop_loss: "),
        ({"symbol": "BTCUSDT", "notional": 1.0}, "notional: buys 0, below the step size"),
    ],
)
async def test_a_bad_order_is_refused_before_anything_is_sent(
    rig: Rig, args: dict[str, object], words: str
) -> None:
    await rig.start("alice")
    await rig.command("alice", "ginie.stop")
    await rig.run(2)
    before = len(rig.recorder.events)
    with pytest.raises(CommandError) as refused:
        await rig.command("alice", "order.place", side="BUY", type="MARKET", **args)
    assert refused.value.code == "invalid"
    assert refused.value.message.startswith(words)
    assert not any(isinstance(d, Chain) for _, _, d in rig.recorder.events[before:])
    assert rig.book("alice").open_orders() == []


async def test_the_kill_switch_leaves_nothing_open_and_stops_the_autopilot(rig: Rig) -> None:
    await rig.start("alice")
    await rig.run_until(lambda: bool(rig.book("alice").live_chains()))
    await rig.command(
        "alice", "order.place", symbol="XRPUSDT", side="SELL", type="MARKET", quantity=100.0
    )
    assert len(rig.book("alice").open_positions()) >= 1
    result = await rig.command("alice", "account.flatten")
    await rig.run(2)
    book = rig.book("alice")
    assert book.open_positions() == [] and book.open_orders() == []
    assert not book.autopilot.running
    assert result["stopped_autopilot"] is True and result["failed"] == []
    assert set(result["closed"]) >= {"XRPUSDT"}  # type: ignore[arg-type]
    assert all(c.status == "closed" for c in book.chains.finished.values())
    assert book.live_chains() == []
    steps = [d.step for _, _, d in rig.recorder.events if isinstance(d, LifecycleEvent)]
    for step in ("flatten_started", "autopilot_stopped", "close_requested", "flatten_done"):
        assert step in steps

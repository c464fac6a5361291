"""A close the exchange forces (liquidation, auto-deleveraging) ends the symbol's live chain:
its order and fill belong to the chain, the fill's loss and fee are in the chain's realized
P&L and in performance, and the chain closes with the forced close's reason."""

from __future__ import annotations

import pytest

from ginie_protocol.events import Chain, Order, Performance, Trade

from .conftest import Rig


@pytest.mark.parametrize(
    ("reason", "client_order_id"),
    [("liquidation", "autoclose-1764100000123"), ("auto-deleveraging", "adl_autoclose")],
)
async def test_a_forced_close_fill_ends_the_chain_with_its_loss(
    rig: Rig, reason: str, client_order_id: str
) -> None:
    await rig.start("alice")
    await rig.run_until(lambda: bool(rig.book("alice").live_chains()))
    chain = rig.book("alice").live_chains()[0]
    position = rig.book("alice").positions[chain.symbol]
    realized_before = chain.realized_pnl
    now = rig.clock.now_ms()
    side = "SELL" if position.size > 0 else "BUY"
    forced = Order(
        order_id="F1",
        client_order_id=client_order_id,
        symbol=chain.symbol,
        side=side,
        type="MARKET",
        status="FILLED",
        quantity=abs(position.size),
        filled_qty=abs(position.size),
        avg_price=position.entry_price * 0.9,
        reason=reason,
        created_at=now,
        updated_at=now,
    )
    fill = Trade(
        trade_id="FT1",
        order_id="F1",
        client_order_id=client_order_id,
        symbol=chain.symbol,
        side=side,
        price=position.entry_price * 0.9,
        quantity=abs(position.size),
        fee=1.25,
        realized_pnl=-80.0,
        time=now,
    )
    listener = rig.engine.listener
    listener.on_order("alice", forced)
    listener.on_trade("alice", fill)
    listener.on_position("alice", position.model_copy(update={"size": 0.0, "unrealized_pnl": 0}))
    await rig.engine.settle()

    closed = rig.book("alice").chains[chain.chain_id]
    assert (closed.status, closed.close_reason) == ("closed", reason)
    assert closed.realized_pnl == pytest.approx(realized_before - 80.0 - 1.25)
    published = [d for _, _, d in rig.recorder.events if isinstance(d, Order | Trade)]
    assert {d.chain_id for d in published if d.order_id == "F1"} == {chain.chain_id}
    performance = rig.engine.snapshots["PERFORMANCE_UPDATE"]("alice")
    assert isinstance(performance, Performance)
    (row,) = [r for r in performance.by_symbol if r.key == chain.symbol]
    assert row.pnl == pytest.approx(closed.realized_pnl)
    last_chain = [d for _, _, d in rig.recorder.events if isinstance(d, Chain)][-1]
    assert last_chain == closed

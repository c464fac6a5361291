"""P&L arithmetic: fees, partial fills, win rate, breakdowns, days."""

import pytest

from ginie_protocol.events import Chain, Trade
from ginie_server.domain.pnl import DAY_MS, PnlBook


def trade(realized: float, fee: float, symbol: str = "SOLUSDT") -> Trade:
    return Trade(
        trade_id="T",
        order_id="1",
        client_order_id="c",
        symbol=symbol,
        side="SELL",
        price=1.0,
        quantity=1.0,
        fee=fee,
        realized_pnl=realized,
        time=0,
    )


def chain(pnl: float, symbol: str = "SOLUSDT", strategy: str = "s1") -> Chain:
    return Chain(
        chain_id="C",
        symbol=symbol,
        direction="LONG",
        mode="scalp",
        source="autopilot",
        strategy=strategy,
        status="closed",
        entry_client_order_id="g-C-E",
        quantity=1,
        remaining_qty=0,
        realized_pnl=pnl,
        opened_at=0,
    )


def test_realized_is_net_of_fees_across_partial_fills() -> None:
    book = PnlBook.new(0)
    assert book.on_fill(trade(0.0, 0.5), "scalp", "s1") == -0.5
    book.on_fill(trade(6.0, 0.25), "scalp", "s1")
    book.on_fill(trade(4.0, 0.25), "scalp", "s1")
    p = book.pnl(unrealized=3.0, equity=10_012.0)
    assert p.realized_total == pytest.approx(9.0) and p.fees_total == pytest.approx(1.0)
    assert p.by_symbol == {"SOLUSDT": 9.0} and p.by_mode == {"scalp": 9.0}
    assert p.unrealized == 3.0 and p.equity == 10_012.0


def test_win_rate_and_performance_from_closed_chains() -> None:
    book = PnlBook.new(0)
    book.on_chain_closed(chain(10.0))
    book.on_chain_closed(chain(-4.0))
    book.on_chain_closed(chain(2.0, "BTCUSDT", "s2"))
    p = book.pnl(0.0, 0.0)
    assert (p.wins, p.losses, p.win_rate) == (2, 1, pytest.approx(0.6667))
    perf = book.performance()
    sol = perf.by_symbol[1]
    assert (sol.key, sol.trades, sol.wins, sol.pnl, sol.avg_pnl) == ("SOLUSDT", 2, 1, 6.0, 3.0)
    assert [r.key for r in perf.by_strategy] == ["s1", "s2"]


def test_today_rolls_over_and_counts_by_source() -> None:
    book = PnlBook.new(0)
    book.on_chain_opened("autopilot")
    book.on_chain_opened("manual")
    book.on_fill(trade(5.0, 0.0), None, None)
    assert not book.roll_day(DAY_MS - 1)
    assert book.roll_day(DAY_MS)
    assert book.pnl(0, 0).realized_today == 0.0 and book.realized_total == 5.0
    stats = book.stats(open_chains=1)
    assert (stats.total_trades, stats.trades_today, stats.by_source) == (
        2,
        0,
        {"autopilot": 1, "manual": 1},
    )


def test_round_trips_through_a_dict() -> None:
    book = PnlBook.new(0)
    book.on_fill(trade(5.0, 0.1), "swing", "s")
    book.on_chain_closed(chain(4.9))
    book.record_equity(10_004.9)
    again = PnlBook.from_dict(book.to_dict())
    assert again == book

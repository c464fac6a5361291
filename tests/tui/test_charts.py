"""The charts' data, pure: candles aggregated to 5m and 15m, chain lines and fills, the equity
curve in time, realized P&L per day, and the text bars."""

from __future__ import annotations

from ginie_protocol.events import Chain, Kline, Pnl, Trade
from ginie_tui.charts import (
    DAY_MS,
    MINUTE_MS,
    Fill,
    Level,
    aggregate,
    chain_fills,
    chain_levels,
    daily_realized,
    equity_points,
    open_chains,
)
from ginie_tui.widgets.bars import bar

START = 1_764_099_900_000  # a multiple of 15 minutes
assert START % (15 * MINUTE_MS) == 0


def kline(minute: int, open_: float, close: float, closed: bool = True) -> Kline:
    return Kline(
        symbol="BTCUSDT",
        open_time=START + minute * MINUTE_MS,
        close_time=START + (minute + 1) * MINUTE_MS - 1,
        open=open_,
        high=max(open_, close) + 1,
        low=min(open_, close) - 1,
        close=close,
        volume=1.0,
        closed=closed,
    )


def chain(chain_id: str, status: str = "open", **fields: object) -> Chain:
    return Chain.model_validate(
        {
            "chain_id": chain_id,
            "symbol": "BTCUSDT",
            "direction": "LONG",
            "mode": "scalp",
            "source": "autopilot",
            "strategy": "ema_cross",
            "status": status,
            "entry_client_order_id": f"g-{chain_id}-E",
            "quantity": 1.0,
            "remaining_qty": 1.0,
            "opened_at": START,
            **fields,
        }
    )


def trade(n: int, at: int, pnl: float, chain_id: str | None = None) -> Trade:
    return Trade(
        trade_id=f"t{n}",
        order_id=f"o{n}",
        client_order_id=f"c{n}",
        chain_id=chain_id,
        symbol="BTCUSDT",
        side="BUY" if n % 2 else "SELL",
        price=100.0 + n,
        quantity=1.0,
        fee=0.5,
        realized_pnl=pnl,
        time=at,
    )


def pnl(curve: list[float], equity: float = 1_000.0, today: float = 0.0) -> Pnl:
    return Pnl(
        realized_today=today,
        realized_total=0.0,
        unrealized=0.0,
        fees_total=0.0,
        equity=equity,
        equity_curve=curve,
    )


def test_one_minute_candles_stay_as_they_are() -> None:
    klines = [kline(m, 100 + m, 101 + m) for m in range(3)]
    assert aggregate(klines, 1) == klines


def test_five_minute_candles_take_open_first_close_last_high_max_low_min() -> None:
    klines = [kline(m, 100.0 + m, 100.5 + m) for m in range(7)]
    first, second = aggregate(klines, 5)
    ohlc = [
        (c.open_time, c.open, c.high, c.low, c.close, c.volume, c.closed) for c in (first, second)
    ]
    assert ohlc == [
        (START, 100.0, 105.5, 99.0, 104.5, 5.0, True),
        (START + 5 * MINUTE_MS, 105.0, 107.5, 104.0, 106.5, 2.0, False),
    ]
    assert (first.interval, first.close_time) == ("5m", START + 5 * MINUTE_MS - 1)


def test_a_bucket_is_closed_only_when_its_last_minute_closed() -> None:
    klines = [kline(m, 100, 101, closed=m < 14) for m in range(15)]
    assert [c.closed for c in aggregate(klines, 15)] == [False]
    klines[-1] = kline(14, 100, 101, closed=True)
    assert [c.closed for c in aggregate(klines, 15)] == [True]


def test_a_history_that_starts_mid_interval_makes_a_partial_first_candle() -> None:
    klines = [kline(m, float(m), float(m) + 0.5) for m in range(13, 17)]
    first, second = aggregate(klines, 15)
    assert (first.open_time, first.open, first.close, first.volume) == (START, 13.0, 14.5, 2.0)
    assert second.open_time == START + 15 * MINUTE_MS
    assert aggregate([], 5) == []


def test_chain_levels_label_entry_stop_and_each_target() -> None:
    one = chain("a", entry_price=100.0, stop_loss_price=95.0, take_profit_prices=[105.0, 110.0])
    assert chain_levels([one]) == [
        Level(100.0, "LONG entry", "entry"),
        Level(95.0, "SL", "stop"),
        Level(105.0, "TP1", "target"),
        Level(110.0, "TP2", "target"),
    ]
    two = chain("b", stop_loss_price=90.0)
    assert [lv.label for lv in chain_levels([one, two])][-1] == "b SL", "named when several"


def test_only_open_chains_of_the_symbol_are_drawn_with_their_fills() -> None:
    held = [
        chain("a", opened_at=START + 2),
        chain("b", status="closed"),
        chain("c", status="pending", opened_at=START + 1),
        chain("d").model_copy(update={"symbol": "ETHUSDT"}),
    ]
    shown = open_chains(held, "BTCUSDT")
    assert [c.chain_id for c in shown] == ["c", "a"]
    trades = [trade(2, START + 60, 0, "a"), trade(1, START + 50, 0, "b"), trade(3, START, 0, "c")]
    assert chain_fills(trades, shown) == [
        Fill(START, 103.0, "BUY"),
        Fill(START + 60, 102.0, "SELL"),
    ]


def test_equity_points_pair_the_newest_closes_and_end_now() -> None:
    closed = [chain(f"c{n}", "closed", closed_at=START + n * 1000) for n in range(3)]
    points = equity_points(pnl([1.0, 2.0, 3.0, 4.0], equity=4.5), closed, START + 10_000)
    assert points == [(START, 2.0), (START + 1000, 3.0), (START + 2000, 4.0), (START + 10_000, 4.5)]
    assert equity_points(pnl([], equity=7.0), [], START) == [(START, 7.0)]


def test_daily_realized_sums_past_days_and_takes_today_from_the_server() -> None:
    now = START + 3 * DAY_MS
    trades = [
        trade(1, now - 2 * DAY_MS, 10.0),
        trade(2, now - 2 * DAY_MS, -4.0),
        trade(3, now - 9 * DAY_MS, 50.0),  # older than the week shown
        trade(4, now, 99.0),
    ]
    days = daily_realized(trades, pnl([], today=12.5), now, days=3)
    assert [v for _, v in days] == [5.0, 0.0, 12.5]
    assert len({label for label, _ in days}) == 3


def test_bars_are_drawn_to_an_eighth_and_padded() -> None:
    assert bar(1.0, 1.0, 4) == "████"
    assert bar(0.5, 1.0, 4) == "██  "
    assert bar(-0.0625, 1.0, 2) == "▏ "
    assert bar(0.001, 1.0, 3) == "▏  ", "a value that is not zero shows"
    assert bar(0.0, 1.0, 3) == "   "
    assert bar(5.0, 0.0, 2) == "  "

"""Indicators, the signal rule, the autopilot's gates and the seeded market."""

import pytest

from ginie_protocol.events import Kline
from ginie_server.domain.autopilot import (
    Autopilot,
    Gates,
    RulesError,
    default_rules,
    merge_rules,
    size_position,
)
from ginie_server.domain.market import CANDLE_MS, WARMUP_CANDLES, MarketSim
from ginie_server.domain.signals import PROFILES, atr, ema_series, evaluate, group, rsi

T0 = 1_764_100_020_000


def candles(closes: list[float]) -> list[Kline]:
    return [
        Kline(
            symbol="X",
            open_time=i * CANDLE_MS,
            close_time=(i + 1) * CANDLE_MS - 1,
            open=c,
            high=c + 0.5,
            low=c - 0.5,
            close=c,
            volume=1.0,
            closed=True,
        )
        for i, c in enumerate(closes)
    ]


def test_indicators() -> None:
    assert ema_series([1, 2, 3, 4], 3) == [2.0, 3.0]
    assert rsi([float(i) for i in range(20)]) == 100.0
    assert rsi([1.0, 2.0, 1.0] * 10) == pytest.approx(50.0, abs=5)
    assert atr(candles([10.0] * 20)) == pytest.approx(1.0)
    assert len(group(candles([1.0] * 12), 5)) == 2


def test_rule_raises_long_on_upward_cross_with_rsi_in_band() -> None:
    closes = [100.0 - 0.05 * i for i in range(40)] + [98.2, 98.6, 99.1, 99.5]
    assert evaluate("X", candles(closes[:-1]), PROFILES["scalp"]).reason == "no_cross"
    idea = evaluate("X", candles(closes), PROFILES["scalp"]).idea
    assert idea is not None and idea.direction == "LONG" and idea.mode == "scalp"
    assert idea.indicators["rsi"] == pytest.approx(71.86)
    assert (idea.entry_price, idea.indicators["atr"]) == (99.5, 1.0)
    assert (idea.take_profit, idea.stop_loss) == (101.0, 98.5)
    assert idea.confidence == 0.668


def test_rule_filters_a_cross_with_stretched_rsi() -> None:
    closes = [100.0 - 0.05 * i for i in range(40)] + [98.2, 98.6, 99.1, 100.5]
    assert evaluate("X", candles(closes), PROFILES["scalp"]).reason == "rsi_filter"


def test_rule_needs_history_and_a_cross() -> None:
    assert evaluate("X", candles([1.0] * 10), PROFILES["scalp"]).reason == "not_enough_history"
    assert evaluate("X", candles([float(i) for i in range(60)]), PROFILES["scalp"]).reason == (
        "no_cross"
    )


def test_market_is_seeded_and_warmed_up() -> None:
    a, b = MarketSim(3, T0), MarketSim(3, T0)
    assert len(a.closed_klines("BTCUSDT")) == WARMUP_CANDLES
    for _ in range(30):
        assert a.step() == b.step()
    assert MarketSim(4, T0).price("BTCUSDT") != a.price("BTCUSDT")
    resumed = MarketSim(3, T0, start_prices={"ETHUSDT": 1234.5})
    assert resumed.price("ETHUSDT") == 1234.5
    bid, ask = a.best_bid_ask("SOLUSDT")
    assert bid < a.price("SOLUSDT") < ask


def test_scans_raise_signals_and_gates_reject_with_reasons() -> None:
    market = MarketSim(11, T0)
    pilot = Autopilot(default_rules(market.symbols))
    gates = Gates(None, {}, frozenset(), 0)
    raised = []
    for _ in range(12 * 120):
        step = market.step()
        if step.closed:
            raised += pilot.scan(market.closed_klines, gates, step.time, step.time + CANDLE_MS)
    assert raised, "two hours of market raise at least one signal"
    assert all(s.status == "pending" and s.confidence >= 0.6 for s in raised)
    blocked = Autopilot(default_rules(market.symbols))
    closed_gates = Gates("tripped", {}, frozenset(), 0)
    for _ in range(12 * 120):
        step = market.step()
        if step.closed:
            assert blocked.scan(market.closed_klines, closed_gates, step.time, 0) == []
    assert blocked.rejections.get("circuit_breaker", 0) > 0
    assert blocked.status(0, "tripped").state == "blocked"


def test_signals_expire_and_rules_merge() -> None:
    pilot = Autopilot(default_rules(["BTCUSDT"]))
    market = MarketSim(11, T0)
    gates = Gates(None, {}, frozenset(), 0)
    while not (raised := pilot.scan(market.closed_klines, gates, market.step().time, 0)):
        pass
    signal = raised[0]
    assert pilot.expire(signal.expires_at - 1) == []
    assert [s.status for s in pilot.expire(signal.expires_at)] == ["expired"]
    rules = merge_rules(pilot.rules, {"allowed_symbols": ["ethusdt"]}, ["BTCUSDT", "ETHUSDT"])
    assert rules.allowed_symbols == ["ETHUSDT"]
    with pytest.raises(RulesError):
        merge_rules(rules, {"allowed_symbols": ["DOGEUSDT"]}, ["BTCUSDT"])
    with pytest.raises(RulesError):
        merge_rules(rules, {"mode_allocation_pct": {"scalp": 90.0}}, ["BTCUSDT"])


def test_sizing_risks_a_share_of_equity_within_free_capital() -> None:
    assert size_position(100.0, 95.0, 10_000.0, 1.0, 10, 4_000.0, 0.01).quantity == 20.0
    assert size_position(100.0, 99.0, 10_000.0, 1.0, 10, 400.0, 0.01).quantity == 40.0
    assert size_position(100.0, 95.0, 10_000.0, 1.0, 10, 0.1, 0.01).reason == "allocation_exhausted"

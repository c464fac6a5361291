"""Circuit breaker trip, cooldown and reset; per-mode safety limits and allocation."""

from ginie_server.domain.breaker import HOUR_MS, Breaker
from ginie_server.domain.modes import (
    allocation,
    new_safety,
    pause,
    record_result,
    resume,
    roll_day,
    tick,
)

T0 = 1_764_100_000_000 - 1_764_100_000_000 % (24 * HOUR_MS) + HOUR_MS


def breaker() -> Breaker:
    return Breaker.new(
        T0,
        max_consecutive_losses=3,
        max_daily_loss=100.0,
        max_hourly_loss=60.0,
        cooldown_minutes=10.0,
    )


def test_breaker_trips_on_consecutive_losses_then_cools_down_when_flat() -> None:
    b = breaker()
    assert b.record(-1.0, T0) and b.record(-1.0, T0) and not b.blocks_entries
    assert b.record(5.0, T0) and b.view.consecutive_losses == 0
    for _ in range(3):
        b.record(-1.0, T0)
    assert b.view.state == "tripped" and b.view.reason == "3 consecutive losses"
    assert b.blocks_entries
    assert not b.tick(T0 + 1000, flat=False) and b.view.state == "tripped"
    assert b.tick(T0 + 2000, flat=True)
    assert b.view.state == "cooling_down" and b.view.resets_at == T0 + 2000 + 600_000
    assert not b.tick(T0 + 600_000, flat=True)
    assert b.tick(T0 + 602_000, flat=True)
    assert b.view.state == "ok" and b.view.consecutive_losses == 0 and not b.blocks_entries


def test_breaker_trips_on_hourly_then_daily_loss_and_windows_roll() -> None:
    b = breaker()
    b.record(-61.0, T0)
    assert b.view.state == "tripped" and b.view.reason.startswith("hourly loss 61.00")
    b.reset()
    assert b.view.state == "ok" and b.view.hourly_loss == 61.0
    b.tick(T0 + HOUR_MS, flat=True)
    assert b.view.hourly_loss == 0.0 and b.view.daily_loss == 61.0
    b.record(-40.0, T0 + HOUR_MS)
    assert b.view.state == "tripped" and b.view.reason.startswith("daily loss 101.00")
    b.reset()
    b.tick(T0 + 24 * HOUR_MS, flat=True)
    assert b.view.daily_loss == 0.0


def test_breaker_limits_change() -> None:
    b = breaker()
    assert b.set_limits(1, 10.0, 5.0, 0.0)
    b.record(-1.0, T0)
    assert b.view.state == "tripped"
    b.tick(T0, flat=True)
    b.tick(T0, flat=True)
    assert b.view.state == "ok"


def test_mode_pauses_after_loss_streak_and_resumes_after_time() -> None:
    s = new_safety("position")
    s = record_result(s, -10.0, 0)
    assert s.status == "active"
    s = record_result(s, -10.0, 0)
    assert s.status == "paused" and s.paused_until == 3_600_000 and s.loss_today == 20.0
    assert tick(s, 3_599_999).status == "paused"
    s = tick(s, 3_600_000)
    assert s.status == "active" and s.consecutive_losses == 0 and s.loss_today == 20.0


def test_mode_blocks_on_loss_today_until_the_next_day() -> None:
    s = record_result(new_safety("scalp"), -300.0, 0)
    assert s.status == "blocked" and s.reason == "loss today 300.00 reached 300.00"
    assert resume(roll_day(s)).status == "active" and roll_day(s).loss_today == 0.0


def test_user_pause_and_resume() -> None:
    s = pause(new_safety("swing"), 0, None)
    assert s.status == "paused" and s.paused_until is None
    assert tick(s, 10**12).status == "paused"
    assert resume(s).status == "active"
    assert pause(new_safety("swing"), 0, 2.0).paused_until == 120_000


def test_allocation() -> None:
    a = allocation("scalp", 40.0, 10_000.0, 1_500.0, 2)
    assert (a.allocated_usd, a.used_usd, a.available_usd, a.open_positions) == (4000, 1500, 2500, 2)

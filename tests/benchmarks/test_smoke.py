"""The REST-call simulation behind the benchmarks counts what the schedules say it should."""

from __future__ import annotations

from benchmarks.api_calls import (
    HOUR_S,
    OLD_SCHEDULE,
    Outage,
    ginie,
    old_schedule,
    reduction_pct,
    run,
)


def test_old_schedule_counts_every_tick_of_every_component() -> None:
    expected = sum(int(HOUR_S // p.interval_s) * p.calls for p in OLD_SCHEDULE)
    result = old_schedule()
    assert result.rest_calls == expected == 5880
    assert len(result.call_times_s) == expected
    assert result.shortest_gap_s == 5.0


def test_old_schedule_data_age_is_half_the_mean_interval() -> None:
    expected = sum(p.interval_s / 2 for p in OLD_SCHEDULE) / len(OLD_SCHEDULE)
    assert abs(old_schedule().mean_age_s - expected) < 1e-9


def test_connected_console_makes_only_the_startup_snapshot() -> None:
    result = ginie(live_age_s=0.002)
    assert result.rest_calls == 1
    assert result.call_times_s == (0.0,)
    assert abs(result.mean_age_s - 0.002) < 1e-12
    assert reduction_pct(result.rest_calls, 5880) >= 99.0


def test_outage_polls_after_five_seconds_then_every_minute_and_never_faster() -> None:
    result = ginie(Outage(start_s=1200.0, duration_s=600.0))
    fallback = result.call_times_s[1:]
    assert fallback[0] == 1205.0
    assert fallback == tuple(1205.0 + 60.0 * k for k in range(10))
    assert result.rest_calls == 11
    assert result.shortest_gap_s == 60.0
    # Age grows to 5 s before the first poll, then saw-tooths up to 60 s, 55 s at the end.
    area = 5.0**2 / 2 + 9 * 60.0**2 / 2 + 55.0**2 / 2
    assert abs(result.mean_age_s - area / HOUR_S) < 1e-9


def test_outage_shorter_than_the_fallback_delay_makes_no_rest_call() -> None:
    result = ginie(Outage(start_s=100.0, duration_s=4.0))
    assert result.rest_calls == 1


def test_table_has_one_row_per_scenario_and_states_the_target() -> None:
    group = run(quick=True, live_age_s=0.001)
    assert [row["REST calls"] for row in group.rows] == [5880, 1, 11]
    assert any("met" in note for note in group.notes)

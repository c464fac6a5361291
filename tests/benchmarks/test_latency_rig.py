"""The latency rig: connections split over client processes, every measured event counted."""

from __future__ import annotations

from benchmarks.clients import shard_users
from benchmarks.harness import (
    bench_server,
    console_placement,
    percentile,
    run_latency,
    split_placement,
)
from benchmarks.servers.control import USERS


def test_shards_hold_every_user_exactly_once() -> None:
    for shards in (1, 2, 3, 4):
        held = [user for shard in range(shards) for user in shard_users(shard, shards)]
        assert sorted(held) == sorted(USERS)


def test_split_placement_keeps_the_server_cpu_apart_from_the_clients() -> None:
    placement = split_placement()
    if placement.server is None:
        assert placement.describe() == "not pinned (one CPU)"
    else:
        assert placement.clients is not None
        assert not placement.server & placement.clients
        assert placement.describe().startswith("server pinned to CPU ")


def test_console_placement_gives_the_console_a_cpu_of_its_own() -> None:
    placement, console = console_placement()
    if console is None:
        assert placement.server is None and placement.clients is None
    else:
        assert placement.server is not None and placement.clients is not None
        assert len(console) == 1
        assert not console & (placement.server | placement.clients)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_two_client_processes_report_every_delivery_of_the_measured_load() -> None:
    with bench_server("plain") as server:
        result = run_latency(
            server,
            conns=50,
            user_rate=500.0,
            market_rate=20.0,
            seconds=0.4,
            warmup_s=0.1,
            processes=2,
        )
    assert result["complete"]
    assert result["user_events"] > 0
    assert result["user_deliveries"] == result["user_events"]  # one connection per user
    assert result["market_events"] > 0 and result["market_deliveries"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["client_processes"] == 2

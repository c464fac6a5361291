"""1. Latency: publish on the server to decoded in a client, beside the plain-broadcast floor.

100 connections (50 users x 2) held by the client processes, one per CPU left to them; the
server (its own process, on a CPU of its own where the machine has two or more) publishes
1,000 user events a second round-robin over the users, with and without market ticks for 20
symbols (2 a second each, to every connection). Every variant, the floor included, runs on the
same placement. Latency is `monotonic_ns()` after
`ginie_protocol.decode_server` in the client minus the `pub_ns` the server stamped just before
calling publish; CLOCK_MONOTONIC is system-wide, so the two processes share it.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Placement, bench_server, run_latency, split_placement
from benchmarks.report import Group

VARIANTS = ("plain", "ginie", "ginie-uvloop", "fastapi", "socketio")
LABEL = {
    "plain": "websockets broadcast() (floor)",
    "ginie": "Ginie hub",
    "ginie-uvloop": "Ginie hub on uvloop",
    "fastapi": "same hub on FastAPI/uvicorn",
    "socketio": "same hub on python-socketio",
}
USER_RATE = 1000
MARKET_RATE = 40
"""20 symbols x 2 ticks a second, each to all 100 connections."""


def client_processes(placement: Placement) -> int:
    """One client process per CPU the clients may use (two sharing a CPU make the tail worse)."""
    return max(1, len(placement.clients or ()))


def measure(variant: str, seconds: float, placement: Placement) -> list[dict[str, Any]]:
    """Both loads against one server process of `variant`, placed on CPUs by `placement`."""
    results = []
    with bench_server(variant, cpus=placement.server) as server:
        for market in (0, MARKET_RATE):
            result = run_latency(
                server,
                conns=100,
                user_rate=USER_RATE,
                market_rate=market,
                seconds=seconds,
                processes=client_processes(placement),
                cpus=placement.clients,
            )
            result["market_rate"] = market
            results.append(result)
    return results


def run(quick: bool) -> Group:
    seconds = 2.0 if quick else 10.0
    group = Group(
        name="latency",
        title=(
            f"1. Latency, publish -> decoded in client: 100 conns (50 users x 2), "
            f"{USER_RATE} user events/s ({seconds:.0f} s)"
        ),
        columns=[
            "server",
            "market ticks/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "user deliveries",
            "server CPU %",
            "target met",
        ],
    )
    placement = split_placement()
    for variant in VARIANTS:
        for result in measure(variant, seconds, placement):
            target = None
            if variant == "ginie" and result["market_rate"]:
                target = result["p50_ms"] < 0.5 and result["p99_ms"] < 2.0
            group.add(
                **{
                    "server": LABEL[variant],
                    "market ticks/s": result["market_rate"],
                    "p50 ms": result["p50_ms"],
                    "p99 ms": result["p99_ms"],
                    "max ms": result["max_ms"],
                    "user deliveries": result["user_deliveries"],
                    "server CPU %": 100 * result["server_cpu_s"] / result["wall_s"],
                    "target met": target,
                    "complete": result["complete"],
                }
            )
    group.notes.append(
        "target (Ginie, with market ticks): p50 < 0.5 ms and p99 < 2 ms; the old promise: 100 ms"
    )
    processes = client_processes(placement)
    group.notes.append(
        f"{placement.describe()}; {processes} client process(es) hold the 100 connections "
        "and count market ticks without decoding them"
    )
    return group


def live_age_s(group: Group) -> float:
    """Ginie's median push latency under the full load, in seconds (data age while LIVE)."""
    for row in group.rows:
        if row["server"] == LABEL["ginie"] and row["market ticks/s"]:
            value = row["p50 ms"]
            return float(value) / 1000 if isinstance(value, int | float) else 0.0
    return 0.0

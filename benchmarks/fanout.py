"""2. Fan-out at saturation: deliveries a second and server CPU microseconds per delivery.

The client process keeps bursts of user events in flight (each to the user's 2 connections)
and counts deliveries; the server's CPU time (`time.process_time`, all threads) over the same
window divided by the deliveries is the cost of one delivery, load generation included.
With one client process on a 2-core machine the clients, not the server, may be the limit of
deliveries a second; "server capacity" is one core divided by the CPU cost of a delivery.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import bench_server, run_clients
from benchmarks.latency import LABEL, VARIANTS
from benchmarks.report import Group


def measure(variant: str, seconds: float) -> dict[str, Any]:
    with bench_server(variant) as server:
        result: dict[str, Any] = run_clients(
            "saturate", server, "--conns=100", "--burst=500", f"--seconds={seconds}"
        )
        return result


def run(quick: bool) -> Group:
    seconds = 2.0 if quick else 8.0
    group = Group(
        name="fanout",
        title=(
            f"2. Fan-out at saturation, 100 conns (50 users x 2), per-user events ({seconds:.0f} s)"
        ),
        columns=[
            "server",
            "deliveries/s",
            "CPU us/delivery",
            "x floor",
            "server capacity/s",
            "server CPU %",
            "client CPU %",
        ],
    )
    results = {variant: measure(variant, seconds) for variant in VARIANTS}
    floor = results["plain"]["server_cpu_us_per_delivery"]
    for variant, result in results.items():
        cost = result["server_cpu_us_per_delivery"]
        group.add(
            **{
                "server": LABEL[variant],
                "deliveries/s": result["deliveries_per_s"],
                "CPU us/delivery": cost,
                "x floor": cost / floor,
                "server capacity/s": 1e6 / cost,
                "server CPU %": 100 * result["server_cpu_share"],
                "client CPU %": 100 * result["client_cpu_share"],
            }
        )
    ginie = results["ginie"]["server_cpu_us_per_delivery"]
    fastapi = results["fastapi"]["server_cpu_us_per_delivery"]
    socketio = results["socketio"]["server_cpu_us_per_delivery"]
    checks = [
        (f"Ginie within 1.3x of the floor ({ginie / floor:.2f}x)", ginie <= 1.3 * floor),
        (f"Ginie below FastAPI/uvicorn ({ginie / fastapi:.2f}x)", ginie < fastapi),
        (f"Ginie under 1/4 of python-socketio ({ginie / socketio:.2f}x)", ginie < socketio / 4),
    ]
    for text, met in checks:
        group.notes.append(f"target: {text}: {'met' if met else 'NOT met'}")
    uvloop = results["ginie-uvloop"]["server_cpu_us_per_delivery"]
    group.notes.append(f"Ginie on uvloop costs {uvloop / ginie:.2f}x Ginie on asyncio's loop")
    return group

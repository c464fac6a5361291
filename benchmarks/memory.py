"""5. Server memory per idle connection: RSS of the server process before and after 1,000
subscribed idle connections (after a warm-up of 50), divided by 1,000.
"""

from __future__ import annotations

from benchmarks.harness import bench_server, run_clients
from benchmarks.latency import LABEL
from benchmarks.report import Group

CONNECTIONS = 1000


def run(quick: bool) -> Group:
    variants = ("plain", "ginie") if quick else ("plain", "ginie", "fastapi", "socketio")
    group = Group(
        name="memory",
        title=f"5. Server memory per idle connection at {CONNECTIONS:,} connections",
        columns=["server", "connections", "RSS before MiB", "RSS after MiB", "KiB/connection"],
    )
    for variant in variants:
        with bench_server(variant) as server:
            result = run_clients("idle", server, f"--conns={CONNECTIONS}")
        group.add(
            **{
                "server": LABEL[variant],
                "connections": result["connections"],
                "RSS before MiB": result["rss_before"] / 2**20,
                "RSS after MiB": result["rss_after"] / 2**20,
                "KiB/connection": result["bytes_per_connection"] / 1024,
            }
        )
    return group

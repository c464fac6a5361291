"""6. Cluster: publish -> decoded latency and CPU per delivery, one node or two, in one run.

Three setups under the same paced load (table 1's rig: 100 connections, 50 users x 2, held by
the client processes; 1,000 user events a second published round-robin over the users from
the control port, each stamped with its publish time; no market ticks):

- one node on SQLite: table 1's `ginie` bench server;
- one node on PostgreSQL: the same server on a database of a throwaway PostgreSQL;
- two cluster nodes on PostgreSQL and Redis: the load is published on a `--role all` node,
  which holds the engine lease (its ready line waits for it), and the clients are connected
  to a `--role edge` node, so every event is committed by the first node, added to the Redis
  stream, read by the edge and sent from there.

The Ginie processes (both nodes in a cluster) and PostgreSQL and Redis run on the server's
CPU where the machine has two or more (`split_placement`); the clients on the others. CPU
per delivery is the CPU time (every thread, user and system, from `/proc`) over the measured
load divided by the user events delivered: of the Ginie processes, and apart of PostgreSQL's
processes (postmaster, backends, WAL writer, ...) and Redis's. PostgreSQL keeps its default
durability (a WAL flush at each commit); SQLite runs as the server runs it (WAL,
`synchronous=NORMAL`, no flush at a commit).

Without PostgreSQL or redis-server on the machine, their rows say "not run" and why.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchServer,
    Placement,
    bench_node,
    bench_server,
    run_latency,
    split_placement,
)
from benchmarks.latency import client_processes
from benchmarks.report import Group
from benchmarks.services import (
    NO_POSTGRES,
    NO_REDIS,
    PgCluster,
    RedisServer,
    cpu_seconds,
    pg_bindir,
    pin,
    redis_binary,
)

SETUPS = ("sqlite", "postgresql", "cluster")
LABEL = {
    "sqlite": "one node, SQLite",
    "postgresql": "one node, PostgreSQL",
    "cluster": "2 nodes: engine (all) -> edge, PostgreSQL + Redis",
}
USER_RATE = 1000.0
CONNS = 100


@dataclass(frozen=True)
class Load:
    """The paced load of one setup."""

    conns: int = CONNS
    user_rate: float = USER_RATE
    seconds: float = 2.0
    warmup_s: float = 0.5


@dataclass
class Services:
    """The PostgreSQL and Redis the setups run on, or why they are not there."""

    folder: Path
    pg: PgCluster | None = None
    redis: RedisServer | None = None
    pg_missing: str | None = None
    redis_missing: str | None = None
    versions: list[str] = field(default_factory=list)

    def unavailable(self, setup: str) -> str | None:
        """Why `setup` cannot run here (None: it can)."""
        if setup == "sqlite":
            return None
        if self.pg_missing is not None:
            return self.pg_missing
        if setup == "cluster":
            return self.redis_missing
        return None

    def pids(self, setup: str) -> list[int]:
        """The processes of PostgreSQL and Redis that `setup` uses, as they are now."""
        found = self.pg.pids() if self.pg is not None and setup != "sqlite" else []
        if self.redis is not None and setup == "cluster":
            found += self.redis.pids()
        return found


@contextlib.contextmanager
def services(cpus: frozenset[int] | None, redis: bool = True) -> Iterator[Services]:
    """Start a throwaway PostgreSQL (and Redis) pinned to `cpus`; what could not start is
    named in `pg_missing` / `redis_missing`. Both are stopped and removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="ginie-bench-"))
    pg_root = Path(tempfile.mkdtemp(prefix="ginie-bench-pg-"))  # chowned to postgres as root
    running = Services(folder)
    try:
        bindir = pg_bindir()
        if bindir is None:
            running.pg_missing = NO_POSTGRES
        else:
            try:
                running.pg = PgCluster.start(pg_root, bindir)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                running.pg_missing = f"PostgreSQL did not start: {_first_line(exc)}"
            else:
                pin(running.pg.pids(), cpus)
                running.versions.append(_version([str(bindir / "postgres"), "--version"]))
        if not redis:
            running.redis_missing = "not asked for"
        elif redis_binary() is None:
            running.redis_missing = NO_REDIS
        else:
            try:
                running.redis = RedisServer.start(folder)
            except (RuntimeError, OSError) as exc:
                running.redis_missing = f"redis-server did not start: {_first_line(exc)}"
            else:
                pin(running.redis.pids(), cpus)
                running.versions.append(_version([str(redis_binary()), "--version"]))
        yield running
    finally:
        try:
            if running.redis is not None:
                running.redis.stop()
            if running.pg is not None:
                running.pg.stop()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(pg_root, ignore_errors=True)


def measure(setup: str, running: Services, load: Load, placement: Placement) -> dict[str, Any]:
    """One setup under `load`: run_latency's result, with `cpu_s` of `nodes` (every Ginie
    process), each node apart (`node0`, `node1`) and `services` (PostgreSQL and Redis)."""
    with contextlib.ExitStack() as stack:
        nodes = _start(setup, running, placement, stack)
        probes: dict[str, Callable[[], float]] = {
            "nodes": lambda: cpu_seconds(node.process.pid for node in nodes),
            "services": lambda: cpu_seconds(running.pids(setup)),
        }
        for i, node in enumerate(nodes):
            probes[f"node{i}"] = lambda pid=node.process.pid: cpu_seconds([pid])
        return run_latency(
            nodes[0],
            conns=load.conns,
            user_rate=load.user_rate,
            market_rate=0.0,
            seconds=load.seconds,
            warmup_s=load.warmup_s,
            processes=client_processes(placement),
            cpus=placement.clients,
            clients_at=nodes[-1],
            cpu_probes=probes,
        )


def _start(
    setup: str, running: Services, placement: Placement, stack: contextlib.ExitStack
) -> list[BenchServer]:
    """The Ginie processes of `setup`, the publishing one first, the clients' one last."""
    if setup == "sqlite":
        return [stack.enter_context(bench_server("ginie", cpus=placement.server))]
    assert running.pg is not None
    database = running.pg.database()
    tokens = Path(tempfile.mkdtemp(prefix="bench-tokens-", dir=running.folder)) / "tokens.json"
    if setup == "postgresql":
        return [stack.enter_context(bench_node(database, tokens, cpus=placement.server))]
    assert running.redis is not None
    broker = running.redis.url
    engine = stack.enter_context(bench_node(database, tokens, broker, "all", cpus=placement.server))
    edge = stack.enter_context(bench_node(database, tokens, broker, "edge", cpus=placement.server))
    return [engine, edge]


def per_delivery_us(result: dict[str, Any], probe: str) -> float:
    """CPU microseconds of `probe`'s processes per user event delivered."""
    deliveries = result["user_deliveries"]
    return 1e6 * result["cpu_s"][probe] / deliveries if deliveries else float("nan")


def run(quick: bool) -> Group:
    load = Load(seconds=2.0 if quick else 10.0)
    group = Group(
        name="cluster",
        title=(
            f"6. Cluster, publish -> decoded in client: {load.conns} conns (50 users x 2), "
            f"{load.user_rate:.0f} user events/s ({load.seconds:.0f} s)"
        ),
        columns=[
            "setup",
            "p50 ms",
            "p99 ms",
            "max ms",
            "user deliveries",
            "Ginie CPU us/delivery",
            "PostgreSQL+Redis us/delivery",
            "server side CPU %",
            "complete",
        ],
    )
    placement = split_placement()
    split = ""
    with services(placement.server) as running:
        for setup in SETUPS:
            reason = running.unavailable(setup)
            if reason is not None:
                group.add(setup=LABEL[setup], complete=f"not run: {reason}")
                continue
            result = measure(setup, running, load, placement)
            services_us = per_delivery_us(result, "services") if setup != "sqlite" else None
            server_side = result["cpu_s"]["nodes"] + result["cpu_s"]["services"]
            group.add(
                **{
                    "setup": LABEL[setup],
                    "p50 ms": result["p50_ms"],
                    "p99 ms": result["p99_ms"],
                    "max ms": result["max_ms"],
                    "user deliveries": result["user_deliveries"],
                    "Ginie CPU us/delivery": per_delivery_us(result, "nodes"),
                    "PostgreSQL+Redis us/delivery": services_us,
                    "server side CPU %": 100 * server_side / result["wall_s"],
                    "complete": result["complete"],
                }
            )
            if setup == "cluster":
                split = (
                    f"of the 2 nodes' CPU: the engine node {per_delivery_us(result, 'node0'):.1f}"
                    f" us/delivery, the edge {per_delivery_us(result, 'node1'):.1f} us/delivery"
                )
        versions = "; ".join(running.versions)
    group.notes.append(
        f"{placement.describe()} (both nodes, PostgreSQL and Redis on the server's CPU); "
        f"{client_processes(placement)} client process(es); no market ticks"
    )
    group.notes.append(
        "CPU per delivery: CPU time of the Ginie processes, and apart of PostgreSQL's and "
        "Redis's, over the measured load / user events delivered (2 per event); server side "
        "CPU %: all of them together, of one CPU"
    )
    if split:
        group.notes.append(split)
    if versions:
        group.notes.append(
            f"{versions}; PostgreSQL with its default durability (WAL flushed at each commit), "
            "SQLite in WAL mode with synchronous=NORMAL"
        )
    return group


def _version(command: list[str]) -> str:
    """`PostgreSQL 15.18` or `Redis 7.0.15`, from the server's `--version`."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    found = re.search(r"(?:v=|\) )(\d+(?:\.\d+)*)", done.stdout)
    name = "Redis" if command[0].endswith("redis-server") else "PostgreSQL"
    return f"{name} {found.group(1) if found else '?'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:100]

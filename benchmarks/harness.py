"""Child processes for the measurements: a bench server and the client processes that drive it.

All run with the repository root on `sys.path` and the same interpreter as the runner. Every
wait is bounded; a server is asked to quit, then terminated, then killed. Where the machine has
two or more CPUs, a measurement may pin the server to one CPU and its clients to the others
(`Placement`), so that the clients' bursts of frames do not take the server's CPU or the
other way round.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class Placement:
    """The CPUs a bench server and its client processes may run on (None: anywhere)."""

    server: frozenset[int] | None = None
    clients: frozenset[int] | None = None

    def describe(self) -> str:
        if self.server is None or self.clients is None:
            return "not pinned (one CPU)"
        return f"server pinned to CPU {_cpus(self.server)}, clients to CPU {_cpus(self.clients)}"


def split_placement() -> Placement:
    """The server on the first CPU this process may use, the clients on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Placement()
    return Placement(frozenset(cpus[:1]), frozenset(cpus[1:]))


def console_placement() -> tuple[Placement, frozenset[int] | None]:
    """The console on the last CPU this process may use; the server and clients on the rest.

    The load's 100 connections stand for other traders' consoles, which run on their own
    machines; this keeps them, and the server they load, off the measured console's CPU.
    With one CPU nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Placement(), None
    rest = frozenset(cpus[:-1])
    return Placement(rest, rest), frozenset(cpus[-1:])


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def _pin(process: subprocess.Popen[str], cpus: frozenset[int] | None) -> None:
    """Pin a just-started child (before it starts threads, which inherit the mask)."""
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)


@dataclass
class BenchServer:
    """A running bench server: its process, WebSocket port, control port and token file."""

    variant: str
    process: subprocess.Popen[str]
    port: int
    control_port: int
    tokens: Path | None


@contextlib.contextmanager
def bench_server(
    variant: str, ready_s: float = 30.0, cpus: frozenset[int] | None = None
) -> Iterator[BenchServer]:
    """Start `python -m benchmarks.servers VARIANT DB` (on `cpus`) and wait for its ready line."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as tmp:
        db = Path(tmp) / "bench.db"
        tokens = db.with_suffix(".tokens.json")
        with _started(variant, [variant, str(db)], ready_s, cpus) as (process, port, control):
            yield BenchServer(variant, process, port, control, tokens if tokens.exists() else None)


@contextlib.contextmanager
def bench_node(
    database: str,
    tokens: Path,
    *cluster: str,
    ready_s: float = 60.0,
    cpus: frozenset[int] | None = None,
) -> Iterator[BenchServer]:
    """Start `python -m benchmarks.servers ginie-db DATABASE TOKENS [BROKER ROLE]` (on `cpus`):
    Ginie's server on a database given by URL, or a cluster node with `cluster` = (broker URL,
    role); wait for its ready line (a node that runs the engine: once it holds the lease)."""
    arguments = ["ginie-db", database, str(tokens), *cluster]
    label = " ".join(["ginie-db", *cluster])
    with _started(label, arguments, ready_s, cpus) as (process, port, control):
        yield BenchServer("ginie", process, port, control, tokens)


@contextlib.contextmanager
def _started(
    label: str, arguments: list[str], ready_s: float, cpus: frozenset[int] | None
) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """`python -m benchmarks.servers ARGUMENTS` (on `cpus`) once it printed `ready PORT
    CONTROL_PORT`: the process and both ports. Stopped on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers", *arguments],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _pin(process, cpus)
        line = _read_line(process, ready_s)
        words = line.split()
        if len(words) != 3 or words[0] != "ready":
            raise RuntimeError(f"{label} server did not start: {line!r}")
        yield process, int(words[1]), int(words[2])
    finally:
        _stop(process)


def _read_line(process: subprocess.Popen[str], limit_s: float) -> str:
    """The process's next stdout line, or an error after `limit_s` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(limit_s):
            raise TimeoutError(f"no line from child process {process.pid} in {limit_s} s")
    return process.stdout.readline()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def run_clients(mode: str, server: BenchServer, *options: str, limit_s: float = 120.0) -> Any:
    """Run `python -m benchmarks.clients` against `server`; its JSON result."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        mode,
        server.variant,
        str(server.port),
        str(server.control_port),
        *options,
    ]
    if server.tokens is not None:
        command += ["--tokens", str(server.tokens)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=limit_s,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{mode} clients against {server.variant} failed ({done.returncode}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    if done.stderr.strip():
        print(done.stderr.strip()[-1000:], file=sys.stderr)
    return json.loads(lines[-1])


def run_latency(
    server: BenchServer,
    *,
    conns: int = 100,
    user_rate: float = 1000.0,
    market_rate: float = 40.0,
    seconds: float = 2.0,
    warmup_s: float = 0.5,
    processes: int = 1,
    cpus: frozenset[int] | None = None,
    clients_at: BenchServer | None = None,
    cpu_probes: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, Any]:
    """Publish-to-decoded latency of a paced load, the connections spread over `processes`.

    Each client process (`python -m benchmarks.clients latency --shard I --shards N`) holds
    the two connections of every Nth user; this function drives them and the server's load:
    a warm-up, a reset of the counts, the measured load, then each process reports the
    latencies of the user events of the measured load that reached its connections.

    `clients_at`: the server the clients connect to, when it is not the one that publishes
    (an edge node of a cluster; its control port counts the connections). `cpu_probes`: name
    -> cumulative CPU seconds of some processes, read right before and after the measured
    load; their differences are the result's `cpu_s`.
    """
    target = clients_at or server
    probes = dict(cpu_probes or {})
    clients = [_latency_client(target, conns, shard, processes, cpus) for shard in range(processes)]
    try:
        for client in clients:
            _expect(client, "connected", 60.0)
        with contextlib.ExitStack() as stack:
            control = _open_control(stack, server.control_port)
            counted = control if target is server else _open_control(stack, target.control_port)
            _wait_connections(counted, conns)
            _ask(control, f"load {user_rate} {market_rate} {warmup_s}")
            for client in clients:
                _tell(client, "reset")
                _expect(client, "ok", 10.0)
            before = {name: probe() for name, probe in probes.items()}
            reply = _ask(control, f"load {user_rate} {market_rate} {seconds}").split()
            cpu_s = {name: probe() - before[name] for name, probe in probes.items()}
        users, market, first = int(reply[1]), int(reply[2]), int(reply[5])
        for client in clients:
            _tell(client, f"collect {first} {users}")
        shares = [_result(client, 30.0) for client in clients]
    finally:
        for client in clients:
            _stop(client)
    values = sorted(value for share in shares for value in share["latencies_ns"])
    return {
        "user_events": users,
        "market_events": market,
        "user_deliveries": len(values),
        "market_deliveries": sum(share["market_deliveries"] for share in shares),
        "complete": all(share["complete"] for share in shares),
        "p50_ms": percentile(values, 0.50) / 1e6,
        "p99_ms": percentile(values, 0.99) / 1e6,
        "max_ms": (values[-1] / 1e6) if values else float("nan"),
        "server_cpu_s": float(reply[3]),
        "wall_s": float(reply[4]),
        "client_cpu_s": sum(share["client_cpu_s"] for share in shares),
        "client_processes": processes,
        "cpu_s": cpu_s,
    }


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """The nearest-rank `q` quantile of `sorted_values` (NaN when empty)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))
    return float(sorted_values[index])


def _latency_client(
    server: BenchServer, conns: int, shard: int, shards: int, cpus: frozenset[int] | None
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        "latency",
        server.variant,
        str(server.port),
        str(server.control_port),
        f"--conns={conns}",
        f"--shard={shard}",
        f"--shards={shards}",
    ]
    if server.tokens is not None:
        command += ["--tokens", str(server.tokens)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    _pin(process, cpus)
    return process


def _open_control(stack: contextlib.ExitStack, port: int) -> TextIO:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=60.0))
    return stack.enter_context(sock.makefile("rw", encoding="utf-8", newline="\n"))


def _tell(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _expect(process: subprocess.Popen[str], word: str, limit_s: float) -> None:
    line = _read_line(process, limit_s).strip()
    if line != word:
        raise RuntimeError(f"latency client {process.pid}: expected {word!r}, got {line!r}")


def _result(process: subprocess.Popen[str], limit_s: float) -> Any:
    line = _read_line(process, limit_s).strip()
    if not line.startswith("{"):
        raise RuntimeError(f"latency client {process.pid} failed: {line!r}")
    return json.loads(line)


def _ask(control: TextIO, line: str) -> str:
    control.write(line + "\n")
    control.flush()
    reply = control.readline().strip()
    if not reply or reply.startswith("error"):
        raise RuntimeError(f"control {line!r}: {reply!r}")
    return reply


def _wait_connections(control: TextIO, count: int, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while int(_ask(control, "conns")) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"server has not got {count} subscribed connections")
        time.sleep(0.02)

"""Throwaway PostgreSQL and Redis servers on 127.0.0.1, for the cluster measurements.

- `PgCluster.start(root, bindir)`: `initdb` and `pg_ctl start` in `root` (as the `postgres`
  user when run as root, since both refuse to run as root; `root` is chowned to it), on a free
  port of 127.0.0.1 with its socket in `root`. PostgreSQL's own durability is kept (`fsync`
  and `synchronous_commit` on, as a deployment runs it); `database(settings)` makes a new,
  empty database with per-database settings (`synchronous_commit=off`, ...). `stop()` stops
  it (`-m fast`).
- `RedisServer.start(folder)`: `redis-server` on a free port of 127.0.0.1 without persistence;
  `stop()` terminates it.
- `cpu_seconds(pids)`: CPU time of processes (every thread, user and system) from
  `/proc/PID/task/TID/schedstat`, in nanoseconds' precision; `PgCluster.pids()` are the
  postmaster and its children (one backend per connection, the WAL writer, the checkpointer,
  ...), `RedisServer.pids()` the one Redis process.
- `pin(pids, cpus)`: every thread of those processes onto `cpus`; backends PostgreSQL starts
  later inherit the postmaster's mask.
- `missing()`: why the servers cannot be started here (None when they can).

tests/cluster starts its servers with these too (with PostgreSQL's durability off, since its
tests kill Ginie and Redis, never PostgreSQL; and `RedisServer.kill()` and `start_again()`).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 30.0


def pg_bindir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def redis_binary() -> str | None:
    return shutil.which("redis-server")


NO_POSTGRES = "no initdb/pg_ctl (apt-get install postgresql)"
NO_REDIS = "no redis-server (apt-get install redis-server)"


def missing(redis: bool = True) -> str | None:
    """Why PostgreSQL (and, when `redis`, Redis) cannot be started on this machine."""
    if pg_bindir() is None:
        return NO_POSTGRES
    if redis and redis_binary() is None:
        return NO_REDIS
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgCluster:
    """A running throwaway PostgreSQL cluster. `start` once, `stop` once."""

    root: Path
    bindir: Path
    port: int
    as_postgres: bool
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, root: Path, bindir: Path, settings: Iterable[str] = ()) -> PgCluster:
        """`settings`: more server settings, `name=value` each (`fsync=off`, ...)."""
        as_postgres = os.geteuid() == 0
        root.mkdir(parents=True, exist_ok=True)
        if as_postgres:
            shutil.chown(root, "postgres")
        cluster = cls(root=root, bindir=bindir, port=free_port(), as_postgres=as_postgres)
        cluster._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "ginie",
                     "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = " ".join(
            [f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in settings]
        )
        try:
            cluster._run("pg_ctl", "-D", str(root / "data"), "-w", "-l", str(root / "log"),
                         "-o", options, "start")  # fmt: skip
        except BaseException:
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                cluster._run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "stop")
            raise
        return cluster

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://ginie@127.0.0.1:{self.port}/{name}"

    def database(self, settings: Mapping[str, str] | None = None) -> str:
        """A new, empty database's URL; `settings` apply to every session of it."""
        import psycopg  # a dependency of the server; imported here to keep `missing()` light

        name = f"db{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
            for key, value in (settings or {}).items():
                admin.execute(f"ALTER DATABASE {name} SET {key} = '{value}'")
        return self.url(name)

    def pids(self) -> list[int]:
        """The postmaster and every process it started, as they are now."""
        text = (self.root / "data" / "postmaster.pid").read_text()
        postmaster = int(text.split()[0])
        return [postmaster, *children(postmaster)]

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text() if path.exists() else ""

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()} {self.log()[-2000:]}")


@dataclass
class RedisServer:
    """A running throwaway Redis. `start` once, `stop` once."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, folder: Path, port: int | None = None) -> RedisServer:
        """A Redis on `port` (a free one by default), answering PING."""
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        port = port or free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = cls(folder, port, process)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def kill(self) -> None:
        """SIGKILL, as a crash; waits until it is gone (its port is free again)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def start_again(self) -> None:
        """Start a new, empty Redis on the same port (after `kill`)."""
        self.process = RedisServer.start(self.folder, self.port).process

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def pids(self) -> list[int]:
        return [self.process.pid]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def _wait_ready(self) -> None:
        """Until Redis answers PING (bounded; an exited Redis fails at once)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe,
            ):
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S:g} s")


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent`, as /proc lists them now."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(stat).read_text()
            # pid (comm) state ppid ...; comm may hold spaces and parentheses.
            if int(text[text.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(Path(stat).parent.name))
    return found


def _tasks(pid: int) -> list[Path]:
    return [Path(p) for p in glob.glob(f"/proc/{pid}/task/[0-9]*")]


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time so far of every thread of `pids` that still runs (a process gone counts 0)."""
    total = 0
    for pid in pids:
        for task in _tasks(pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def pin(pids: Iterable[int], cpus: frozenset[int] | None) -> None:
    """Every thread of `pids` onto `cpus` (None: leave them where they are)."""
    if cpus is None:
        return
    for pid in pids:
        for task in _tasks(pid):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), cpus)

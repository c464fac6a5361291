"""A throwaway PostgreSQL cluster for the tests, and the two backends the tests run against.

`PgCluster.start(root)` runs `initdb` and `pg_ctl start` (as the `postgres` user when the tests
run as root, since both refuse to run as root) on a free port of 127.0.0.1, with its socket
in its own folder. Durability is off (`fsync=off`): the tests kill Ginie servers, never this
cluster. `database()` gives a fresh, empty database's URL.

`Backend` is what a test parametrized over both engines gets: the server settings that select
it, a connection to it, and `rows(sql)` to read what is committed, from a connection of its
own.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ginie_server.storage.backend import Database, open_any
from tests.harness import ServerProcess

REQUIRE_ENV = "GINIE_REQUIRE_CLUSTER"
START_TIMEOUT_SECONDS = 30


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgCluster:
    """A running PostgreSQL cluster of the test session."""

    root: Path
    bindir: Path
    port: int
    as_postgres: bool
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, root: Path, bindir: Path) -> PgCluster:
        as_postgres = os.geteuid() == 0
        root.mkdir(parents=True, exist_ok=True)
        if as_postgres:
            shutil.chown(root, "postgres")
        cluster = cls(root=root, bindir=bindir, port=free_port(), as_postgres=as_postgres)
        cluster._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "ginie",
                     "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        cluster._run("pg_ctl", "-D", str(root / "data"), "-w", "-l", str(root / "log"),
                     "-o", options, "start")  # fmt: skip
        return cluster

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def url(self, name: str = "postgres") -> str:
        return f"postgresql://ginie@127.0.0.1:{self.port}/{name}"

    def database(self) -> str:
        """A new, empty database's URL."""
        name = f"g{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text() if path.exists() else ""

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()} {self.log()[-2000:]}")


@dataclass
class Backend:
    """One engine a test runs against: `sqlite` (a file) or `postgresql` (a fresh database)."""

    name: str
    target: str | Path
    folder: Path
    """The test's own folder."""
    opened: list[Database] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        """`ServerConfig` settings that select this database."""
        if isinstance(self.target, Path):
            return {"db_path": self.target}
        return {"db_url": self.target}

    @property
    def cli_args(self) -> list[str]:
        return ["--db", str(self.target)]

    def open(self) -> Database:
        """A connection of the server's kind (closed when the test ends)."""
        db = open_any(self.target)
        self.opened.append(db)
        return db

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """What another connection sees committed (`?` placeholders, `"user"` quoted)."""
        if isinstance(self.target, Path):
            reader = sqlite3.connect(self.target)
            try:
                return reader.execute(sql, params).fetchall()
            finally:
                reader.close()
        with psycopg.connect(self.target) as conn:
            return conn.execute(sql.replace("?", "%s"), params or None).fetchall()

    def server_process(self, _db_path: Path, *args: str, **kwargs: Any) -> ServerProcess:
        """`ServerProcess` on this database (a stand-in for the suite's, which takes a path)."""
        if isinstance(self.target, Path):
            return ServerProcess(self.target, *args, **kwargs)
        return PgServerProcess(self.started, *args, "--db", self.target, **kwargs)

    @property
    def started(self) -> Path:
        """A file that exists once a server has started on this PostgreSQL database, so that
        `ServerProcess` expects the demo token line on the first start only."""
        return self.folder / "postgresql.started"

    def close(self) -> None:
        for db in self.opened:
            db.close()


class PgServerProcess(ServerProcess):
    """`ServerProcess` whose `--db` is a PostgreSQL URL given after its own (argparse keeps the
    last); its `db_path` is the marker file that says whether a server started before."""

    def start(self) -> PgServerProcess:
        super().start()
        self.db_path.touch()
        return self

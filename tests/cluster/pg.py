"""A throwaway PostgreSQL cluster for the tests, and the two backends the tests run against.

`PgCluster.start(root, bindir, FAST)` (`benchmarks.services`, shared with the benchmarks) runs
`initdb` and `pg_ctl start` (as the `postgres` user when the tests run as root, since both
refuse to run as root) on a free port of 127.0.0.1, with its socket in its own folder.
Durability is off (`FAST`): the tests kill Ginie servers, never this cluster. `database()`
gives a fresh, empty database's URL.

`Backend` is what a test parametrized over both engines gets: the server settings that select
it, a connection to it, and `rows(sql)` to read what is committed, from a connection of its
own.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from benchmarks.services import PgCluster, free_port, pg_bindir

from ginie_server.storage.backend import Database, open_any
from tests.harness import ServerProcess

__all__ = [
    "FAST",
    "REQUIRE_ENV",
    "Backend",
    "PgCluster",
    "PgServerProcess",
    "free_port",
    "pg_bindir",
]

REQUIRE_ENV = "GINIE_REQUIRE_CLUSTER"


FAST = ("fsync=off", "full_page_writes=off", "max_connections=300")
"""The tests' PostgreSQL: durability off, since they kill Ginie and Redis, never PostgreSQL."""


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

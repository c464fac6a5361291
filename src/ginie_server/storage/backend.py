"""The seam between the server and its database: SQLite (the embedded default) or PostgreSQL.

Every repository (`UserStore`, `EventLog`, `TradingStore`) and the journal talk to a `Database`:
`execute`, `executemany`, `commit`, `rollback`, `in_transaction`. An `sqlite3.Connection` is
one as it is; `storage.postgres.PostgresDatabase` is the other. Statements are written once,
in the SQL both engines accept: `?` placeholders (the PostgreSQL side turns them into `%s`, so
a statement holds no literal `?` or `%`), `"user"` quoted (a reserved word in PostgreSQL),
upserts as `INSERT ... ON CONFLICT (...) DO UPDATE SET col = excluded.col`. What still differs
(the errors to catch, SQLite's `INDEXED BY` hints, the schema migrations) is in the `Dialect`.

Both start a transaction at the first write and end it only on `commit()` or `rollback()`;
reads outside one see the last commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """What a statement returns: rows to fetch or iterate, and the rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """One connection to the server's database, used from the event loop thread only."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two engines beyond the statements they share."""

    name: str
    errors: tuple[type[Exception], ...]
    """The exceptions a failed statement or commit raises."""
    index_hints: bool
    """Whether `INDEXED BY` may name the index a query must use (SQLite only)."""

    def indexed_by(self, index: str) -> str:
        """`INDEXED BY index ` where the engine takes it, else nothing."""
        return f"INDEXED BY {index} " if self.index_hints else ""


SQLITE = Dialect("sqlite", (sqlite3.Error,), index_hints=True)


@runtime_checkable
class ServerDatabase(Database, Protocol):
    """A database server's connection (PostgreSQL): it names its dialect and runs its own
    schema migrations."""

    dialect: Dialect

    def migrate(self, component: str, migrations: Sequence[str]) -> None: ...

    def pipeline(self) -> AbstractContextManager[object]:
        """Send the statements run inside it together, without waiting for each answer; their
        errors are raised at its end."""
        ...


def dialect_of(db: Database) -> Dialect:
    """The dialect of `db`: SQLite's for an `sqlite3.Connection`, else the one it names."""
    if isinstance(db, sqlite3.Connection):
        return SQLITE
    if isinstance(db, ServerDatabase):
        return db.dialect
    return SQLITE


def batched(db: Database) -> AbstractContextManager[object]:
    """Around statements that read nothing back: one round trip for all of them where `db`
    is a server's (PostgreSQL's pipeline), nothing to do for SQLite's file. (SQLite's is told
    first by its class: the check against the protocol costs tens of microseconds a commit.)"""
    if not isinstance(db, sqlite3.Connection) and isinstance(db, ServerDatabase):
        return db.pipeline()
    return nullcontext()


def is_postgres_url(target: str | Path) -> bool:
    """Whether `target` (a `--db` value) is a PostgreSQL URL rather than an SQLite path."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_any(target: str | Path) -> Database:
    """Open the database `target` names: a `postgresql://` URL, or an SQLite file's path.

    Raises `storage.db.DatabaseError` when it cannot be opened or used.
    """
    if is_postgres_url(target):
        # Imported here: a server on SQLite never loads psycopg.
        from ginie_server.storage.postgres import open_postgres

        return open_postgres(str(target))
    from ginie_server.storage.db import open_database

    return open_database(target)

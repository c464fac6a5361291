"""Opening the SQLite database, and the schema migrations every repository registers.

One `sqlite3.Connection` serves the whole server (the hub and the sources run on one event
loop). It runs in WAL mode with `synchronous=NORMAL` and foreign keys on, and in Python's
default transaction handling: a write opens a transaction, `commit()` ends it.

Each part of the server owns a *component* of the schema: an ordered list of migrations (SQL
scripts or functions of the connection). `migrate(conn, component, migrations)` applies the ones
not applied yet, in one transaction each, and records the component's version in
`schema_versions`. Adding a table later means appending a migration, never editing an old one.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

Migration = str | Callable[[sqlite3.Connection], None]
"""One schema step: an SQL script, or a function that runs its own statements."""


class DatabaseError(Exception):
    """The database cannot be opened or used; the message is one line fit for a user."""


CORE_MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX tokens_by_user ON tokens(user);
    CREATE TABLE events (
        user TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        symbol TEXT,
        ts INTEGER NOT NULL,
        frame TEXT NOT NULL,
        PRIMARY KEY (user, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_type ON events(user, type, seq);
    """,
)
"""The server's own tables: meta (the epoch), users, tokens, and the durable event log."""


def open_database(path: str | Path) -> sqlite3.Connection:
    """Open (or create) the database at `path`, bring the core schema up to date, return it.

    A new database gets a random `epoch` in `meta`. Raises DatabaseError when the file cannot
    be opened, is not an SQLite database, or is damaged.
    """
    where = str(path)
    try:
        conn = sqlite3.connect(where, check_same_thread=False)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {where}: {exc}") from None
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn, "core", CORE_MIGRATIONS)
        _ensure_epoch(conn)
    except (sqlite3.Error, DatabaseError) as exc:
        conn.close()
        if isinstance(exc, DatabaseError):
            raise
        raise DatabaseError(f"cannot use database {where}: {exc}") from None
    return conn


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> None:
    """Apply the migrations of `component` that this database has not seen yet, in order."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions ("
        "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    conn.commit()
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    applied = row[0] if row else 0
    if applied > len(migrations):
        raise DatabaseError(
            f"database schema {component!r} is version {applied}, newer than this server "
            f"({len(migrations)})"
        )
    for version, step in enumerate(migrations[applied:], start=applied + 1):
        try:
            conn.execute("BEGIN")
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def _statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (executescript would commit on its own)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    pending = pending.rstrip(";")
    if pending.strip():
        raise DatabaseError(f"incomplete SQL statement in migration: {pending.strip()[:60]}")
    return statements


def _ensure_epoch(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (secrets.token_hex(8),)
    )
    conn.commit()


def read_epoch(conn: sqlite3.Connection) -> str:
    """The epoch of this database: it changes only with a new database."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    if row is None:
        raise DatabaseError("database has no epoch")
    return str(row[0])

"""Opening the SQLite database, the schema migrations every repository registers, and the
background WAL checkpointer. (PostgreSQL's side is `storage.postgres`; the seam between the
two is `storage.backend`.)

One `sqlite3.Connection` serves the whole server (the hub and the sources run on one event
loop). It runs in WAL mode with `synchronous=NORMAL` and foreign keys on, and in Python's
default transaction handling: a write opens a transaction, `commit()` ends it. A running
server copies the WAL into the database file from a thread of its own (`WalCheckpointer`), so
commits on the event loop seldom pay for a checkpoint, and then only for a short one.

Each part of the server owns a *component* of the schema: an ordered list of migrations (SQL
scripts or functions of the connection). `migrate(conn, component, migrations)` applies the ones
not applied yet, in one transaction each, and records the component's version in
`schema_versions`. Adding a table later means appending a migration, never editing an old one.
A component has one list per engine; `migrate_schema` runs the one of the database given.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ginie_server.storage.backend import Database, ServerDatabase

log = logging.getLogger(__name__)

Migration = str | Callable[[sqlite3.Connection], None]
"""One schema step: an SQL script, or a function that runs its own statements."""

StateWrite = Callable[[Database], None]
"""One staged write: run inside the journal's transaction (perhaps more than once, after a
failed commit, so it must be idempotent)."""


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
    """
    DROP INDEX events_by_type;
    CREATE INDEX lifecycle_events ON events(user, seq) WHERE type = 'LIFECYCLE_EVENT';
    """,
)
"""The server's own tables: meta (the epoch), users, tokens, and the durable event log.

Step 2: only `LIFECYCLE_EVENT`s are ever read by type (paging back through them), so only
they are indexed by type; every other event costs one b-tree insert, not two.
"""


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
        ensure_epoch(conn)
    except (sqlite3.Error, DatabaseError) as exc:
        conn.close()
        if isinstance(exc, DatabaseError):
            raise
        raise DatabaseError(f"cannot use database {where}: {exc}") from None
    return conn


CREATE_SCHEMA_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)
RECORD_VERSION = (
    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
    "ON CONFLICT (component) DO UPDATE SET version = excluded.version"
)

Step = TypeVar("Step")


def steps_to_apply(
    conn: Database, component: str, migrations: Sequence[Step]
) -> list[tuple[int, Step]]:
    """The migrations of `component` not applied yet, with the version each brings.

    Raises DatabaseError when the database is newer than these migrations.
    """
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    applied = int(row[0]) if row else 0
    if applied > len(migrations):
        raise DatabaseError(
            f"database schema {component!r} is version {applied}, newer than this server "
            f"({len(migrations)})"
        )
    return list(enumerate(migrations[applied:], start=applied + 1))


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> None:
    """Apply the migrations of `component` that this database has not seen yet, in order."""
    conn.execute(CREATE_SCHEMA_VERSIONS)
    conn.commit()
    for version, step in steps_to_apply(conn, component, migrations):
        try:
            conn.execute("BEGIN")
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute(RECORD_VERSION, (component, version))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def migrate_schema(
    db: Database, component: str, sqlite: Sequence[Migration], postgresql: Sequence[str]
) -> None:
    """Apply the migrations of `component` for the engine `db` runs on."""
    if isinstance(db, ServerDatabase):
        db.migrate(component, postgresql)
    else:
        assert isinstance(db, sqlite3.Connection)
        migrate(db, component, sqlite)


@contextmanager
def transaction(conn: Database) -> Iterator[Database]:
    """Run an administrative change (users, tokens) in one transaction of its own.

    The journal commits the engine's state and events; this commits what is neither, on a
    connection with no transaction open (the journal stages its writes until it commits).
    """
    if conn.in_transaction:
        raise DatabaseError("a transaction is already open on this connection")
    try:
        yield conn
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


def ensure_epoch(conn: Database) -> None:
    """Give a new database its random epoch (an existing one keeps its own)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT (key) DO NOTHING",
        (secrets.token_hex(8),),
    )
    conn.commit()


def read_epoch(conn: Database) -> str:
    """The epoch of this database: it changes only with a new database."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    if row is None:
        raise DatabaseError("database has no epoch")
    return str(row[0])


class WalCheckpointer:
    """Checkpoints the WAL of a connection's database from a background thread.

    SQLite's automatic checkpoint runs inside the commit that takes the WAL past
    `wal_autocheckpoint` pages (1,000 by default), on the committing thread: on the event
    loop's connection that stalls every client for 2 to 10 ms, several times a second under
    load. Instead, a thread of its own runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval`
    seconds on its own connection: a passive checkpoint copies committed pages into the
    database file (and does the fsyncs) without taking a lock that a reader or writer waits for.

    The WAL can only start over when a write begins with every frame copied, and under a
    steady stream of commits a background pass never quite catches up (commits land while it
    runs). So the loop's connection keeps an automatic checkpoint, at `restart_pages`: when
    the WAL reaches that length, the commit that crosses it copies only the frames written
    since the last background pass, and the next write starts the WAL over. The WAL stays
    under about `restart_pages` pages, and the loop pays a short checkpoint once per that many
    pages instead of a long one per thousand.

    Durability does not depend on it: a commit is durable once it is in the WAL, before and
    after any checkpoint. A checkpoint that fails is logged and tried again next interval.
    Does nothing for a database that is not in WAL mode.
    """

    def __init__(
        self, conn: sqlite3.Connection, interval: float = 0.25, restart_pages: int = 8192
    ) -> None:
        self._conn = conn
        self._interval = interval
        self._restart_pages = restart_pages
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        """Background checkpoints run so far."""

    def start(self) -> None:
        """Raise the connection's automatic checkpoint to `restart_pages`; start the thread."""
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        path = self._conn.execute("PRAGMA database_list").fetchone()[2]
        if str(mode).lower() != "wal" or not path:
            return
        self._conn.execute(f"PRAGMA wal_autocheckpoint={int(self._restart_pages)}")
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="wal-checkpointer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, waiting at most `timeout` seconds for a checkpoint under way.

        Closing the database's last connection checkpoints what is left.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("WAL checkpoint still running after %.1f s; not waiting", timeout)

    def _run(self, path: str) -> None:
        try:
            conn = sqlite3.connect(path)
        except sqlite3.Error:
            log.exception("cannot open the database for WAL checkpoints")
            return
        try:
            while not self._stopping.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed; trying again in %.1f s", self._interval)
                else:
                    self.passes += 1
        finally:
            conn.close()

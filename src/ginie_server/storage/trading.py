"""The trading engine's tables: its published state, its lifecycle rows, and paper prices.

- `trading_state` holds, per user, the last published item of every snapshot topic (keyed as
  the topic is keyed; `''` for a singleton) and the engine's internal books (topic `_engine`).
  Its rows are staged with the events that publish them and written in the journal's
  transaction, so state and event become durable together. A finished chain or signal has a
  `finished` rank (growing with each that finishes, NULL while live), so a restart loads the
  live ones and only the newest finished ones (`load(..., finished_limit=)`).
- `trade_lifecycle_events` has one row per step of a chain; its `id` is the `id` of the
  `LIFECYCLE_EVENT` that reports it.
- `paper_prices` keeps the paper market's last prices, so a restarted market goes on from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ginie_protocol.events import LifecycleEvent, Topic, WireModel
from ginie_server.storage.backend import Database, dialect_of
from ginie_server.storage.db import StateWrite, migrate_schema

TRADING_MIGRATIONS = (
    """
    CREATE TABLE trading_state (
        user TEXT NOT NULL,
        topic TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (user, topic, key)
    ) WITHOUT ROWID;
    CREATE TABLE trade_lifecycle_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user TEXT NOT NULL,
        chain_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        step TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL,
        time INTEGER NOT NULL
    );
    CREATE INDEX lifecycle_by_user_chain ON trade_lifecycle_events(user, chain_id, id);
    CREATE TABLE paper_prices (
        symbol TEXT PRIMARY KEY,
        price REAL NOT NULL,
        time INTEGER NOT NULL
    );
    """,
    """
    ALTER TABLE trading_state ADD COLUMN finished INTEGER;
    UPDATE trading_state SET finished = json_extract(data, '$.closed_at')
        WHERE topic = 'CHAIN_UPDATE'
        AND json_extract(data, '$.status') IN ('closed', 'cancelled', 'failed');
    UPDATE trading_state SET finished = json_extract(data, '$.decided_at')
        WHERE topic = 'SIGNAL_UPDATE'
        AND json_extract(data, '$.status') NOT IN ('pending', 'approved');
    CREATE INDEX trading_state_live ON trading_state(user, finished);
    CREATE INDEX trading_state_finished ON trading_state(user, topic, finished);
    """,
)

POSTGRES_TRADING_MIGRATIONS = (
    """
    CREATE TABLE trading_state (
        "user" TEXT COLLATE "C" NOT NULL,
        topic TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        data TEXT NOT NULL,
        finished BIGINT,
        PRIMARY KEY ("user", topic, key)
    );
    CREATE INDEX trading_state_live ON trading_state("user", finished);
    CREATE INDEX trading_state_finished ON trading_state("user", topic, finished);
    CREATE TABLE trade_lifecycle_events (
        id BIGINT PRIMARY KEY,
        "user" TEXT COLLATE "C" NOT NULL,
        chain_id TEXT COLLATE "C" NOT NULL,
        symbol TEXT NOT NULL,
        step TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL,
        time BIGINT NOT NULL
    );
    CREATE INDEX lifecycle_by_user_chain ON trade_lifecycle_events("user", chain_id, id);
    CREATE TABLE paper_prices (
        symbol TEXT COLLATE "C" PRIMARY KEY,
        price DOUBLE PRECISION NOT NULL,
        time BIGINT NOT NULL
    );
    """,
)
"""The same tables on PostgreSQL, as SQLite's migrations leave them (lifecycle ids are always
given by the engine, so that column needs no sequence)."""

INTERNAL = "_engine"
"""The topic under which the engine keeps its internal books."""

FINISHING_TOPICS = (Topic.CHAIN_UPDATE, Topic.SIGNAL_UPDATE)
"""Topics whose items finish: their finished rows carry a rank (see the module docstring)."""


def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    """An insert that replaces the row with the same `key` (the same on both engines)."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


STATE_KEY = ('"user"', "topic", "key")
PUT_ITEM = _upsert("trading_state", (*STATE_KEY, "data", "finished"), STATE_KEY)
DELETE_ITEM = 'DELETE FROM trading_state WHERE "user" = ? AND topic = ? AND key = ?'
PUT_LIFECYCLE = _upsert(
    "trade_lifecycle_events",
    ("id", '"user"', "chain_id", "symbol", "step", "message", "details", "time"),
    ("id",),
)
PUT_PRICE = _upsert("paper_prices", ("symbol", "price", "time"), ("symbol",))


def _run(db: Database, statement: str, args: tuple[Any, ...]) -> None:
    db.execute(statement, args)


@dataclass(slots=True)
class StoredState:
    """What the database holds of one user: topic -> key -> JSON, the finish rank of each
    finished item (topic -> key -> rank; finished items come after live ones, oldest
    first), and the engine's internal books."""

    topics: dict[str, dict[str, str]] = field(default_factory=dict)
    ranks: dict[str, dict[str, int]] = field(default_factory=dict)
    internal: dict[str, Any] | None = None


class TradingStore:
    """Reads the engine's tables. Its writes are `StateWrite`s for the journal's unit of work:
    made here, run and committed by the journal, never here."""

    def __init__(self, conn: Database) -> None:
        self.conn = conn
        migrate_schema(conn, "trading", TRADING_MIGRATIONS, POSTGRES_TRADING_MIGRATIONS)
        self._load_live = (
            "SELECT topic, key, data FROM trading_state "
            f"{dialect_of(conn).indexed_by('trading_state_live')}"
            'WHERE "user" = ? AND finished IS NULL'
        )

    def users(self) -> list[str]:
        """Users the engine holds state for."""
        rows = self.conn.execute('SELECT DISTINCT "user" FROM trading_state ORDER BY "user"')
        return [r[0] for r in rows]

    def get(self, user: str, topic: str, key: str) -> str | None:
        """One item's state as JSON, or None."""
        row = self.conn.execute(
            'SELECT data FROM trading_state WHERE "user" = ? AND topic = ? AND key = ?',
            (user, topic, key),
        ).fetchone()
        return row[0] if row else None

    def last_lifecycle_id(self) -> int:
        """The highest lifecycle row id so far (0 for none): new rows count on from it."""
        row = self.conn.execute("SELECT MAX(id) FROM trade_lifecycle_events").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ staged writes

    @staticmethod
    def put(
        user: str, topic: str, key: str, model: WireModel, finished: int | None = None
    ) -> StateWrite:
        """Write an item's state; `finished` is its finish rank once it has finished."""
        args = (user, topic, key, model.model_dump_json(), finished)
        return lambda db: _run(db, PUT_ITEM, args)

    @staticmethod
    def delete(user: str, topic: str, key: str) -> StateWrite:
        args = (user, topic, key)
        return lambda db: _run(db, DELETE_ITEM, args)

    @staticmethod
    def put_internal(user: str, data: dict[str, Any]) -> StateWrite:
        args = (user, INTERNAL, "", json.dumps(data), None)
        return lambda db: _run(db, PUT_ITEM, args)

    @staticmethod
    def insert_lifecycle(row: LifecycleEvent, user: str) -> StateWrite:
        """Write one lifecycle row under its own id (so a retried write replaces itself)."""
        args = (
            row.id,
            user,
            row.chain_id,
            row.symbol,
            row.step,
            row.message,
            json.dumps(row.details),
            row.time,
        )
        return lambda db: _run(db, PUT_LIFECYCLE, args)

    @staticmethod
    def save_prices(prices: dict[str, float], time: int) -> StateWrite:
        """Keep the market's last prices."""
        rows = [(s, p, time) for s, p in prices.items()]

        def write(db: Database) -> None:
            db.executemany(PUT_PRICE, rows)

        return write

    def load(self, user: str, finished_limit: int | None = None) -> StoredState:
        """A user's published items and internal books: every live item, and of the finished
        ones the newest `finished_limit` per topic (all of them with None)."""
        state = StoredState()
        rows = self.conn.execute(self._load_live, (user,))
        for topic, key, data in rows:
            if topic == INTERNAL:
                state.internal = json.loads(data)
            else:
                state.topics.setdefault(topic, {})[key] = data
        newest_first = (
            "SELECT key, data, finished FROM trading_state "
            'WHERE "user" = ? AND topic = ? AND finished IS NOT NULL '
            "ORDER BY finished DESC, key DESC"
        )
        for topic in FINISHING_TOPICS:
            if finished_limit is None:
                newest = self.conn.execute(newest_first, (user, topic)).fetchall()
            else:
                query = newest_first + " LIMIT ?"
                newest = self.conn.execute(query, (user, topic, finished_limit)).fetchall()
            for key, data, rank in reversed(newest):
                state.topics.setdefault(topic, {})[key] = data
                state.ranks.setdefault(topic, {})[key] = rank
        return state

    def lifecycle(self, user: str, chain_id: str | None = None) -> list[LifecycleEvent]:
        """A user's lifecycle rows, oldest first, optionally of one chain."""
        query = (
            "SELECT id, chain_id, symbol, step, message, details, time "
            'FROM trade_lifecycle_events WHERE "user" = ?'
        )
        args: tuple[str, ...] = (user,)
        if chain_id is not None:
            query += " AND chain_id = ?"
            args = (user, chain_id)
        return [
            LifecycleEvent(
                id=r[0],
                chain_id=r[1],
                symbol=r[2],
                step=r[3],
                message=r[4],
                details=json.loads(r[5]),
                time=r[6],
            )
            for r in self.conn.execute(query + " ORDER BY id", args)
        ]

    def load_prices(self) -> dict[str, float]:
        return {s: p for s, p in self.conn.execute("SELECT symbol, price FROM paper_prices")}

"""The database: schema, epoch, migrations, users and tokens, and clear errors on bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ginie_server.storage.db import DatabaseError, migrate, open_database, read_epoch
from ginie_server.storage.users import TOKEN_PREFIX, UserNameError, UserStore


def test_new_database_has_an_epoch_that_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    conn = open_database(path)
    epoch = read_epoch(conn)
    assert len(epoch) == 16
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()
    again = open_database(path)
    assert read_epoch(again) == epoch
    again.close()
    assert read_epoch(open_database(tmp_path / "other.db")) != epoch


def test_components_migrate_once_and_in_order(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "g.db")
    steps = ["CREATE TABLE a (x INTEGER);", "ALTER TABLE a ADD COLUMN y TEXT;"]
    migrate(conn, "extra", steps[:1])
    migrate(conn, "extra", steps)
    migrate(conn, "extra", steps)
    conn.execute("INSERT INTO a (x, y) VALUES (1, 'one')")
    version = conn.execute(
        "SELECT version FROM schema_versions WHERE component = 'extra'"
    ).fetchone()[0]
    assert version == 2
    with pytest.raises(DatabaseError, match="newer than this server"):
        migrate(conn, "extra", steps[:1])


def test_failed_migration_leaves_nothing_half_done(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "g.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, "broken", ["CREATE TABLE b (x INTEGER); CREATE TABLE b (y INTEGER);"])
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchone() is None
    assert (
        conn.execute("SELECT 1 FROM schema_versions WHERE component = 'broken'").fetchone() is None
    )


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"\x00" * 4096])
def test_a_file_that_is_not_a_database_is_a_typed_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    with pytest.raises(DatabaseError, match=r"junk\.db"):
        open_database(path)
    assert path.read_bytes() == content


def test_a_missing_directory_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="cannot"):
        open_database(tmp_path / "no" / "such" / "dir" / "g.db")


def test_tokens_are_hashed_checked_and_revocable(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "g.db")
    users = UserStore(conn)
    assert not users.has_users()
    first = users.create_token("alice", now_ms=1)
    second = users.create_token("alice", now_ms=2)
    bob = users.create_token("bob", now_ms=3)
    assert len({first, second, bob}) == 3 and len(first) >= 43
    assert users.authenticate(first) == "alice"
    assert users.authenticate(second) == "alice"
    assert users.authenticate(bob) == "bob"
    assert users.authenticate(first + "x") is None
    assert users.authenticate("") is None
    stored = [row[0] for row in conn.execute("SELECT token_hash FROM tokens")]
    assert first not in stored and all(len(h) == 64 for h in stored)
    assert users.revoke("alice", now_ms=5) == 2
    assert users.authenticate(first) is None and users.authenticate(second) is None
    assert users.authenticate(bob) == "bob"
    listed = users.tokens()
    assert [(t.user, t.revoked_at) for t in listed] == [("alice", 5), ("alice", 5), ("bob", None)]
    assert users.users() == ["alice", "bob"]


def test_no_token_reads_as_a_command_line_option(tmp_path: Path) -> None:
    """One plain url-safe token in 64 would start with `-`; `--token -x…` then fails to parse."""
    users = UserStore(open_database(tmp_path / "g.db"))
    tokens = [users.create_token("alice", now_ms=i) for i in range(300)]
    assert all(t.startswith(TOKEN_PREFIX) for t in tokens)
    assert all(users.authenticate(t) == "alice" for t in tokens)


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "a/b"])
def test_bad_user_names_are_refused(tmp_path: Path, name: str) -> None:
    users = UserStore(open_database(tmp_path / "g.db"))
    with pytest.raises(UserNameError):
        users.create_token(name, now_ms=1)
    assert not users.has_users()

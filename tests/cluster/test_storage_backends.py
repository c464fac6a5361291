"""The repositories on both engines: schema and epoch, migrations, users and tokens, the event
log, the engine's tables; and PostgreSQL's own cases (a concurrent start, a bad URL)."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from ginie_protocol.events import LifecycleEvent, Stats
from ginie_server.storage.backend import dialect_of, open_any
from ginie_server.storage.db import DatabaseError, read_epoch, transaction
from ginie_server.storage.event_log import EventLog
from ginie_server.storage.postgres import redacted
from ginie_server.storage.trading import TradingStore
from ginie_server.storage.users import UserStore
from tests.cluster.pg import Backend, PgCluster


def test_the_epoch_survives_reopening_and_migrations_run_once(backend: Backend) -> None:
    first = backend.open()
    epoch = read_epoch(first)
    TradingStore(first)
    first.close()
    again = backend.open()
    TradingStore(again)
    assert read_epoch(again) == epoch and len(epoch) == 16
    versions = dict(backend.rows("SELECT component, version FROM schema_versions"))
    assert versions == {
        "core": 2 if backend.name == "sqlite" else 1,
        "trading": versions["trading"],
    }


def test_tokens_are_hashed_checked_revocable_and_listed_in_order(backend: Backend) -> None:
    db = backend.open()
    users = UserStore(db)
    assert not users.has_users()
    with transaction(db):
        bob = users.create_token("bob", 1)
        alice = users.create_token("alice", 2)
        alice_again = users.create_token("alice", 3)
    assert users.users() == ["alice", "bob"]
    assert users.authenticate(alice) == "alice" and users.authenticate(bob) == "bob"
    assert users.authenticate(alice + "x") is None
    stored = [row[0] for row in backend.rows("SELECT token_hash FROM tokens")]
    assert alice not in stored and len(stored) == 3
    with transaction(db):
        assert users.revoke("alice", 4) == 2
        assert users.revoke("alice", 5) == 0
    assert users.authenticate(alice_again) is None and users.authenticate(bob) == "bob"
    listed = [(t.user, t.revoked_at) for t in users.tokens()]
    assert listed == [("alice", 4), ("alice", 4), ("bob", None)]


def test_a_failed_transaction_leaves_nothing(backend: Backend) -> None:
    db = backend.open()
    users = UserStore(db)
    with pytest.raises(RuntimeError), transaction(db):
        users.create_token("carol", 1)
        raise RuntimeError("changed my mind")
    assert not db.in_transaction
    assert backend.rows("SELECT name FROM users") == []


def test_the_event_log_appends_replays_pages_and_prunes(backend: Backend) -> None:
    db = backend.open()
    log = EventLog(db)
    rows = []
    for seq in range(1, 11):
        kind = "LIFECYCLE_EVENT" if seq % 3 == 0 else "STATS_UPDATE"
        frame = json.dumps({"seq": seq, "data": {"n": seq}})
        rows.append(("alice", seq, kind, "BTCUSDT" if seq % 2 else None, seq, frame))
    log.append_many(rows)
    log.append("bob", 1, "STATS_UPDATE", None, 1, "{}")
    db.commit()
    assert log.last_seq("alice") == 10 and log.first_seq("alice") == 1
    assert log.last_seq("nobody") == 0 and log.first_seq("nobody") is None
    assert [seq for seq, *_ in log.frames_after("alice", 7)] == [8, 9, 10]
    assert log.frame_at("alice", 9) == rows[8][5] and log.frame_at("alice", 11) is None
    page = log.lifecycle_page("alice", limit=2, before_seq=None)
    assert [(p["n"], p["seq"]) for p in page] == [(9, 9), (6, 6)]
    assert [p["seq"] for p in log.lifecycle_page("alice", 5, before_seq=6)] == [3]
    log.prune("alice", keep=4, last_seq=10)
    db.commit()
    assert log.first_seq("alice") == 7 and log.last_seq("bob") == 1


def test_the_engine_tables_keep_live_items_newest_finished_lifecycle_and_prices(
    backend: Backend,
) -> None:
    db = backend.open()
    store = TradingStore(db)
    writes = [
        TradingStore.put("alice", "STATS_UPDATE", "", Stats(total_trades=1)),
        TradingStore.put("alice", "CHAIN_UPDATE", "c1", Stats(total_trades=2), finished=5),
        TradingStore.put("alice", "CHAIN_UPDATE", "c2", Stats(total_trades=3), finished=7),
        TradingStore.put("alice", "CHAIN_UPDATE", "c3", Stats(total_trades=4)),
        TradingStore.put("alice", "CHAIN_UPDATE", "c3", Stats(total_trades=5)),
        TradingStore.put_internal("alice", {"books": [1, 2]}),
        TradingStore.put("bob", "STATS_UPDATE", "", Stats(total_trades=9)),
        TradingStore.delete("bob", "STATS_UPDATE", ""),
        TradingStore.save_prices({"BTCUSDT": 65_000.5, "ETHUSDT": 3_000.25}, 1),
        TradingStore.save_prices({"BTCUSDT": 65_001.5}, 2),
    ]
    row = LifecycleEvent(id=41, chain_id="c1", symbol="BTCUSDT", step="entry", message="m", time=3)
    writes += [TradingStore.insert_lifecycle(row, "alice")] * 2
    for write in writes:
        write(db)
    db.commit()
    assert store.users() == ["alice"]
    state = store.load("alice", finished_limit=1)
    assert set(state.topics["CHAIN_UPDATE"]) == {"c3", "c2"}
    assert json.loads(state.topics["CHAIN_UPDATE"]["c3"])["total_trades"] == 5
    assert state.ranks["CHAIN_UPDATE"] == {"c2": 7}
    assert state.internal == {"books": [1, 2]}
    assert list(store.load("alice").ranks["CHAIN_UPDATE"]) == ["c1", "c2"]
    assert store.get("alice", "STATS_UPDATE", "") is not None
    assert store.get("bob", "STATS_UPDATE", "") is None
    assert store.lifecycle("alice") == [row] and store.lifecycle("alice", "c9") == []
    assert store.last_lifecycle_id() == 41
    assert store.load_prices() == {"BTCUSDT": 65_001.5, "ETHUSDT": 3_000.25}


@pytest.mark.postgres
def test_nodes_that_start_together_migrate_one_database_once(pg_cluster: PgCluster) -> None:
    url = pg_cluster.database()
    epochs: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            db = open_any(url)
            TradingStore(db)
            epochs.append(read_epoch(db))
            db.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(epochs) == 4 and len(set(epochs)) == 1


@pytest.mark.postgres
def test_a_schema_newer_than_the_server_or_a_bad_url_is_a_one_line_error(
    pg_cluster: PgCluster,
) -> None:
    url = pg_cluster.database()
    db = open_any(url)
    assert dialect_of(db).name == "postgresql"
    db.execute("UPDATE schema_versions SET version = 99 WHERE component = 'core'")
    db.commit()
    db.close()
    with pytest.raises(DatabaseError, match="newer than this server"):
        open_any(url)
    secret = url.replace("ginie@", "ginie:s3cret@").replace(f":{pg_cluster.port}/", ":1/")
    with pytest.raises(DatabaseError) as refused:
        open_any(secret)
    assert "s3cret" not in str(refused.value) and "\n" not in str(refused.value)
    assert redacted(secret) in str(refused.value)


@pytest.mark.postgres
def test_a_broken_connection_connects_again_outside_a_transaction(pg_cluster: PgCluster) -> None:
    url = pg_cluster.database()
    db = open_any(url)
    users = UserStore(db)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(psycopg.OperationalError):
        users.has_users()
    assert users.has_users() is False
    users.create_token("dave", 1)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(psycopg.OperationalError):
        users.create_token("dave", 2)
    db.rollback()
    assert users.users() == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ginie:s3cret@db:5432/g", "postgresql://ginie:***@db:5432/g"),
        (
            "postgresql://db/g?password=s3cret&sslmode=require",
            "postgresql://db/g?password=***&sslmode=require",
        ),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://ginie@db/g", "postgresql://ginie@db/g"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown

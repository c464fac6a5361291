"""The cluster measurements in their smallest form, on a real PostgreSQL and Redis: two nodes
deliver every event of a short load across Redis, with the CPU of both counted; the journal's
commit is timed on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.cluster import Load, Services, measure, per_delivery_us, services
from benchmarks.commit import USERS, commit_times, opened
from benchmarks.harness import Placement
from benchmarks.services import missing

from tests.cluster.pg import REQUIRE_ENV

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def running() -> Iterator[Services]:
    reason = missing()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it")
        pytest.skip(reason)
    with services(None) as started:
        assert started.pg is not None and started.redis is not None, started
        yield started


def test_two_cluster_nodes_deliver_every_event_across_redis(running: Services) -> None:
    load = Load(conns=50, user_rate=300.0, seconds=0.4, warmup_s=0.2)
    result = measure("cluster", running, load, Placement())
    assert result["complete"]
    assert result["user_events"] > 0
    assert result["user_deliveries"] == result["user_events"]  # one connection per user
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    cpu = result["cpu_s"]
    assert cpu["node0"] > 0 and cpu["node1"] > 0 and cpu["services"] > 0
    assert cpu["nodes"] == pytest.approx(cpu["node0"] + cpu["node1"], rel=0.05)
    assert per_delivery_us(result, "nodes") > 0


def test_the_journal_commit_is_timed_on_sqlite_and_postgresql(running: Services) -> None:
    for backend in ("sqlite", "postgresql-fenced"):
        with opened(backend, running) as hub:
            times = asyncio.run(commit_times(hub, 10, count=5, warmup=1))
            assert len(times) == 5 and all(t > 0 for t in times)
            assert sum(hub.current_seq(user) for user in USERS) == 60


def test_a_missing_server_makes_a_row_that_says_why() -> None:
    absent = Services(folder=Path("/nonexistent"), pg_missing="no initdb")
    assert absent.unavailable("sqlite") is None
    assert absent.unavailable("postgresql") == "no initdb"
    assert absent.unavailable("cluster") == "no initdb"
    absent.pg_missing, absent.redis_missing = None, "no redis-server"
    assert absent.unavailable("postgresql") is None
    assert absent.unavailable("cluster") == "no redis-server"

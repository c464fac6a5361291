"""Fixtures of the tests that run on both backends.

- `pg_cluster` (session): a throwaway PostgreSQL cluster, started at first use and stopped at
  the end. Without PostgreSQL's binaries the tests that need it are skipped, with the reason,
  unless `GINIE_REQUIRE_CLUSTER=1` (CI), where they fail.
- `backend`: parametrized, `sqlite` and `postgresql` (marked `postgres`): a fresh database.
- `server` and `hub` override the suite's own on that backend, so tests of `tests/server`
  imported here run on both engines unchanged.
- `redis_server`: a Redis of the test's own; `cluster`: a new database, that Redis, and the
  cluster nodes the test starts (`cluster.start(name, role)`), stopped at its end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ginie_server.clock import ManualClock
from ginie_server.hub import Hub
from tests.cluster.nodes import Cluster, RedisServer, redis_binary
from tests.cluster.pg import FAST, REQUIRE_ENV, Backend, PgCluster, pg_bindir
from tests.harness import RunningServer, ScriptedSource, running_server

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = pg_bindir()
    if bindir is None:
        reason = "PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires them")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="ginie-pg-"))
    cluster = PgCluster.start(root, bindir, FAST)
    try:
        yield cluster
    finally:
        cluster.stop("immediate")


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A new, empty PostgreSQL database."""
    return pg_cluster.database()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        chosen = Backend("sqlite", tmp_path / "ginie.db", tmp_path)
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        chosen = Backend("postgresql", cluster.database(), tmp_path)
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture
async def server(
    tmp_path: Path, scripted: ScriptedSource, backend: Backend
) -> AsyncIterator[RunningServer]:
    """A running server on `backend` whose only source is `scripted`."""
    async with running_server(tmp_path, sources=[scripted], **backend.config) as running:
        yield running


@pytest.fixture
def hub(backend: Backend) -> Hub:
    return Hub(backend.open(), clock=ManualClock())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (the tests kill it)."""
    if redis_binary() is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it")
        pytest.skip(reason)
    server = RedisServer.start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Cluster]:
    """A new database and Redis, and the nodes a test starts on them (stopped at its end)."""
    running = Cluster(tmp_path, pg_url, redis_server)
    try:
        yield running
    finally:
        running.stop()

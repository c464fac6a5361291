"""Cluster mode against real PostgreSQL and Redis on 127.0.0.1: nodes as child processes, the
paper engine at x60, consoles as real WebSocket clients (SPEC section 7, docs/cluster.md).

Each test has a database and a Redis of its own. What they hold to, whatever happens to a node
or to Redis: every client's events are numbered without a gap or a repeat, every node sends
the same frame for one `seq`, and every REST snapshot equals the fold of the user's events up
to its `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed

from ginie_protocol.envelope import ResumePoint, decode_server
from ginie_protocol.events import SPECS, Topic
from tests.cluster.nodes import Cluster, Node, StallProxy
from tests.cluster.pg import free_port
from tests.harness import ProtocolClient, connect_client, wait_for

pytestmark = pytest.mark.postgres

USER_TOPICS = [t for t, s in SPECS.items() if s.scope == "user" and t != Topic.LIFECYCLE_EVENT]
FAILOVER_SECONDS = 10.0
SAFETY_PATH = SPECS[Topic.MODE_SAFETY_UPDATE].snapshot_path or ""


@dataclass
class Console:
    """A subscribed client that keeps every user event and every control message it gets."""

    client: ProtocolClient
    events: list[Any] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    closed: bool = False

    async def run(self) -> None:
        try:
            async for text in self.client.ws:
                message = decode_server(text)
                if getattr(message, "seq", None) is not None:
                    self.events.append(message)
                else:
                    self.controls.append(message.type)
        except ConnectionClosed:
            pass
        self.closed = True

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def newer_than(self, ms: float) -> bool:
        """Whether an event stamped after `ms` (epoch milliseconds) has arrived."""
        return any(e.ts > ms for e in self.events)


@contextlib.asynccontextmanager
async def console(node: Node, token: str, from_seq: int = 0) -> AsyncIterator[Console]:
    """A client of `node` that resumes from `from_seq` (0: every event the log holds)."""
    async with connect_client(node.ws_url, token) as client:
        await client.subscribe(resume=ResumePoint(epoch=client.hello.epoch, seq=from_seq))
        watching = Console(client)
        task = asyncio.create_task(watching.run())
        try:
            yield watching
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def assert_unbroken(events: list[Any], first: int = 1) -> None:
    """Seqs `first`, `first + 1`, ...: no gap, no repeat."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(first, first + len(seqs))), f"gap or repeat in {seqs}"


def assert_same_frames(one: list[Any], other: list[Any]) -> None:
    """Events of one `seq` are the same event, wherever they were received."""
    theirs = {e.seq: e for e in other}
    common = [e for e in one if e.seq in theirs]
    assert common, "no seq in common"
    for event in common:
        assert event == theirs[event.seq], f"seq {event.seq} differs"


def fold(events: list[Any], upto: int) -> dict[str, Any]:
    """The user's state as its events up to `upto` say: per topic, the last item per key."""
    state: dict[str, Any] = {}
    for event in events:
        if event.seq > upto:
            break
        spec = SPECS[Topic(event.type)]
        if event.type == Topic.LIFECYCLE_EVENT:
            continue
        if spec.key is None:
            state[event.type] = event.data
        else:
            state.setdefault(event.type, {})[str(getattr(event.data, spec.key))] = event.data
    return state


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """An `/api/snapshot` answer's user topics as models, collections by key."""
    state: dict[str, Any] = {}
    for topic in USER_TOPICS:
        spec = SPECS[topic]
        payload = body["data"][topic]
        if spec.key is None:
            state[topic] = None if payload is None else spec.model.model_validate(payload)
        else:
            state[topic] = {str(i[spec.key]): spec.model.model_validate(i) for i in payload}
    return state


async def assert_snapshot_is_the_fold(node: Node, token: str, watching: Console) -> int:
    """`node`'s `/api/snapshot` equals the fold of `watching`'s events up to its `seq` (topic
    by topic, and the lifecycle page too); returns that `seq`."""
    body = await asyncio.to_thread(node.get, token, "/api/snapshot")
    seq = body["seq"]
    await wait_for(lambda: watching.last_seq >= seq, timeout=10)
    folded = fold(watching.events, seq)
    snapshot = stored(body)
    assert len(folded) >= 10, sorted(folded)
    for topic, value in folded.items():
        assert snapshot[topic] == value, f"{topic} on {node.name} at seq {seq}"
    steps = [e for e in watching.events if e.seq <= seq and e.type == Topic.LIFECYCLE_EVENT]
    page = body["data"][Topic.LIFECYCLE_EVENT]
    assert [item["seq"] for item in page] == [e.seq for e in reversed(steps)][: len(page)]
    return int(seq)


async def equal_snapshots(nodes: list[Node], token: str) -> dict[str, Any]:
    """Snapshots of every node taken at one `seq` (retried until they agree on it)."""
    for _ in range(50):
        bodies = await asyncio.gather(
            *(asyncio.to_thread(n.get, token, "/api/snapshot") for n in nodes)
        )
        if len({b["seq"] for b in bodies}) == 1:
            first = stored(bodies[0])
            for node, body in zip(nodes[1:], bodies[1:], strict=True):
                assert stored(body) == first, f"{node.name} differs at seq {body['seq']}"
            return bodies[0]
    raise AssertionError("the nodes never answered at one seq")


def lease(db_url: str) -> tuple[str | None, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT holder, token FROM engine_lease").fetchone()
    assert row is not None
    return row[0], int(row[1])


def logged_frames(db_url: str) -> dict[int, str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT seq, frame FROM events WHERE \"user\" = 'demo'").fetchall()
    return {int(seq): str(frame) for seq, frame in rows}


# ---------------------------------------------------------------------------- acceptance 1, 5


async def test_three_nodes_send_the_same_events_and_answer_the_same_snapshots(
    cluster: Cluster,
) -> None:
    every = cluster.start("all-1", "all")
    edge = cluster.start("edge-1", "edge")
    engine = cluster.start("engine-1", "engine")
    token = cluster.token
    async with console(edge, token) as on_edge, console(every, token) as on_all:
        await wait_for(lambda: len(on_edge.events) >= 60 and len(on_all.events) >= 60, 30)
        assert_unbroken(on_edge.events)
        assert_unbroken(on_all.events)
        assert_same_frames(on_edge.events, on_all.events)
        for node in (every, edge, engine):
            await assert_snapshot_is_the_fold(node, token, on_edge)
        body = await equal_snapshots([every, edge, engine], token)
        assert body["seq"] > 0
        # Market data is produced once, by the engine node, and relayed to the edge's clients.
        for kind in (Topic.FUTURES_MARK_PRICE_UPDATE, Topic.FUTURES_KLINE_UPDATE):
            assert kind in on_edge.controls
    assert every.metric(token, "ginie_engine_owner") == 1
    assert edge.metric(token, "ginie_engine_owner") == 0
    assert engine.metric(token, "ginie_engine_owner") == 0
    assert edge.metric(token, "ginie_broker_received_total") > 0
    assert edge.metric(token, "ginie_broker_lag_seconds_count") > 0
    market = await asyncio.to_thread(edge.get, token, "/api/market/BTCUSDT")
    assert len(market["data"][Topic.FUTURES_KLINE_UPDATE]) >= 2


async def test_an_engine_only_node_refuses_connections(cluster: Cluster) -> None:
    cluster.start("all-1", "all")
    engine = cluster.start("engine-1", "engine")
    with pytest.raises(Exception, match="503"):
        async with connect_client(engine.ws_url, cluster.token):
            pass


async def test_command_acks_come_back_to_the_node_that_was_sent_them(cluster: Cluster) -> None:
    cluster.start("all-1", "all")
    edge = cluster.start("edge-1", "edge")
    async with connect_client(edge.ws_url, cluster.token) as client:
        ack = await client.command("mode.pause", {"mode": "scalp"}, command_id="a1")
        assert ack.ok, ack
        assert ack.result == {"mode": "scalp", "status": "paused", "paused_until": None}
        bad = await client.command("mode.pause", {"mode": "nope"}, command_id="a2")
        assert not bad.ok and bad.error is not None and bad.error.code == "bad_request"
        refused = await client.command("signal.approve", {"signal_id": "S-none"}, "a3")
        assert not refused.ok and refused.error is not None
        assert refused.error.code not in ("unavailable", "internal"), refused.error
    answer = await asyncio.to_thread(edge.get, cluster.token, SAFETY_PATH)
    scalp = [m for m in answer["data"] if m["mode"] == "scalp"]
    assert scalp and scalp[0]["status"] == "paused"


# ---------------------------------------------------------------------------- acceptance 2


async def test_kill_9_of_the_engine_node_fails_over_with_nothing_lost(cluster: Cluster) -> None:
    owner = cluster.start("all-1", "all")
    edge = cluster.start("edge-1", "edge")
    standby = cluster.start("engine-1", "engine")
    token = cluster.token
    async with console(edge, token) as on_edge:
        async with console(owner, token) as on_owner:
            await wait_for(lambda: len(on_edge.events) >= 30 and len(on_owner.events) >= 30, 30)
            killed_at = time.time() * 1000
            owner.stop(signal.SIGKILL)
            await wait_for(lambda: on_owner.closed, timeout=10)
        owner_saw = list(on_owner.events)
        started = time.monotonic()
        await wait_for(lambda: on_edge.newer_than(killed_at), timeout=FAILOVER_SECONDS)
        took = time.monotonic() - started
        assert took < FAILOVER_SECONDS
        assert standby.metric(token, "ginie_engine_owner") == 1
        # The dead node's client resumes on the edge from its last seq.
        async with console(edge, token, from_seq=owner_saw[-1].seq) as resumed:
            await wait_for(lambda: resumed.last_seq >= on_edge.last_seq > owner_saw[-1].seq, 15)
            assert "RESYNC" not in resumed.controls
            assert_unbroken(owner_saw + resumed.events)
            assert_same_frames(resumed.events, on_edge.events)
        assert_unbroken(on_edge.events)
        assert_same_frames(owner_saw, on_edge.events)
        for node in (edge, standby):
            await assert_snapshot_is_the_fold(node, token, on_edge)


# ---------------------------------------------------------------------------- acceptance 3


async def test_a_partitioned_engine_node_that_heals_writes_no_seq_another_owner_used(
    cluster: Cluster,
) -> None:
    pg = urlsplit(cluster.db_url)
    assert pg.hostname is not None and pg.port is not None
    to_pg = StallProxy((pg.hostname, pg.port)).start()
    to_redis = StallProxy(("127.0.0.1", cluster.redis.port)).start()
    try:
        db_via_proxy = cluster.db_url.replace(f":{pg.port}/", f":{to_pg.port}/")
        broker_via_proxy = f"redis://127.0.0.1:{to_redis.port}/0"
        cut_off = cluster.start("all-1", "all", db_url=db_via_proxy, broker=broker_via_proxy)
        edge = cluster.start("edge-1", "edge")
        standby = cluster.start("engine-1", "engine")
        token = cluster.token
        holder, first_token = lease(cluster.db_url)
        assert holder is not None and first_token >= 1
        async with console(edge, token) as on_edge:
            await wait_for(lambda: len(on_edge.events) >= 20, 30)
            to_pg.stall()
            to_redis.stall()
            stalled_at = time.time() * 1000
            await wait_for(lambda: lease(cluster.db_url)[1] > first_token, 15)
            await wait_for(lambda: on_edge.newer_than(stalled_at), FAILOVER_SECONDS)
            to_pg.heal()
            to_redis.heal()
            healed_at = time.time() * 1000

            def stepped_down() -> bool:
                return cut_off.metric(token, "ginie_engine_owner") == 0

            await wait_for(stepped_down, timeout=30)
            assert "stops running the engine" in cut_off.stderr()
            assert standby.metric(token, "ginie_engine_owner") == 1
            await wait_for(lambda: on_edge.newer_than(healed_at + 2000), 15)
            assert_unbroken(on_edge.events)
            logged = logged_frames(cluster.db_url)
            assert sorted(logged) == list(range(1, max(logged) + 1))
            for event in on_edge.events:
                assert decode_server(logged[event.seq]) == event, f"seq {event.seq}"
            await assert_snapshot_is_the_fold(edge, token, on_edge)
    finally:
        to_pg.stop()
        to_redis.stop()


# ---------------------------------------------------------------------------- acceptance 4


async def test_redis_kill_9_and_restart_loses_nothing(cluster: Cluster) -> None:
    owner = cluster.start("all-1", "all")
    edge = cluster.start("edge-1", "edge")
    token = cluster.token
    async with console(edge, token) as on_edge, console(owner, token) as on_owner:
        await wait_for(lambda: len(on_edge.events) >= 20, 30)
        cluster.redis.kill()
        killed_at = time.time() * 1000
        await wait_for(lambda: on_edge.newer_than(killed_at + 1500), 15)
        assert edge.metric(token, "ginie_broker_connected") == 0
        cluster.redis.start_again()
        received = edge.metric(token, "ginie_broker_received_total")

        def relayed_again() -> bool:
            return edge.metric(token, "ginie_broker_received_total") > received

        await wait_for(relayed_again, timeout=20)
        assert edge.metric(token, "ginie_broker_connected") == 1
        restarted_at = time.time() * 1000
        await wait_for(lambda: on_edge.newer_than(restarted_at + 1000), 15)
        await wait_for(lambda: on_owner.last_seq >= on_edge.last_seq, 15)
        for watching in (on_edge, on_owner):
            assert "RESYNC" not in watching.controls
            assert_unbroken(watching.events)
        assert_same_frames(on_edge.events, on_owner.events)
        for node in (owner, edge):
            await assert_snapshot_is_the_fold(node, token, on_edge)


# ---------------------------------------------------------------------------- edges of the CLI


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "redis://127.0.0.1:1/0"], "--broker needs --db postgresql://"),
        (["--role", "edge"], "--role needs --broker"),
        (["--broker", "http://127.0.0.1:1"], "invalid broker: use a Redis URL"),
    ],
)
def test_a_cluster_flag_without_what_it_needs_is_a_one_line_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ginie_server", "--db", str(tmp_path / "g.db"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "g.db").exists()


def test_an_unreachable_broker_is_a_one_line_error_without_its_password(pg_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ginie_server", "--port", "0", "--db", pg_url,
         "--broker", f"redis://:s3cret@127.0.0.1:{free_port()}/0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot reach the broker" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


async def test_a_command_with_no_engine_to_run_it_fails_as_unavailable(cluster: Cluster) -> None:
    edge = cluster.start("edge-1", "edge")
    async with connect_client(edge.ws_url, cluster.token) as client:
        ack = await client.command("ginie.stop", command_id="x1", timeout=20)
    assert not ack.ok and ack.error is not None
    assert ack.error.code == "unavailable"
    assert "may or may not have run" in ack.error.message


def test_token_create_list_revoke_on_postgresql_hold_on_every_node(cluster: Cluster) -> None:
    every = cluster.start("all-1", "all")
    edge = cluster.start("edge-1", "edge")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ginie_server", "token", *args, "--db", cluster.db_url]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    created = cli("create", "alice")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    listed = cli("list")
    assert "alice" in listed.stdout and "live" in listed.stdout and token not in listed.stdout
    for node in (every, edge):
        assert node.get(token, "/api/metrics")["user"] == "alice"
    assert cli("revoke", "alice").returncode == 0
    for node in (every, edge):
        with pytest.raises(httpx.HTTPStatusError, match="401"):
            node.get(token, "/api/metrics")

"""The hub on its own: seq, durability before delivery, filters, replay, resync, market
coalescing and the slow-consumer guard, with recording connections instead of sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ginie_protocol.envelope import ResumePoint, Subscribe
from ginie_protocol.events import Balance, LifecycleEvent, MarkPrice, Stats
from ginie_server.clock import ManualClock
from ginie_server.config import Limits
from ginie_server.hub import CLOSE_SLOW_CONSUMER, Hub, SubscriptionError
from ginie_server.storage.db import open_database
from tests.harness import wait_for


class RecordingConnection:
    """A connection that keeps every frame; `backlog` plays the unsent bytes of a socket."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.backlog = 0
        self.stalled = False
        self.closed: tuple[int, str] | None = None

    def send_frame(self, frame: bytes) -> None:
        if self.closed is not None:
            return
        if self.stalled:
            self.backlog += len(frame)
        else:
            self.frames.append(json.loads(frame))

    def send_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.send_frame(frame)

    def buffered_bytes(self) -> int:
        return self.backlog

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f and "data" in f]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


def balance(asset: str, value: float = 1.0) -> Balance:
    return Balance(asset=asset, wallet_balance=value, available_balance=value, updated_at=1)


def lifecycle(n: int, symbol: str = "BTCUSDT") -> LifecycleEvent:
    return LifecycleEvent(id=n, chain_id="c", symbol=symbol, step="entry", message=f"m{n}", time=n)


def mark(symbol: str, price: float) -> MarkPrice:
    return MarkPrice(
        symbol=symbol,
        mark_price=price,
        index_price=price,
        funding_rate=0.0,
        next_funding_time=0,
        time=1,
    )


def sub(topics: list[str], **kwargs: Any) -> Subscribe:
    return Subscribe(op="subscribe", topics=topics, **kwargs)


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return Hub(open_database(tmp_path / "g.db"), clock=ManualClock())


def connect(hub: Hub, user: str, topics: list[str] | None = None, **kw: Any) -> RecordingConnection:
    conn = RecordingConnection()
    hub.connect(conn, user)
    if topics is not None:
        hub.subscribe(conn, sub(topics, **kw))
    return conn


async def test_seq_counts_per_user_from_one_and_hello_reports_it(hub: Hub) -> None:
    for i in range(3):
        hub.publish("alice", balance("USDT", i))
    hub.publish("bob", balance("USDT"))
    assert hub.current_seq("alice") == 3 and hub.current_seq("bob") == 1
    conn = connect(hub, "alice")
    hello = conn.frames[0]
    assert hello["type"] == "HELLO" and hello["seq"] == 3 and hello["epoch"] == hub.epoch


async def test_events_are_committed_before_any_connection_gets_them(tmp_path: Path) -> None:
    db_path = tmp_path / "g.db"
    hub = Hub(open_database(db_path), clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    reader = open_database(db_path)
    seen_on_disk: list[int] = []
    original = conn.send_frame

    def send_and_check(frame: bytes) -> None:
        seen_on_disk.append(reader.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        original(frame)

    conn.send_frame = send_and_check  # type: ignore[method-assign]
    for i in range(5):
        hub.publish("alice", balance(f"A{i}"))
    assert conn.events() == []
    await wait_for(lambda: len(conn.events()) == 5)
    assert seen_on_disk == [5] * 5
    assert [e["seq"] for e in conn.events()] == [1, 2, 3, 4, 5]


async def test_each_user_gets_only_its_own_events(hub: Hub) -> None:
    alice, bob = connect(hub, "alice", ["*"]), connect(hub, "bob", ["*"])
    for i in range(200):
        hub.publish("alice" if i % 3 else "bob", balance("USDT", i))
    hub.flush()
    assert all(e["data"]["wallet_balance"] % 3 != 0 for e in alice.events())
    assert all(e["data"]["wallet_balance"] % 3 == 0 for e in bob.events())
    assert len(alice.events()) + len(bob.events()) == 200


async def test_topic_and_symbol_filters_and_resubscribe_replaces_them(hub: Hub) -> None:
    conn = connect(hub, "alice", ["LIFECYCLE_EVENT"], symbols=["ETHUSDT"])
    hub.publish("alice", lifecycle(1, "BTCUSDT"))
    hub.publish("alice", lifecycle(2, "ETHUSDT"))
    hub.publish("alice", balance("USDT"))
    hub.flush()
    assert [e["seq"] for e in conn.events()] == [2]
    hub.subscribe(conn, sub(["BALANCE_UPDATE", "LIFECYCLE_EVENT"]))
    hub.publish("alice", lifecycle(4, "BTCUSDT"))
    hub.publish("alice", balance("USDT"))
    hub.flush()
    assert [e["seq"] for e in conn.events()] == [2, 4, 5]
    with pytest.raises(SubscriptionError, match="NOPE"):
        hub.subscribe(conn, sub(["NOPE"]))


async def test_resume_replays_exactly_what_was_missed(hub: Hub) -> None:
    for i in range(10):
        hub.publish("alice", balance("USDT", i))
    conn = connect(hub, "alice", ["*"], resume=ResumePoint(epoch=hub.epoch, seq=6))
    answer = conn.of_type("SUBSCRIBED")[0]
    assert answer["resumed"] is True and answer["replayed"] == 4
    assert [e["seq"] for e in conn.events()] == [7, 8, 9, 10]
    hub.publish("alice", balance("USDT"))
    hub.flush()
    assert [e["seq"] for e in conn.events()] == [7, 8, 9, 10, 11]


@pytest.mark.parametrize(
    ("epoch", "seq", "reason"),
    [("other", 1, "unknown epoch"), (None, 99, "ahead"), (None, 1, "older")],
)
async def test_resync_when_the_hub_cannot_replay(
    tmp_path: Path, epoch: str | None, seq: int, reason: str
) -> None:
    hub = Hub(
        open_database(tmp_path / "g.db"),
        clock=ManualClock(),
        limits=Limits(replay_window=5, replay_limit=5),
    )
    for i in range(10):
        hub.publish("alice", balance("USDT", i))
    conn = connect(hub, "alice", ["*"], resume=ResumePoint(epoch=epoch or hub.epoch, seq=seq))
    (resync,) = conn.of_type("RESYNC")
    assert resync["seq"] == 10 and resync["epoch"] == hub.epoch and reason in resync["reason"]
    assert conn.of_type("SUBSCRIBED")[0]["resumed"] is False
    assert conn.events() == []
    assert hub.metrics("alice").resyncs == 1


async def test_replay_reaches_past_the_ring_into_the_event_log(tmp_path: Path) -> None:
    db_path = tmp_path / "g.db"
    first = Hub(open_database(db_path), clock=ManualClock())
    for i in range(30):
        first.publish("alice", balance("USDT", i))
    first.close()
    hub = Hub(open_database(db_path), clock=ManualClock(), limits=Limits(replay_window=5))
    assert hub.current_seq("alice") == 30
    hub.publish("alice", balance("USDT", 30))
    conn = connect(hub, "alice", ["*"], resume=ResumePoint(epoch=hub.epoch, seq=12))
    assert [e["seq"] for e in conn.events()] == list(range(13, 32))


async def test_lifecycle_pages_newest_first(hub: Hub) -> None:
    for i in range(1, 8):
        hub.publish("alice", lifecycle(i))
        hub.publish("alice", balance("USDT"))
    page = hub.lifecycle_page("alice", limit=3, before_seq=None)
    assert [(p["id"], p["seq"]) for p in page] == [(7, 13), (6, 11), (5, 9)]
    older = hub.lifecycle_page("alice", limit=3, before_seq=9)
    assert [p["id"] for p in older] == [4, 3, 2]
    assert hub.lifecycle_page("bob", limit=3, before_seq=None) == []


async def test_a_stalled_connection_is_closed_and_the_others_get_everything(tmp_path: Path) -> None:
    hub = Hub(
        open_database(tmp_path / "g.db"),
        clock=ManualClock(),
        limits=Limits(max_buffer_bytes=20_000),
    )
    stalled = connect(hub, "alice", ["*"])
    stalled.stalled = True
    normal = connect(hub, "alice", ["*"])
    for i in range(1000):
        hub.publish("alice", balance("USDT", i))
    hub.flush()
    assert stalled.closed is not None and stalled.closed[0] == CLOSE_SLOW_CONSUMER
    assert stalled.backlog <= 20_000 + 200
    assert [e["seq"] for e in normal.events()] == list(range(1, 1001))
    assert hub.connection_count("alice") == 1
    assert hub.metrics("alice").slow_consumer_closes == 1


async def test_market_events_are_coalesced_per_symbol_latest_wins(tmp_path: Path) -> None:
    hub = Hub(
        open_database(tmp_path / "g.db"), clock=ManualClock(), limits=Limits(market_rate_hz=20)
    )
    conn = connect(hub, "alice", ["FUTURES_MARK_PRICE_UPDATE"], symbols=["BTCUSDT", "ETHUSDT"])
    for i in range(50):
        hub.publish_market(mark("BTCUSDT", 100 + i))
        hub.publish_market(mark("ETHUSDT", 10 + i))
        hub.publish_market(mark("SOLUSDT", 1 + i))
    prices = lambda s: [  # noqa: E731
        f["data"]["mark_price"] for f in conn.frames if f.get("data", {}).get("symbol") == s
    ]
    assert prices("BTCUSDT") == [100] and prices("ETHUSDT") == [10]
    await wait_for(lambda: len(prices("BTCUSDT")) == 2 and len(prices("ETHUSDT")) == 2)
    assert prices("BTCUSDT")[-1] == 149 and prices("ETHUSDT")[-1] == 59
    assert prices("SOLUSDT") == []
    assert all("seq" not in f for f in conn.of_type("FUTURES_MARK_PRICE_UPDATE"))
    assert [m.mark_price for m in hub.market_latest("FUTURES_MARK_PRICE_UPDATE")] == [
        149,
        59,
        50,
    ]


async def test_publish_refuses_the_wrong_kind_of_data(hub: Hub) -> None:
    with pytest.raises(TypeError):
        hub.publish("alice", mark("BTCUSDT", 1))
    with pytest.raises(TypeError):
        hub.publish_market(Stats())  # type: ignore[arg-type]
    assert hub.current_seq("alice") == 0


async def test_a_replays_allowance_shrinks_as_it_drains(tmp_path: Path) -> None:
    bound = 20_000
    hub = Hub(
        open_database(tmp_path / "g.db"),
        clock=ManualClock(),
        limits=Limits(max_buffer_bytes=bound),
    )
    for i in range(400):
        hub.publish("alice", lifecycle(i))
    hub.flush()
    conn = RecordingConnection()
    conn.stalled = True
    hub.connect(conn, "alice")
    hub.subscribe(conn, sub(["*"], resume={"epoch": hub.epoch, "seq": 0}))
    replayed = conn.backlog
    assert replayed > bound and conn.closed is None
    # while the replay is unsent, live events may still queue behind it
    hub.publish("alice", lifecycle(400))
    hub.flush()
    assert conn.closed is None
    # once the replay has drained, the plain bound applies again: a connection that stalls
    # now is closed at the bound, not at the bound plus the old replay
    conn.backlog = 0
    for i in range(401, 401 + replayed // 300):
        hub.publish("alice", lifecycle(i))
    hub.flush()
    assert conn.closed is not None and conn.closed[0] == CLOSE_SLOW_CONSUMER
    assert conn.backlog <= bound

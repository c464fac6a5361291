"""A hub that does not write (a cluster node other than the engine's) delivers what another hub
committed: in order and once, whether an event comes relayed, late, twice, or not at all (then
from the log); and a hub that stops writing drops what it never committed.

Two hubs on one SQLite file stand for two nodes on one database; the broker between them is
played by handing the writer's committed events to the reader by hand.
"""

from __future__ import annotations

from pathlib import Path

from ginie_protocol.envelope import ResumePoint, Subscribe
from ginie_server.clock import ManualClock
from ginie_server.hub import Hub, RelayedEvent
from ginie_server.journal import Committed
from ginie_server.storage.db import open_database
from tests.server.test_hub import RecordingConnection, balance, connect


def two_hubs(tmp_path: Path) -> tuple[Hub, Hub, list[RelayedEvent]]:
    """A writing hub, a reading hub on the same database, and what the writer committed."""
    writer = Hub(open_database(tmp_path / "g.db"), clock=ManualClock())
    reader = Hub(open_database(tmp_path / "g.db"), clock=ManualClock())
    sent: list[RelayedEvent] = []

    class Broker:
        def events(self, committed: Committed) -> None:
            sent.extend((u, e.seq, e.type, e.symbol, e.frame) for u, e in committed)

        def market(self, key: tuple[str, str], frame: bytes) -> None:
            """Market frames are not what these tests are about."""

    writer.outbound = Broker()
    return writer, reader, sent


def publish(hub: Hub, *assets: str) -> None:
    for asset in assets:
        hub.publish("alice", balance(asset))
    hub.flush()


def test_relayed_events_are_delivered_in_order_and_once(tmp_path: Path) -> None:
    writer, reader, sent = two_hubs(tmp_path)
    watcher = connect(reader, "alice", ["*"])
    publish(writer, "A1", "A2", "A3")
    reader.relayed(sent[:2])
    reader.relayed(sent[1:])  # the second again, then the third
    reader.relayed(sent[:1])  # a late copy of the first
    assert [e["seq"] for e in watcher.events()] == [1, 2, 3]
    assert [e["data"]["asset"] for e in watcher.events()] == ["A1", "A2", "A3"]
    assert reader.current_seq("alice") == 3


def test_events_the_broker_missed_are_read_from_the_log_first(tmp_path: Path) -> None:
    writer, reader, sent = two_hubs(tmp_path)
    watcher = connect(reader, "alice", ["*"])
    publish(writer, "A1", "A2", "A3", "A4")
    reader.relayed([sent[3]])  # 2 and 3 were lost on the way
    assert [e["seq"] for e in watcher.events()] == [1, 2, 3, 4]


def test_catch_up_delivers_what_never_came_relayed(tmp_path: Path) -> None:
    writer, reader, _ = two_hubs(tmp_path)
    watcher = connect(reader, "alice", ["*"])
    publish(writer, "A1", "A2")
    reader.catch_up(["alice", "bob"])
    reader.catch_up(["alice"])
    assert [e["seq"] for e in watcher.events()] == [1, 2]


async def test_a_hub_that_stops_writing_forgets_what_it_never_committed(tmp_path: Path) -> None:
    writer, other, _ = two_hubs(tmp_path)
    watcher = connect(writer, "alice", ["*"])
    publish(writer, "A1")
    writer.publish("alice", balance("STAGED"))  # appended; its commit waits for the loop
    publish(other, "B2")  # another node wrote seq 2 meanwhile
    writer.reload()
    assert writer.current_seq("alice") == 2
    assert [e["data"]["asset"] for e in watcher.events()] == ["A1", "B2"]
    assert not writer.journal.pending


def test_a_following_hub_reads_the_log_before_hello_and_a_resume(tmp_path: Path) -> None:
    writer, reader, _ = two_hubs(tmp_path)
    reader.follows = True
    reader.current_seq("alice")  # known here at seq 0, before the writer's events
    publish(writer, "A1", "A2", "A3")  # none of them relayed
    watcher = RecordingConnection()
    reader.connect(watcher, "alice")
    assert watcher.frames[0]["seq"] == 3
    resume = ResumePoint(epoch=reader.epoch, seq=3)
    reader.subscribe(watcher, Subscribe(op="subscribe", topics=["*"], resume=resume))
    assert [f["type"] for f in watcher.frames] == ["HELLO", "SUBSCRIBED"]

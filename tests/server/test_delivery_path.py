"""The delivery path's shortcuts keep the contract: frames written without websockets' protocol
are byte for byte what it would write, and publish order holds between user and market
events."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

from ginie_server.clock import ManualClock
from ginie_server.hub import Hub
from ginie_server.storage.db import open_database
from ginie_server.ws import text_frame_header
from tests.server.test_hub import balance, connect, mark


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 4_000, 65_535, 65_536, 200_000])
def test_a_text_frame_is_what_websockets_would_write(length: int) -> None:
    payload = b"x" * length
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame_header(length) + payload == expected


async def test_user_events_published_before_a_market_tick_are_sent_before_it(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "g.db"
    hub = Hub(open_database(db_path), clock=ManualClock())
    conn = connect(hub, "alice", ["*"])
    hub.publish("alice", balance("USDT", 1))
    hub.publish("alice", balance("USDT", 2))
    hub.publish_market(mark("BTCUSDT", 100))
    hub.publish("alice", balance("USDT", 3))
    hub.flush()
    kinds = [(f["type"], f.get("seq")) for f in conn.frames[2:]]
    assert kinds == [
        ("BALANCE_UPDATE", 1),
        ("BALANCE_UPDATE", 2),
        ("FUTURES_MARK_PRICE_UPDATE", None),
        ("BALANCE_UPDATE", 3),
    ]
